"""Decoders release their memory and decode thread when closed, evicted or dropped."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import numpy as np
import pytest

from benchmarks.soak import process_stats, soak
from medscope_gym.errors import VideoError
from medscope_gym.synthetic import build_synthetic_suite, generate_procedure, render_video
from medscope_gym.video import BACKENDS, DecodeGuard, DecodeTimeout


def _decode_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "medscope-decode"}


def _gone(threads: set[threading.Thread], limit_s: float = 5.0) -> bool:
    for t in threads:
        t.join(limit_s)
    return not any(t.is_alive() for t in threads)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("lifetime") / "clip.mp4"
    render_video(generate_procedure(seed=4, duration_s=8.0, fps=25.0), path, keyframe_interval=50)
    return path


def test_close_from_inside_a_guarded_call_does_not_wait_on_itself():
    guard = DecodeGuard(2.0)
    before = _decode_threads()
    guard(guard.close)  # the old close() waited for the lock its own caller held: a DecodeTimeout
    assert _gone(_decode_threads() - before)
    assert guard(lambda: 7) == 7  # a closed guard starts a fresh thread on its next call


def test_an_idle_decode_thread_keeps_no_reference_to_the_last_result():
    guard = DecodeGuard(5.0)
    frames = guard(np.ones, (256, 256, 3))
    ref = weakref.ref(frames)
    del frames
    gc.collect()
    assert ref() is None
    guard.close()


def test_a_dropped_guard_and_an_abandoned_thread_both_exit():
    before = _decode_threads()
    guard = DecodeGuard(5.0)
    guard(int)
    del guard
    gc.collect()
    assert _gone(_decode_threads() - before)

    guard = DecodeGuard(0.2)
    with pytest.raises(DecodeTimeout):
        guard(time.sleep, 0.6)
    assert _gone(_decode_threads() - before)  # it exits once the stuck call returns
    guard.close()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_close_ends_the_decode_thread_and_the_video_reopens(clip, backend):
    before = _decode_threads()
    video = BACKENDS[backend](clip)
    first = video.read([3, 60])
    assert len(_decode_threads() - before) == 1
    video.close()
    assert _gone(_decode_threads() - before)
    np.testing.assert_array_equal(video.read([3, 60]), first)
    video.close()
    video.close()  # twice is fine
    assert _gone(_decode_threads() - before)


def test_a_failed_pyav_decode_drops_its_reader_on_the_decode_thread(clip, monkeypatch):
    video = BACKENDS["pyav"](clip, decode_limit_s=5.0)
    expected = video.read([40])
    monkeypatch.setattr(video, "_next_frame", lambda reader: 1 / 0)
    with pytest.raises(VideoError, match="decoding frame"):
        video.read([20])
    assert video._container is None
    monkeypatch.undo()
    np.testing.assert_array_equal(video.read([40]), expected)
    video.close()


def test_a_video_that_fails_to_open_leaves_no_thread(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    before = _decode_threads()
    for cls in BACKENDS.values():
        with pytest.raises(VideoError):
            cls(bad)
    gc.collect()
    assert _gone(_decode_threads() - before)


@pytest.fixture(scope="module")
def soak_suite(tmp_path_factory):
    """Six short videos: twice as many as the env below keeps open."""
    return build_synthetic_suite(
        tmp_path_factory.mktemp("soak") / "suite", n_videos=6, min_duration_s=20, max_duration_s=30, seed=2
    )


@pytest.mark.parametrize("frame_store", ["auto", None], ids=["store", "no-store"])
def test_evicting_decoders_keeps_memory_and_threads_flat(soak_suite, frame_store):
    """A quick ``benchmarks/soak.py`` run: evictions on every few resets, RSS and threads bounded."""
    max_open = 3
    base_threads = process_stats()[1]
    result = soak(soak_suite, 240, max_open_videos=max_open, warmup=60, every=60, frame_store=frame_store)
    print(result.table())
    assert all(c.decode_threads <= max_open for c in result.checkpoints), result.table()
    # an open PyAV decoder may hold a few FFmpeg threads besides its decode thread
    assert max(c.threads for c in result.checkpoints) <= base_threads + 4 * max_open, result.table()
    # raw RSS wobbles with glibc's high-water mark; memory still in use after a trim must not grow
    assert result.end.live_mib <= 1.10 * result.warm.live_mib, result.table()
