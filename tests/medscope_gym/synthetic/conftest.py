"""Session fixtures: small synthetic videos and the built-in suite, built once per test run."""

from __future__ import annotations

from pathlib import Path

import pytest

from medscope_gym.synthetic import Procedure, builtin_suite_path, generate_procedure, render_video

# A 60 s procedure: all seven phases and three events.
SHORT_SEED, SHORT_DURATION_S = 16, 60.0


@pytest.fixture(scope="session")
def short_procedure() -> Procedure:
    proc = generate_procedure(SHORT_SEED, SHORT_DURATION_S)
    assert len(proc.events) >= 2, "pick a seed whose short procedure has events"
    return proc


@pytest.fixture(scope="session")
def indexed_videos(short_procedure: Procedure, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The short procedure with the frame index burned in, at two GOP sizes, both with B-frames."""
    root = tmp_path_factory.mktemp("indexed")
    out = {}
    for name, keyint in (("gop250", 250), ("gop25", 25)):
        out[name] = root / f"{name}.mp4"
        render_video(short_procedure, out[name], keyframe_interval=keyint, bframes=3, burn_index=True)
    return out


@pytest.fixture(scope="session")
def suite_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def small_suite(suite_cache: Path) -> Path:
    return builtin_suite_path("synthsurg-small", cache_dir=suite_cache)
