"""Burned-index videos, built once per session, for decode-exactness tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def burned_videos(tmp_path_factory):
    """(path, fps, num_frames) of short burned-index videos: keyframes every 250 and 25 frames, B-frames."""
    from medscope_gym.synthetic import generate_procedure, render_video

    root = tmp_path_factory.mktemp("burned")
    out = []
    for name, keyint, bframes in (("k250", 250, 0), ("k25b", 25, 2)):
        proc = generate_procedure(seed=3, duration_s=24.0, fps=25.0)
        path = root / f"{name}.mp4"
        render_video(
            proc, path, width=160, height=120, keyframe_interval=keyint, bframes=bframes, burn_index=True
        )
        out.append((str(path), 25.0, proc.num_frames))
    return out
