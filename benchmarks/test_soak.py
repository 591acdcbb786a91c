"""pytest-benchmark view of the soak run (``benchmarks/soak.py``): RSS and threads over many evictions.

``pytest benchmarks/test_soak.py -s`` runs ``$MEDSCOPE_SOAK_EPISODES`` (default 3000) mixed episodes
on the built-in ``synthsurg-small`` suite (6 videos) with ``max_open_videos=3``, so decoders are
evicted all the time; a fifth as many without frame stores (every reset of an evicted video then
decodes its preview, 10x slower). It prints RSS (raw and trimmed) and thread count after the
warm-up and at checkpoints, and the end / warm-up ratios (the baseline is the same run's
warm-up); the numbers also go to ``extra_info``. ``--benchmark-enable`` times the run.
"""

from __future__ import annotations

import os

import pytest

from benchmarks.soak import soak

EPISODES = int(os.environ.get("MEDSCOPE_SOAK_EPISODES", "3000"))
MAX_OPEN = 3


@pytest.mark.parametrize("frame_store", ["auto", None], ids=["store", "no-store"])
def test_soak(benchmark, frame_store):
    episodes = EPISODES if frame_store else max(30, EPISODES // 5)
    benchmark.group = f"soak, 6 videos, max_open_videos={MAX_OPEN}"
    results = []
    benchmark.pedantic(
        lambda: results.append(
            soak("builtin:synthsurg-small", episodes, max_open_videos=MAX_OPEN, frame_store=frame_store)
        ),
        rounds=1,
    )
    result = results[-1]
    print(f"\n[{'frame store' if frame_store else 'no store'}] {result.table()}")
    benchmark.extra_info.update(
        episodes=episodes,
        rss_warm_mib=round(result.warm.rss_mib, 1),
        rss_end_mib=round(result.end.rss_mib, 1),
        rss_ratio=round(result.rss_ratio, 3),
        trimmed_rss_warm_mib=round(result.warm.live_mib, 1),
        trimmed_rss_end_mib=round(result.end.live_mib, 1),
        trimmed_rss_ratio=round(result.live_ratio, 3),
        threads_warm=result.warm.threads,
        threads_end=result.end.threads,
        decode_threads_end=result.end.decode_threads,
    )
    assert result.end.decode_threads <= MAX_OPEN
