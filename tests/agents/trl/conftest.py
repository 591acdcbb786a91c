"""Fixtures of the TRL adapter tests: a small two-video suite built once (the tiny checkpoint and the
one-thread setting come from tests/agents/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def trl_suite(tmp_path_factory, _isolated_cache):
    """Two one-minute synthetic procedures at 10 fps (built in about a second); train split = video01."""
    from medscope_gym.suite import Suite
    from medscope_gym.synthetic.builtin import build_synthetic_suite

    root = build_synthetic_suite(
        tmp_path_factory.mktemp("trl_suite") / "suite",
        n_videos=2,
        min_duration_s=60.0,
        max_duration_s=60.0,
        seed=0,
        width=96,
        height=72,
        fps=10.0,
    )
    return Suite.load(root)


@pytest.fixture(scope="session")
def small_frames():
    """Frame caps small enough for the tiny model on a CPU."""
    from medscope_gym.agents.vlm.encoding import FrameConfig

    return FrameConfig(max_pixels=56 * 56, max_preview_frames=4, max_crop_frames=4, max_images=2)
