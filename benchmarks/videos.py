"""The generated videos the retrieval benchmarks run on, rendered once into the cache.

Low resolution at 25 fps with a keyframe every 250 frames, like the long-GOP files of docs/retrieval.md:
what matters for retrieval is the GOP structure and the length, not the pixel count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medscope_gym.synthetic import default_cache_dir, generate_procedure, render_video

__all__ = ["BenchVideoSpec", "bench_video"]


@dataclass(frozen=True)
class BenchVideoSpec:
    """Geometry of a benchmark video; the defaults are the ones docs/results.md was measured on."""

    width: int = 320
    height: int = 180
    fps: float = 25.0
    keyframe_interval: int = 250
    seed: int = 11

    def file_name(self, minutes: float) -> str:
        return (
            f"bench-{minutes:g}min-{self.width}x{self.height}-{self.fps:g}fps-k{self.keyframe_interval}"
            f"-s{self.seed}.mp4"
        )


def bench_video(
    minutes: float, spec: BenchVideoSpec | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Path of the ``minutes``-long benchmark video, rendering it first if it is not cached.

    Rendering writes beside the target and renames into place, so an interrupted run never
    leaves a truncated video behind.
    """
    spec = spec or BenchVideoSpec()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "bench"
    path = root / spec.file_name(minutes)
    if not path.is_file():
        procedure = generate_procedure(spec.seed, minutes * 60.0, spec.fps)
        render_video(
            procedure,
            path,
            width=spec.width,
            height=spec.height,
            keyframe_interval=spec.keyframe_interval,
            bframes=0,
        )
    return path
