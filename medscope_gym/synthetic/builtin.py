"""Build synthetic suites on disk, and the built-in ones cached by generator version.

A built-in suite is rebuilt whenever the generator's source or parameters change (the cache
folder name carries their hash), and concurrent first calls are safe: each process builds
in a private folder and renames it into place; a process that loses the race discards its
copy and uses the winner's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.atomic import atomic_directory, atomic_write_text
from medscope_gym.errors import ConfigError
from medscope_gym.suite.builder import BuildConfig, VideoEntry, build_samples, write_suite_folder
from medscope_gym.suite.filters import FilterConfig
from medscope_gym.suite.suite import SUITE_FILE
from medscope_gym.suite.templates import TemplateConfig
from medscope_gym.synthetic.annotations import write_annotations
from medscope_gym.synthetic.procedure import generate_procedure
from medscope_gym.synthetic.render import render_video
from medscope_gym.synthetic.timeline import procedure_timeline

__all__ = [
    "BUILTIN_SUITES",
    "DEFAULT_SUITE",
    "GENERATOR_VERSION",
    "MANIFEST_FILE",
    "QUESTION_PRESETS",
    "build_synthetic_suite",
    "builtin_suite_path",
    "default_cache_dir",
]

GENERATOR_VERSION = "2"  # bump on any change that alters generated timelines, pixels or questions
MANIFEST_FILE = "synthetic.json"
DEFAULT_SUITE = "synthsurg-small"

# Question pipelines (medscope_gym.suite.builder) by name. "small" keeps the preview filter off: its
# videos are shorter than the 512-frame preview, which therefore shows every second, and the tests
# and the default env need a choice + interval mix. "full" runs every template and every filter.
QUESTION_PRESETS: dict[str, BuildConfig] = {
    "small": BuildConfig(
        templates=("event_instrument", "event_phase", "event_grounding", "phase_grounding", "instrument_at"),
        template=TemplateConfig(per_video=6),
        filters=FilterConfig(preview=False),
    ),
    "full": BuildConfig(template=TemplateConfig(per_video=12)),
}

BUILTIN_SUITES: dict[str, dict[str, Any]] = {
    # The default and the tests' suite: small and quick to build (seconds).
    "synthsurg-small": {"n_videos": 6, "min_duration_s": 60.0, "max_duration_s": 150.0, "seed": 0},
    # Frame index burned in, for decode-exactness checks of video backends.
    "synthsurg-index": {
        "n_videos": 3,
        "min_duration_s": 60.0,
        "max_duration_s": 90.0,
        "seed": 1,
        "burn_index": True,
    },
    # Long procedures (10–30 min) where uniform sampling misses the brief events; every filter on.
    "synthsurg-long": {
        "n_videos": 4,
        "min_duration_s": 600.0,
        "max_duration_s": 1800.0,
        "seed": 2,
        "questions": "full",
    },
    # The benchmark: 30 procedures of 10–60 min at 5 fps (tools sample 1 fps), every template and filter.
    # Built on first use (minutes); registered as MedScope/SynthSurg-Bench-v0.
    "synthsurg-bench": {
        "n_videos": 30,
        "min_duration_s": 600.0,
        "max_duration_s": 3600.0,
        "seed": 3,
        "fps": 5.0,
        "width": 128,
        "height": 96,
        "questions": "full",
    },
}
_PROGRESS_FROM_VIDEOS = 10  # first builds of this many videos take minutes: show progress bars
_BUILD_DEFAULTS: dict[str, Any] = {
    "width": 160,
    "height": 120,
    "fps": 25.0,
    "burn_index": False,
    "splits": (0.6, 0.2, 0.2),
    "questions": "small",
}


def build_synthetic_suite(
    out_dir: str | os.PathLike[str],
    *,
    n_videos: int,
    min_duration_s: float,
    max_duration_s: float,
    seed: int,
    width: int = 160,
    height: int = 120,
    fps: float = 25.0,
    burn_index: bool = False,
    splits: Sequence[float] = (0.6, 0.2, 0.2),
    questions: str | BuildConfig = "small",
    progress: bool = False,
) -> Path:
    """Write a complete suite folder (videos, Cholec80 annotations, ``suite.jsonl``) at ``out_dir``.

    The folder is assembled in a temporary sibling and renamed into place, so ``out_dir`` is
    either absent, the previous suite, or the finished new one. Splits are drawn by video.
    ``questions`` names a :data:`QUESTION_PRESETS` pipeline (templates, filters, trajectories) or is one.
    """
    if n_videos < 1 or not 0 < min_duration_s <= max_duration_s:
        raise ConfigError(
            f"need n_videos >= 1 and 0 < min_duration_s <= max_duration_s, got {n_videos}, "
            f"{min_duration_s}, {max_duration_s}"
        )
    if isinstance(questions, str):
        if questions not in QUESTION_PRESETS:
            raise ConfigError(f"unknown question preset {questions!r}; known: {', '.join(QUESTION_PRESETS)}")
        questions = QUESTION_PRESETS[questions]
    pipeline = dataclasses.replace(questions, seed=int(seed), splits=tuple(float(x) for x in splits))
    rng = np.random.default_rng([int(seed), 2024])
    durations = rng.uniform(min_duration_s, max_duration_s, size=n_videos)
    video_seeds = rng.integers(0, 2**31 - 1, size=n_videos)
    digits = max(2, len(str(n_videos)))
    entries: list[VideoEntry] = []
    videos: list[dict[str, Any]] = []
    with atomic_directory(out_dir) as tmp:
        steps = range(n_videos)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="render", unit="video", leave=False)
        for k in steps:
            name = f"video{k + 1:0{digits}d}"
            procedure = generate_procedure(int(video_seeds[k]), float(durations[k]), fps)
            rel = f"videos/{name}.mp4"
            render_video(procedure, tmp / rel, width=width, height=height, burn_index=burn_index)
            write_annotations(procedure, tmp / "annotations", name)
            entries.append(VideoEntry(name, rel, procedure_timeline(procedure, name)))
            videos.append(
                {
                    "name": name,
                    "video": rel,
                    "seed": procedure.seed,
                    "fps": procedure.fps,
                    "num_frames": procedure.num_frames,
                }
            )
        result = build_samples(entries, pipeline, progress=progress)
        for v in videos:
            v["split"] = result.splits.get(v["video"], "unused")
        write_suite_folder(tmp, result, pipeline, {"source_kind": "synthetic"})
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "params": {
                "n_videos": n_videos,
                "min_duration_s": min_duration_s,
                "max_duration_s": max_duration_s,
                "seed": seed,
                "width": width,
                "height": height,
                "fps": fps,
                "burn_index": burn_index,
                "splits": list(splits),
            },
            "videos": videos,
        }
        atomic_write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
    return Path(out_dir)


def default_cache_dir() -> Path:
    """``$MEDSCOPE_CACHE`` if set, else ``~/.cache/medscope_gym``."""
    env = os.environ.get("MEDSCOPE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "medscope_gym"


def builtin_suite_path(name: str = DEFAULT_SUITE, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of built-in suite ``name``, building it into the cache on first use."""
    if name not in BUILTIN_SUITES:
        raise ConfigError(f"unknown built-in suite {name!r}; known: {', '.join(BUILTIN_SUITES)}")
    params = {**_BUILD_DEFAULTS, **BUILTIN_SUITES[name]}
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / f"{name}-{_build_key(name, params)}"
    if (final / SUITE_FILE).is_file():
        return final
    private = root / f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.build"
    try:
        build_synthetic_suite(private, **params, progress=params["n_videos"] >= _PROGRESS_FROM_VIDEOS)
        try:
            os.rename(private, final)
        except OSError:
            if not (final / SUITE_FILE).is_file():
                raise
            # Another process finished first: keep its folder, drop ours (in the finally below).
    finally:
        if private.exists():
            shutil.rmtree(private, ignore_errors=True)
    return final


def _build_key(name: str, params: dict[str, Any]) -> str:
    """Hash of the generator's version, its source files and the build parameters."""
    h = hashlib.sha256()
    payload = {"name": name, "version": GENERATOR_VERSION, "params": {k: params[k] for k in sorted(params)}}
    h.update(json.dumps(payload, sort_keys=True, default=list).encode())
    package = Path(__file__).parent.parent  # the generator and the question pipeline both shape a suite
    sources = [*sorted((package / "synthetic").glob("*.py")), *sorted((package / "suite").rglob("*.py"))]
    for src in sources:
        h.update(src.relative_to(package).as_posix().encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:12]
