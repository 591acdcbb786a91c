"""A tiny numeric-env suite shared by the SB3 tests (three short 1-fps videos, built once)."""

from __future__ import annotations

import pytest

from medscope_gym.synthetic import build_synthetic_suite


@pytest.fixture(scope="session")
def sb3_suite(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("sb3") / "suite"
    build_synthetic_suite(
        out, n_videos=3, min_duration_s=60.0, max_duration_s=80.0, seed=7, fps=1.0, splits=(0.67, 0.0, 0.33)
    )
    return str(out)
