"""Source folder -> suite: valid, split by video, and every answer re-derived from the annotation files."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from medscope_gym.suite import Suite
from medscope_gym.suite.builder import BuildConfig, assign_splits, build_suite
from medscope_gym.suite.filters import FilterConfig
from medscope_gym.suite.labels import phase_label, tool_label
from tests.medscope_gym.suite.conftest import read_phase_rows, read_tool_rows

FPS = 10.0
# Few videos: keep every filter but the cross-video ones meaningful for three videos.
CFG = BuildConfig(filters=FilterConfig(preview=False, text_only=False), splits=(0.34, 0.33, 0.33))


@pytest.fixture(scope="module")
def cholec80_suite(cholec80_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "suite"
    build_suite(cholec80_dir, out, CFG, progress=False)
    return Suite.load(out)


@pytest.fixture(scope="module")
def cholect50_suite(cholect50_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("built50") / "suite"
    build_suite(cholect50_dir, out, CFG, progress=False)
    return Suite.load(out)


def _files(src, sample):
    name = re.search(r"(video\d+)", sample.video).group(1)
    return read_phase_rows(src / "phase_annotations" / f"{name}-phase.txt"), read_tool_rows(
        src / "tool_annotations" / f"{name}-tool.txt"
    )


def _visits(column: np.ndarray, min_len: float):
    padded = np.concatenate([[0], column, [0]])
    starts, ends = np.flatnonzero(np.diff(padded) == 1), np.flatnonzero(np.diff(padded) == -1)
    return [(float(a), float(b)) for a, b in zip(starts, ends) if b - a >= min_len]


def test_cholec80_folder_becomes_a_valid_suite_split_by_video(cholec80_suite):
    suite = cholec80_suite
    assert len(suite) >= 30
    tasks = set(suite.counts("task"))
    assert {"instrument_recognition", "phase_recognition", "temporal_grounding", "counting"} <= tasks
    assert set(suite.counts("answer_type")) == {"choice", "interval"}  # no events in Cholec80: no text
    split_of = {}
    for s in suite:
        assert split_of.setdefault(s.video, s.split) == s.split
    assert set(split_of.values()) == {"train", "val", "test"}
    assert all(s.trajectory and s.captions is not None for s in suite)
    assert (suite.root / "captions.jsonl").is_file()
    report = json.loads((suite.root / "build_report.json").read_text())
    assert report["source_kind"] == "cholec80" and report["filters"]["kept"] == len(suite)
    letters = Counter(s.answer for s in suite if s.answer_type == "choice" and len(s.options) == 4)
    assert set(letters) == set("ABCD") and max(letters.values()) - min(letters.values()) <= 1


def test_every_answer_and_evidence_agrees_with_the_annotation_files(cholec80_suite, cholec80_dir):
    for s in cholec80_suite:
        phases, tools = _files(cholec80_dir, s)
        q = s.extra["query"]
        assert all(0 <= a <= b <= s.duration for a, b in s.evidence)
        correct = s.options[s.answer_index] if s.answer_type == "choice" else None
        if s.extra["template"] == "instrument_at":
            k = int(q["time"])
            on = {tool_label(t) for t, col in tools.items() if col[k]}
            assert [o for o in s.options if o in on] == [correct]
            assert s.evidence == ((k, k + 1.0),)
        elif s.extra["template"] == "phase_at":
            assert phase_label(phases[int(q["time"] * FPS)]) == correct
        elif s.extra["template"] == "phase_grounding":
            a, b = s.answer_interval
            inside = phases[int(round(a * FPS)) : int(round(b * FPS))]
            assert set(inside) == {q["phase"]}
            assert round(a * FPS) == 0 or phases[int(round(a * FPS)) - 1] != q["phase"]
            assert round(b * FPS) == len(phases) or phases[int(round(b * FPS))] != q["phase"]
            assert s.evidence == ((a, b),)
        elif s.extra["template"] == "instrument_grounding":
            visits = _visits(tools[q["tool"]], q["min_visit"])
            assert s.answer_interval == visits[q["occurrence"]] and s.evidence == (visits[q["occurrence"]],)
        elif s.extra["template"] == "instrument_count":
            col = tools[q["tool"]]
            a, b = q["start"], q["end"]
            assert not col[int(a)] and not col[min(int(b), len(col) - 1)]  # window edges lie in gaps
            inside = [v for v in _visits(col, q["min_visit"]) if a <= v[0] and v[1] <= b]
            assert int(correct) == len(inside) and s.evidence == ((a, b),)
        else:
            raise AssertionError(f"unexpected template {s.extra['template']}")


def test_cholect50_suite_has_action_questions_consistent_with_the_json(cholect50_suite, cholect50_dir):
    suite = cholect50_suite
    actions = [s for s in suite if s.task == "action_recognition"]
    assert actions and {s.source for s in suite} == {"cholect50"}
    for s in actions:
        name = re.search(r"(VID\d+)", s.video).group(1)
        raw = json.loads((cholect50_dir / "labels" / f"{name}.json").read_text())
        cats = raw["categories"]
        k = int(s.extra["query"]["time"])
        active = set()
        for vec in raw["annotations"][str(k)]:
            if vec[1] >= 0:
                tool = {"specimen_bag": "SpecimenBag"}.get(
                    cats["instrument"][str(vec[1])], cats["instrument"][str(vec[1])].capitalize()
                )
                active.add(
                    f"{tool} {cats['verb'][str(vec[7])]} {cats['target'][str(vec[8])]}".replace("_", " ")
                )
        correct = s.options[s.answer_index]
        assert [o for o in s.options if o in active] == [correct]


def test_build_resumes_from_cached_per_video_work(cholec80_dir, tmp_path, monkeypatch):
    from medscope_gym.suite import builder

    out = tmp_path / "suite"
    real_write = builder.write_suite_folder

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(builder, "write_suite_folder", crash)
    with pytest.raises(KeyboardInterrupt):
        build_suite(cholec80_dir, out, CFG, progress=False)
    assert not out.exists() and len(list((tmp_path / ".suite.work").rglob("video*.json"))) == 3

    def no_questions(*args, **kwargs):
        raise AssertionError("a resumed build must reuse the cached questions")

    monkeypatch.setattr(builder, "write_suite_folder", real_write)
    monkeypatch.setattr(builder, "generate_questions", no_questions)
    build_suite(cholec80_dir, out, CFG, progress=False)
    assert len(Suite.load(out)) > 0 and not (tmp_path / ".suite.work").exists()


def test_assign_splits_is_by_video_and_deterministic():
    ids = [f"v{i}" for i in range(10)]
    a = assign_splits(ids, (0.6, 0.2, 0.2), seed=1)
    assert a == assign_splits(list(reversed(ids)), (0.6, 0.2, 0.2), seed=1)
    assert Counter(a.values()) == {"train": 6, "val": 2, "test": 2}
    assert set(assign_splits(["x", "y"], (1, 0, 0), seed=0).values()) == {"train", "test"}


def test_medvidqa_rows_build_into_a_suite_whose_trajectories_replay(cholec80_dir, tmp_path):
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    src = tmp_path / "mvqa"
    (src / "clips").mkdir(parents=True)
    for k in (1, 2):
        (src / "clips" / f"v{k}.mp4").hardlink_to(cholec80_dir / "videos" / f"video0{k}.mp4")
    rows = [
        {
            "sample_id": f"q{k}{j}",
            "question": f"When is step {j} shown in clip {k}?",
            "answer_start_second": 10.0 * j,
            "answer_end_second": 10.0 * j + 6,
            "video_length": 70,
            "video_id": f"v{k}",
        }
        for k in (1, 2)
        for j in (1, 2, 3)
    ]
    (src / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = BuildConfig(splits=(0.5, 0.0, 0.5), filters=FilterConfig(text_only=False))  # too few rows to judge
    result = build_suite(src, tmp_path / "suite", cfg, progress=False)
    suite = Suite.load(result.path)
    assert sorted(s.id for s in suite) == sorted(r["sample_id"] for r in rows)
    assert {s.video for s in suite} == {"videos/v1.mp4", "videos/v2.mp4"} and suite.counts("split")[
        "test"
    ] == 3
    env = ClinVideoEnv(suite)
    for i, s in enumerate(suite):
        env.reset(options={"sample_index": i})
        for turn in s.trajectory:
            obs, reward, term, trunc, info = env.step(turn["action"])
        assert term and info["reward_parts"] == pytest.approx(s.trajectory[-1]["reward"])
        assert info["reward_parts"]["accuracy"] == 1.0
    env.close()
