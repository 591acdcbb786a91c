"""Reference trajectories replay exactly through ClinVideoEnv; exports round-trip."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.protocol import check_trajectory_format
from medscope_gym.suite import Suite
from medscope_gym.suite.builder import BuildConfig, build_suite
from medscope_gym.suite.export import export_suite
from medscope_gym.suite.filters import FilterConfig
from medscope_gym.suite.sources import load_source


@pytest.fixture(scope="module")
def small():
    return Suite.from_spec("builtin:synthsurg-small")


def _replay(suite: Suite) -> None:
    env = ClinVideoEnv(suite)
    try:
        for i, s in enumerate(suite):
            env.reset(seed=i, options={"sample_index": i})
            assert check_trajectory_format([t["action"] for t in s.trajectory]).ok
            for turn in s.trajectory:
                obs, reward, term, trunc, info = env.step(turn["action"])
                if turn.get("tool") == "crop_video":
                    assert obs["video_times"].reshape(-1) == pytest.approx(turn["timestamps"], abs=1e-6)
                elif turn.get("tool") == "get_frame":
                    assert obs["image_times"].reshape(-1) == pytest.approx(turn["timestamps"], abs=1e-6)
            assert term and not trunc
            assert info["reward_parts"] == pytest.approx(
                s.trajectory[-1]["reward"]
            ) and reward == pytest.approx(s.trajectory[-1]["reward"]["total"])
    finally:
        env.close()


def test_builtin_small_trajectories_replay_with_same_timestamps_and_reward(small):
    _replay(small)
    shapes = Counter(tuple(t.get("tool", "answer") for t in s.trajectory) for s in small)
    assert len(shapes) >= 4  # refined crops, optional get_frame, answers straight from the preview
    assert any(len(s.trajectory) == 1 for s in small)
    assert any(sum(t.get("tool") == "crop_video" for t in s.trajectory) == 2 for s in small)
    for s in small:
        if len(s.trajectory) > 1:
            crop = s.trajectory[0]
            assert (
                f"{crop['timestamps'][0]:.1f} s" in s.trajectory[1]["action"]
            )  # reasoning cites what it saw


def test_cholect50_trajectories_replay(cholect50_dir, tmp_path):
    cfg = BuildConfig(
        filters=FilterConfig(preview=False, text_only=False), templates=("action_at", "phase_at")
    )
    out = build_suite(cholect50_dir, tmp_path / "s", cfg, progress=False).path
    _replay(Suite.load(out))


def test_rl_rows_round_trip_through_the_paper_rows_loader(small, tmp_path):
    root = tmp_path / "rows"  # a folder with the videos and the exported rows, as a user would hand over
    for rel in small.videos():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).hardlink_to(small.root / rel)
    (root / "build_report.json").write_text(json.dumps({"not": "rows"}, indent=1))
    out = root / "export"
    counts = export_suite(small, out)
    assert counts["rl_train.jsonl"] == sum(s.split == "train" for s in small)
    rows = [json.loads(line) for line in (out / "rl_test.jsonl").read_text().splitlines()]
    extra = rows[0]["extra_info"]
    assert "video_segment" in extra or "frame_time" in extra
    assert rows[0]["prompt"][0]["content"].startswith("<video>\nYou are watching")
    loaded = load_source(root, "paper_rows")
    assert not [i for i in loaded.issues if i.level == "error"]
    back = {s.id: s for s in loaded.samples}
    assert len(back) == len(small)
    for s in small:
        b = back[s.id]
        assert (b.question, b.options, b.answer, b.answer_type, b.task) == (
            s.question,
            s.options,
            s.answer,
            s.answer_type,
            s.task,
        )
        span = (min(w[0] for w in s.evidence), max(w[1] for w in s.evidence))
        assert b.evidence[0] == pytest.approx(span) and b.video == str((root / s.video).resolve())


def test_sft_records_name_the_frames_the_env_returns(small, tmp_path):
    export_suite(small, tmp_path, formats=("sft",))
    records = [json.loads(line) for line in (tmp_path / "sft_train.jsonl").read_text().splitlines()]
    by_id = {s.id: s for s in small}
    for rec in records:
        s = by_id[rec["id"]]
        roles = [m["role"] for m in rec["messages"]]
        assert roles[:2] == ["system", "user"] and roles.count("assistant") == len(s.trajectory)
        blocks = [b for m in rec["messages"][2:] if m["role"] == "user" for b in m["content"]]
        stamps = [b["timestamps"] for b in blocks if b["type"] == "video"]
        stamps += (
            [[b["timestamp"] for b in blocks if b["type"] == "image"]]
            if any(b["type"] == "image" for b in blocks)
            else []
        )
        want = [t["timestamps"] for t in s.trajectory if "timestamps" in t]
        assert sorted(map(tuple, stamps)) == sorted(map(tuple, want))
        video = next(b for b in rec["messages"][1]["content"] if b["type"] == "video")
        assert (tmp_path / video["video"]).resolve() == small.video_path(s)
        assert np.all(np.diff(video["timestamps"]) > 0) and rec["reward"] == s.trajectory[-1]["reward"]
