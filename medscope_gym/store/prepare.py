"""Build the frame stores of many videos ahead of time, in parallel worker processes.

Each video is built in its own worker process (``spawn``: no decoder state is inherited
across fork, see docs/retrieval.md); finished stores are skipped, so an interrupted run resumes where it
stopped, and every store appears atomically (see :func:`~medscope_gym.store.ensure_store`).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from medscope_gym.store.builder import ensure_store, store_path
from medscope_gym.store.frame_store import MANIFEST
from medscope_gym.store.key import StoreSettings
from medscope_gym.suite import Suite

__all__ = ["PrepareResult", "prepare_videos", "suite_videos"]


@dataclass(frozen=True)
class PrepareResult:
    """What happened to one video."""

    video: str
    store: str | None
    status: str
    """"built", "cached" (already there) or "failed"."""
    seconds: float = 0.0
    frames: int = 0
    error: str = ""


def _build_one(video: str, root: str, settings: StoreSettings, threads: int) -> tuple[str, float, int]:
    started = time.perf_counter()
    path = ensure_store(video, root, settings, threads=threads)
    frames = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["num_frames"]
    return str(path), time.perf_counter() - started, int(frames)


def prepare_videos(
    videos: Sequence[str | os.PathLike[str]],
    root: str | os.PathLike[str],
    settings: StoreSettings,
    *,
    workers: int = 1,
    threads: int = 1,
    progress: bool = True,
) -> list[PrepareResult]:
    """Ensure a store for every video under ``root``; failures are reported, never fatal to the rest."""
    from tqdm.auto import tqdm

    results: list[PrepareResult] = []
    todo: list[str] = []
    for video in dict.fromkeys(str(v) for v in videos):
        done = store_path(video, root, settings)
        if (done / MANIFEST).is_file():
            results.append(PrepareResult(video, str(done), "cached"))
        else:
            todo.append(video)
    bar = tqdm(total=len(todo), unit="video", desc="frame stores", disable=not progress or not todo)
    if todo:
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo))), mp_context=ctx) as pool:
            futures = {pool.submit(_build_one, v, str(root), settings, threads): v for v in todo}
            for future in as_completed(futures):
                video = futures[future]
                try:
                    path, seconds, frames = future.result()
                    results.append(PrepareResult(video, path, "built", seconds, frames))
                except Exception as exc:  # one broken video must not stop the others
                    results.append(PrepareResult(video, None, "failed", error=f"{type(exc).__name__}: {exc}"))
                bar.update(1)
    bar.close()
    order = {v: i for i, v in enumerate(dict.fromkeys(str(v) for v in videos))}
    return sorted(results, key=lambda r: order[r.video])


def suite_videos(spec: str | os.PathLike[str]) -> list[Path]:
    """Absolute paths of the distinct videos of a suite folder or ``builtin:NAME``."""
    suite = Suite.from_spec(spec)
    return [suite.root / rel for rel in suite.videos()]
