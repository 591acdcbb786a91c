"""The on-disk frame store of one video and its reader.

A store is a folder named by :func:`~medscope_gym.store.key.store_key`::

    manifest.json   format, settings, source size, stream time base and rate, frame sizes
    frames.npy      (n, h, w, 3) uint8: the grid frames, resized — memory-mapped, never loaded whole
    indices.npy     (n,) int64: the source frame index of each stored frame (sorted)
    pts.npy         (N,) int64: presentation time of every source frame, in time-base ticks
    keyframe.npy    (N,) bool: which source frames start a GOP

``pts`` and ``keyframe`` are the verified frame index of the whole video, so opening a
stored video needs no decoder at all, and an exact decoder opened later (for get_frame)
skips its own indexing pass.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from medscope_gym.errors import VideoError
from medscope_gym.store.key import STORE_FORMAT, StoreSettings
from medscope_gym.video.pyav_backend import FrameIndex

__all__ = ["MANIFEST", "FrameStore"]

MANIFEST = "manifest.json"


@dataclass
class FrameStore:
    """A loaded store: its settings, the verified frame index and the memory-mapped grid frames."""

    root: Path
    settings: StoreSettings
    index: FrameIndex
    native_size: tuple[int, int]
    frames: np.ndarray
    """``(n, h, w, 3)`` uint8 memmap (read-only)."""
    indices: np.ndarray
    """``(n,)`` int64, sorted: the source frame of each stored frame."""
    manifest: dict

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> FrameStore:
        """Open a finished store folder; raises :class:`VideoError` if it is missing or inconsistent."""
        root = Path(root)
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("format") != STORE_FORMAT:
                raise VideoError(f"frame store {str(root)!r} has format {manifest.get('format')!r}, "
                                 f"expected {STORE_FORMAT}")
            frames = np.load(root / "frames.npy", mmap_mode="r")
            indices = np.load(root / "indices.npy")
            pts = np.load(root / "pts.npy")
            keyframe = np.load(root / "keyframe.npy")
        except VideoError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise VideoError(f"frame store {str(root)!r} cannot be read: {exc}") from exc
        num, den = manifest["time_base"]
        index = FrameIndex(pts, keyframe, Fraction(num, den), float(manifest["avg_fps"]))
        store = cls(
            root=root,
            settings=StoreSettings(**manifest["settings"]),
            index=index,
            native_size=tuple(manifest["native_size"]),
            frames=frames,
            indices=indices,
            manifest=manifest,
        )
        if len(indices) != len(frames) or (len(indices) and indices[-1] >= index.num_frames):
            raise VideoError(f"frame store {str(root)!r} is inconsistent (frames vs indices)")
        return store

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(h, w)`` of the stored frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def timestamps(self) -> tuple[np.ndarray, float]:
        """Exact start time of every source frame and the end of the last one."""
        return self.index.timestamps()

    def positions(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row of each source frame index in :attr:`frames`, and whether the store holds it."""
        pos = np.searchsorted(self.indices, indices)
        safe = np.minimum(pos, max(len(self.indices) - 1, 0))
        hit = (pos < len(self.indices)) & (self.indices[safe] == indices) if len(self.indices) else pos < 0
        return safe, hit

