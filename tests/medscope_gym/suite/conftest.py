"""Small annotated source folders made from synthetic procedures: Cholec80 and CholecT50 layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medscope_gym.synthetic import generate_procedure, render_video, write_phase_file, write_tool_file
from medscope_gym.synthetic.procedure import CHOLEC80_TOOLS, Procedure

# Three short procedures (seconds): long enough for all phases and a few instrument visits.
SOURCE_VIDEOS = ((11, 70.0), (12, 80.0), (13, 64.0))
T50_VERBS = {
    "Grasper": "retract",
    "Bipolar": "coagulate",
    "Hook": "dissect",
    "Scissors": "cut",
    "Clipper": "clip",
    "Irrigator": "irrigate",
    "SpecimenBag": "pack",
}
T50_TARGETS = ("gallbladder", "cystic_duct", "liver")
T50_PHASES = (
    "preparation",
    "carlot-triangle-dissection",
    "clipping-and-cutting",
    "gallbladder-dissection",
    "gallbladder-packaging",
    "cleaning-and-coagulation",
    "gallbladder-extraction",
)
T50_TOOLS = ("grasper", "bipolar", "hook", "scissors", "clipper", "irrigator", "specimen_bag")


def procedures() -> list[Procedure]:
    return [generate_procedure(seed, duration, fps=10.0) for seed, duration in SOURCE_VIDEOS]


@pytest.fixture(scope="session")
def cholec80_dir(tmp_path_factory) -> Path:
    """The Cholec80 release layout: videos/, phase_annotations/, tool_annotations/ (no events)."""
    root = tmp_path_factory.mktemp("cholec80")
    for k, proc in enumerate(procedures(), start=1):
        name = f"video{k:02d}"
        render_video(proc, root / "videos" / f"{name}.mp4", width=64, height=48)
        write_phase_file(proc, root / "phase_annotations" / f"{name}-phase.txt")
        write_tool_file(proc, root / "tool_annotations" / f"{name}-tool.txt")
    return root


def t50_json(proc: Procedure, video: int) -> dict:
    """A CholecT50-style JSON of a procedure: per second, one triplet per visible tool, phase last."""
    seconds = proc.num_seconds
    annotations = {}
    for k in range(seconds):
        phase = [
            "Preparation",
            "CalotTriangleDissection",
            "ClippingCutting",
            "GallbladderDissection",
            "GallbladderPackaging",
            "CleaningCoagulation",
            "GallbladderRetraction",
        ].index(proc.phase_at(k + 0.5))
        vectors = []
        for j, on in enumerate(proc.presence[k]):
            if on:
                target = (k // 7 + j) % len(T50_TARGETS)
                verb = list(T50_VERBS).index(CHOLEC80_TOOLS[j])
                triplet = j * 10 + target
                vectors.append(
                    [triplet, j, 1, 0.1, 0.1, 0.2, 0.2, verb, target, 1, 0.3, 0.3, 0.1, 0.1, phase]
                )
        if not vectors:
            vectors.append([-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, phase])
        annotations[str(k)] = vectors
    return {
        "video": video,
        "fps": 1,
        "num_frames": seconds,
        "categories": {
            "instrument": {str(i): t for i, t in enumerate(T50_TOOLS)},
            "verb": {str(i): v for i, v in enumerate(T50_VERBS.values())},
            "target": {str(i): t for i, t in enumerate(T50_TARGETS)},
            "phase": {str(i): p for i, p in enumerate(T50_PHASES)},
            "triplet": {
                str(j * 10 + t): f"{T50_TOOLS[j]},{list(T50_VERBS.values())[j]},{T50_TARGETS[t]}"
                for j in range(7)
                for t in range(3)
            },
        },
        "annotations": annotations,
    }


@pytest.fixture(scope="session")
def cholect50_dir(tmp_path_factory, cholec80_dir) -> Path:
    """CholecT50 layout: labels/VIDnn.json, videos named like the Cholec80 ones (hard links)."""
    root = tmp_path_factory.mktemp("cholect50")
    for k, proc in enumerate(procedures(), start=1):
        (root / "labels").mkdir(exist_ok=True)
        (root / "labels" / f"VID{k:02d}.json").write_text(json.dumps(t50_json(proc, k)))
        (root / "videos").mkdir(exist_ok=True)
        (root / "videos" / f"VID{k:02d}.mp4").hardlink_to(cholec80_dir / "videos" / f"video{k:02d}.mp4")
    return root


def read_phase_rows(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    col = lines[0].split("\t").index("Phase")
    return [line.split("\t")[col] for line in lines[1:]]


def read_tool_rows(path: Path) -> dict[str, np.ndarray]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    rows = np.array([[int(c) for c in line.split("\t")] for line in lines[1:]])
    return {name: rows[:, j] for j, name in enumerate(header) if name != "Frame"}
