"""The env serves tool calls from frame stores by default; ``medscope prepare`` and ``bench`` run."""

from __future__ import annotations

import numpy as np
import pytest

from medscope_gym.cli import main
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.errors import ConfigError
from medscope_gym.protocol import format_tool_call
from medscope_gym.store import StoredVideo, StoreSettings, store_path
from medscope_gym.store.prepare import prepare_videos, suite_videos
from medscope_gym.video import PyAVVideo


def _crop(s, e):
    return format_tool_call("crop_video", {"start_time": s, "end_time": e})


def _frame(t):
    return format_tool_call("get_frame", {"timestamp": t})


def test_env_uses_the_store_and_observations_match_direct_decoding(tmp_path):
    with_store = ClinVideoEnv("builtin:synthsurg-small", frame_store=tmp_path / "stores")
    direct = ClinVideoEnv("builtin:synthsurg-small", frame_store=None)
    for env in (with_store, direct):
        env.reset(seed=0, options={"sample_index": 0})
    assert isinstance(with_store._ep.video, StoredVideo) and isinstance(direct._ep.video, PyAVVideo)
    assert list((tmp_path / "stores").iterdir())  # built lazily on first use
    for action in (_crop(3.2, 41.0), _frame(12.5), _crop(10.0, 10.3)):
        a, *_ = with_store.step(action)
        b, *_ = direct.step(action)
        for key in ("text", "video_times", "image_times"):
            assert np.array_equal(a[key], b[key]) if key != "text" else a[key] == b[key]
        np.testing.assert_array_equal(a["video"], b["video"])
        np.testing.assert_array_equal(a["images"], b["images"])


def test_env_rejects_bad_store_and_backend_arguments():
    with pytest.raises(ConfigError, match="frame_store"):
        ClinVideoEnv("builtin:synthsurg-small", frame_store=3)
    with pytest.raises(ConfigError, match="backend"):
        ClinVideoEnv("builtin:synthsurg-small", video_backend="magic")


def test_env_default_store_lives_in_the_cache(monkeypatch, tmp_path):
    from medscope_gym.suite import Suite

    suite = Suite.from_spec("builtin:synthsurg-small")  # built into the session cache first
    monkeypatch.setenv("MEDSCOPE_CACHE", str(tmp_path))
    env = ClinVideoEnv(suite)
    env.reset(seed=1)
    assert isinstance(env._ep.video, StoredVideo)
    assert env._ep.video.store.root.parent == tmp_path / "frame_stores"


def test_prepare_builds_in_parallel_resumes_and_reports_failures(tmp_path):
    from medscope_gym.suite import Suite

    videos = suite_videos("builtin:synthsurg-small")[:2]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    first = prepare_videos([*videos, broken], tmp_path / "s", StoreSettings(), workers=2, progress=False)
    assert [r.status for r in first] == ["built", "built", "failed"] and "broken.mp4" in first[2].error
    again = prepare_videos(videos, tmp_path / "s", StoreSettings(), workers=2, progress=False)
    assert [r.status for r in again] == ["cached", "cached"]
    assert all(store_path(v, tmp_path / "s", StoreSettings()).is_dir() for v in videos)
    assert len(Suite.from_spec("builtin:synthsurg-small").videos()) >= 2


def test_prepare_command(tmp_path, capsys):
    assert (
        main(
            ["prepare", "builtin:synthsurg-small", "--store-dir", str(tmp_path), "--workers", "1", "--quiet"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "built" in out and "0 failed" in out
    assert main(["prepare", "builtin:synthsurg-small", "--store-dir", str(tmp_path), "--quiet"]) == 0
    assert "0 built" in capsys.readouterr().out


def test_bench_command_prints_one_table_with_ratios(tmp_path, capsys):
    rc = main(
        [
            "bench",
            "--minutes",
            "0.2",
            "--size",
            "160x120",
            "--repeats",
            "2",
            "--naive-repeats",
            "1",
            "--vector-copies",
            "2",
            "--env-steps",
            "2",
            "--quiet",
            "--json",
            str(tmp_path / "b.json"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "logical cores" in out and "decord / ours" in out and "build / plain" in out
    assert "AsyncVectorEnv ×2" in out and "peak RSS" in out and (tmp_path / "b.json").is_file()
