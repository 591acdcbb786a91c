"""pytest-benchmark view of ``python -m benchmarks.testbed_render``: a few testbed frames rendered with
per-frame noise streams, beside the old whole-video noise draw (the baseline)."""

from __future__ import annotations

import numpy as np

from benchmarks.testbed_render import compare_render, whole_video_noise
from medscope_gym.synthetic.testbed import generate_testbed_video, render_frames


def test_render_three_frames(benchmark):
    video = generate_testbed_video(0, 240.0)
    which = np.array([100, 101, 102])
    benchmark.group = "testbed: 3 frames of a 240 s video"
    frames = benchmark(render_frames, video, which)
    assert frames.shape == (3, 64, 64, 3)
    assert np.array_equal(frames[1:], render_frames(video, which[1:]))  # a frame is itself whatever else


def test_baseline_whole_video_noise(benchmark):
    video = generate_testbed_video(0, 240.0)
    benchmark.group = "testbed: 3 frames of a 240 s video"
    noise = benchmark(whole_video_noise, video, np.array([100, 101, 102]))
    assert noise.shape == (3, 64, 64, 1)


def test_report_rows():
    rows = compare_render(duration=60.0, repeats=2)
    assert [row["case"] for row in rows] == ["3 frames at a symbol", "16 preview frames", "16 crop frames"]
    assert all(row["per_frame_s"] > 0 and row["whole_video_noise_s"] > 0 for row in rows)
