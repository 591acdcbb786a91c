"""Fixtures of the retrieval benchmarks: cached generated videos, their stores, one-question suites.

Video lengths come from ``$MEDSCOPE_BENCH_MINUTES`` (default ``1,10``; docs/results.md's full run is
``1,10,60,120``). Videos are rendered once into ``$MEDSCOPE_CACHE/bench``.
"""

from __future__ import annotations

import os

import pytest

from benchmarks.retrieval import one_sample_suite
from benchmarks.videos import bench_video
from medscope_gym.store import StoreSettings, ensure_store
from medscope_gym.video import PyAVVideo

MINUTES = [float(m) for m in os.environ.get("MEDSCOPE_BENCH_MINUTES", "1,10").split(",")]


@pytest.fixture(scope="session", params=MINUTES, ids=lambda m: f"{m:g}min")
def bench_case(request, tmp_path_factory):
    """(minutes, video path, store root, one-question suite folder, duration) with the store built."""
    minutes = request.param
    path = bench_video(minutes)
    work = tmp_path_factory.mktemp(f"bench{minutes:g}")
    ensure_store(path, work / "stores", StoreSettings())
    duration = PyAVVideo(path).duration
    suite = one_sample_suite(work / "suite", path, duration, 25.0)
    return minutes, path, work / "stores", suite, duration
