"""Burned-index videos for the frame-store tests: long and short GOPs, B-frames, VFR, an odd size."""

from __future__ import annotations

import pytest

from medscope_gym.synthetic import generate_procedure, render_video

ENCODINGS = {
    "gop250": {"keyframe_interval": 250},
    "gop25-bframes": {"keyframe_interval": 25, "bframes": 2},
    "vfr": {"keyframe_interval": 50, "vfr_jitter": 0.6},
    "odd-size": {"keyframe_interval": 30, "bframes": 3, "width": 202, "height": 114},
}


@pytest.fixture(scope="session")
def store_videos(tmp_path_factory):
    """name -> path of a 20 s (500-frame) burned-index video at 25 fps."""
    root = tmp_path_factory.mktemp("store_videos")
    proc = generate_procedure(seed=9, duration_s=20.0, fps=25.0)
    out = {}
    for name, kw in ENCODINGS.items():
        out[name] = root / f"{name}.mp4"
        render_video(proc, out[name], **{"width": 160, "height": 120, "burn_index": True, **kw})
    return out
