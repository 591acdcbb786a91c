"""The video interface the tools read from: exact frames with their true timestamps.

A frame ``i`` is shown from ``timestamps[i]`` until ``timestamps[i + 1]``; asking for time
``t`` returns the frame on screen at ``t``. Frame counts are verified by the backends, never
taken from a container header on trust (see docs/retrieval.md).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from medscope_gym.video.resize import resize_frames

__all__ = ["Video"]


class Video(abc.ABC):
    """Random access to the frames of one video."""

    path: str | None = None

    # Backends set these three when they open a video; the properties below read them.
    _timestamps: np.ndarray
    _end: float
    _size: tuple[int, int]

    @property
    def timestamps(self) -> np.ndarray:
        """Start time in seconds of every frame, float64, non-decreasing, length ``num_frames``."""
        return self._timestamps

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        return self._end - float(self._timestamps[0])

    @property
    def size(self) -> tuple[int, int]:
        """Native ``(height, width)`` of the frames."""
        return self._size

    @abc.abstractmethod
    def _read(self, indices: np.ndarray) -> np.ndarray:
        """Decode sorted, unique, in-range ``indices`` to a ``(n, h, w, 3)`` uint8 array."""

    def close(self) -> None:  # noqa: B027 - optional hook: in-memory videos hold nothing to release
        """Release decoder resources; safe to call twice."""

    @property
    def num_frames(self) -> int:
        return int(len(self.timestamps))

    @property
    def fps(self) -> float:
        """Average frame rate (frames over duration)."""
        return self.num_frames / self.duration if self.duration > 0 else 0.0

    def index_at(self, times: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Index of the frame on screen at each time (clamped to the first/last frame)."""
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
        idx = np.searchsorted(self.timestamps, t + 1e-9, side="right") - 1
        return np.clip(idx, 0, self.num_frames - 1).astype(np.int64)

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` in the order asked (duplicates allowed), decoded once each, sorted."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            h, w = self.size
            return np.zeros((0, h, w, 3), dtype=np.uint8)
        if idx.min() < 0 or idx.max() >= self.num_frames:
            raise IndexError(f"frame index out of range [0, {self.num_frames}) in {self.path or 'video'}")
        unique, inverse = np.unique(idx, return_inverse=True)
        return self._read(unique)[inverse]

    def frames(
        self, indices: Sequence[int] | np.ndarray, max_pixels: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames at ``indices`` resized to at most ``max_pixels`` (aspect kept), with their timestamps."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return resize_frames(self.read(idx), max_pixels), self.timestamps[idx].copy()

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
