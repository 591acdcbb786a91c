from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from medscope_gym.suite.sources import detect_source, load_source
from medscope_gym.suite.timeline import CHOLEC80_TOOLS
from medscope_gym.synthetic.timeline import procedure_timeline
from tests.medscope_gym.suite.conftest import procedures


def test_cholec80_folder_loads_to_the_procedures_timelines(cholec80_dir):
    assert detect_source(cholec80_dir) == "cholec80"
    loaded = load_source(cholec80_dir)
    assert [v.video_id for v in loaded.videos] == ["video01", "video02", "video03"]
    for video, proc in zip(loaded.videos, procedures()):
        want = procedure_timeline(proc, video.video_id)
        tl = video.timeline
        assert tl.fps == 10.0 and tl.duration == pytest.approx(proc.duration)
        assert [(p.name, p.start, p.end) for p in tl.phases] == [
            (p.name, p.start, p.end) for p in want.phases
        ]
        assert np.array_equal(tl.presence, want.presence)
    # No events file in a Cholec80 release: reported as nothing, and no events.
    assert all(not v.timeline.events for v in loaded.videos)


def test_columns_are_mapped_by_name_and_labels_by_spelling(cholec80_dir, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(cholec80_dir, root)
    tool = root / "tool_annotations" / "video01-tool.txt"
    lines = [line.split("\t") for line in tool.read_text().splitlines()]
    order = [0, *reversed(range(1, len(lines[0])))]  # Frame first, then the tools reversed
    lines[0] = [("Specimen_Bag" if c == "SpecimenBag" else c) for c in lines[0]]
    tool.write_text("\n".join("\t".join(row[i] for i in order) for row in lines) + "\n")
    phase = root / "phase_annotations" / "video01-phase.txt"
    phase.write_text(phase.read_text().replace("CalotTriangleDissection", "calot-triangle-dissection"))
    original = load_source(cholec80_dir).videos[0].timeline
    changed = load_source(root).videos[0].timeline
    assert np.array_equal(changed.presence, original.presence)
    assert [p.name for p in changed.phases] == [p.name for p in original.phases]


def test_unknown_labels_and_frame_mismatch_are_reported(cholec80_dir, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(cholec80_dir, root)
    phase = root / "phase_annotations" / "video01-phase.txt"
    phase.write_text(phase.read_text().replace("Preparation", "Prep"))
    short = root / "phase_annotations" / "video02-phase.txt"
    short.write_text("\n".join(short.read_text().splitlines()[:-100]) + "\n")  # 10 s of rows missing
    tool = root / "tool_annotations" / "video03-tool.txt"
    tool.write_text(tool.read_text().replace("Hook", "Stapler", 1))
    loaded = load_source(root)
    assert loaded.videos == []
    messages = [str(i) for i in loaded.issues if i.level == "error"]
    assert any("video01-phase.txt" in m and "unknown phase label(s) 'Prep'" in m for m in messages)
    assert any("video02-phase.txt" in m and "but the video has" in m for m in messages)
    assert any("video03-tool.txt" in m and "unknown tool column 'Stapler'" in m for m in messages)


def test_cholect50_json_loads_phases_tools_and_triplets(cholect50_dir):
    assert detect_source(cholect50_dir) == "cholect50"
    loaded = load_source(cholect50_dir)
    assert not [i for i in loaded.issues if i.level == "error"]
    assert len(loaded.videos) == 3
    for video, proc in zip(loaded.videos, procedures()):
        tl = video.timeline
        want = procedure_timeline(proc, video.video_id)
        assert np.array_equal(tl.presence, want.presence)
        # 1 fps phases: each second carries the phase at its middle.
        for k in range(tl.num_seconds):
            assert tl.phase_at(k + 0.5) == proc.phase_at(k + 0.5)
        assert tl.actions
        for act in tl.actions:
            assert act.instrument in CHOLEC80_TOOLS
            for k in range(int(act.start), int(act.end)):
                assert act.instrument in tl.instruments_at(k + 0.5)


def test_cholect50_unknown_instrument_is_reported(cholect50_dir, tmp_path):
    root = tmp_path / "t50"
    shutil.copytree(cholect50_dir, root)
    path = root / "labels" / "VID02.json"
    raw = json.loads(path.read_text())
    raw["categories"]["instrument"]["2"] = "laser"
    path.write_text(json.dumps(raw))
    loaded = load_source(root, "cholect50")
    assert [v.video_id for v in loaded.videos] == ["VID01", "VID03"]
    assert any("VID02.json" in str(i) and "unknown instrument label 'laser'" in str(i) for i in loaded.issues)


def test_medvidqa_rows_become_grounding_samples(cholec80_dir, tmp_path):
    root = tmp_path / "mvqa"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "v1.mp4").hardlink_to(cholec80_dir / "videos" / "video01.mp4")
    rows = [
        {
            "sample_id": "q1",
            "question": "How to apply a clip?",
            "answer_start_second": 12.0,
            "answer_end_second": 19.5,
            "video_length": 70,
            "video_id": "v1",
        },
        {
            "sample_id": "q2",
            "question": "Where?",
            "answer_start_second": 5,
            "answer_end_second": 90,
            "video_length": 70,
            "video_id": "v1",
        },
        {
            "sample_id": "q3",
            "question": "Missing video",
            "answer_start_second": 1,
            "answer_end_second": 2,
            "video_length": 70,
            "video_id": "nope",
        },
    ]
    (root / "medvidqa_train.json").write_text(json.dumps(rows))
    assert detect_source(root) == "medvidqa"
    loaded = load_source(root)
    assert [s.id for s in loaded.samples] == ["q1"]
    s = loaded.samples[0]
    assert s.answer_interval == (12.0, 19.5) and s.evidence == ((12.0, 19.5),) and s.duration == 70.0
    assert s.task == "temporal_grounding" and s.fps == 10.0
    problems = " | ".join(str(i) for i in loaded.issues)
    assert "row 2" in problems and "duration" in problems
    assert "row 3" in problems and "no video file nope" in problems
