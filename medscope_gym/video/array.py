"""An in-memory video backed by a numpy array: exact, instant, for tests and generated clips."""

from __future__ import annotations

import numpy as np

from medscope_gym.video.base import Video

__all__ = ["ArrayVideo"]


class ArrayVideo(Video):
    """Frames held in memory; ``timestamps`` default to ``i / fps`` (constant frame rate)."""

    def __init__(
        self, frames: np.ndarray, fps: float, timestamps: np.ndarray | None = None, path: str | None = None
    ) -> None:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise ValueError(
                f"frames must be a non-empty (n, h, w, 3) uint8 array, got {frames.shape} {frames.dtype}"
            )
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self._frames = frames
        self._fps = float(fps)
        if timestamps is None:
            timestamps = np.arange(len(frames), dtype=np.float64) / self._fps
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if timestamps.shape != (len(frames),) or np.any(np.diff(timestamps) < 0):
            raise ValueError("timestamps must be non-decreasing, one per frame")
        self._timestamps = timestamps
        self._end = float(timestamps[-1] + 1.0 / self._fps)
        self._size = (int(frames.shape[1]), int(frames.shape[2]))
        self.path = path

    def _read(self, indices: np.ndarray) -> np.ndarray:
        return self._frames[indices]
