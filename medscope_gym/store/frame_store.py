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
from dataclasses import dataclass, field
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
    _fd: int = field(default=-1, repr=False, compare=False)
    _fd_pid: int = field(default=0, repr=False, compare=False)

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> FrameStore:
        """Open a finished store folder; raises :class:`VideoError` if it is missing or inconsistent."""
        root = Path(root)
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("format") != STORE_FORMAT:
                raise VideoError(
                    f"frame store {str(root)!r} has format {manifest.get('format')!r}, "
                    f"expected {STORE_FORMAT}"
                )
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

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Copy of the stored frames at ``rows``, read with one ``preadv`` per run of consecutive rows.

        Reading beats touching the memory map: the pages stay in the OS page cache instead of
        being faulted into this process one 4 KiB page at a time (a 60 s crop is 9 MB), so the
        cost does not depend on which part of a long video was read before, and the env's resident
        memory does not grow with the store.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        h, w = self.frame_size
        out = np.empty((len(rows), h, w, 3), dtype=np.uint8)
        if not len(rows):
            return out
        fd = self._file()
        row_bytes = h * w * 3
        breaks = (np.flatnonzero(np.diff(rows) != 1) + 1).tolist()
        for a, b in zip([0, *breaks], [*breaks, len(rows)]):
            view = memoryview(out[a:b]).cast("B")
            got = os.preadv(fd, [view], int(self.frames.offset) + int(rows[a]) * row_bytes)
            if got != len(view):
                raise VideoError(f"frame store {str(self.root)!r} is truncated (frames.npy)")
        return out

    def _file(self) -> int:
        if self._fd < 0 or self._fd_pid != os.getpid():
            self._fd, self._fd_pid = os.open(self.root / "frames.npy", os.O_RDONLY), os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd >= 0 and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = -1

    def __del__(self) -> None:
        self.close()

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
