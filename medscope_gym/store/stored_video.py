"""A :class:`Video` that serves grid frames from a frame store and everything else exactly.

Crops and the preview ask for frames on the store's grid at the store's size: those are
memory reads from the mapped ``frames.npy`` (no decoder, cost independent of the video's
length). Any other request — get_frame's native-resolution frames, an off-grid time such as
the midpoint of a very short crop, another pixel cap — goes to the exact backend, opened on
first need with the store's verified frame index, decoding sorted indices forward only;
recent native frames are kept in a small LRU cache (get_frame around one moment repeats).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medscope_gym.errors import ConfigError, VideoError
from medscope_gym.store.frame_store import FrameStore
from medscope_gym.video import BACKENDS, DecordVideo, PyAVVideo, Video, fit_pixels, resize_frames
from medscope_gym.video.guard import DEFAULT_DECODE_LIMIT_S

__all__ = ["StoredVideo"]


class StoredVideo(Video):
    """The video at ``path`` with its frame store; ``backend`` decodes what the store does not hold."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        store: FrameStore | str | os.PathLike[str],
        *,
        backend: str = "pyav",
        cache_frames: int = 6,
        decode_limit_s: float | None = DEFAULT_DECODE_LIMIT_S,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.path = str(path)
        if not Path(self.path).is_file():
            raise VideoError(f"video {self.path!r} not found")
        self._store_root = Path(store.root if isinstance(store, FrameStore) else store)
        self.store: FrameStore | None = store if isinstance(store, FrameStore) else None
        self._backend_name = backend
        self._cache_frames = max(0, int(cache_frames))
        self._decode_limit_s = decode_limit_s
        self._exact: Video | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        store = self._loaded()
        self._timestamps, self._end = store.timestamps()

    def _loaded(self) -> FrameStore:
        if self.store is None:
            self.store = FrameStore.load(self._store_root)
        return self.store

    # ------------------------------------------------------------------ Video API
    @property
    def size(self) -> tuple[int, int]:
        return self._loaded().native_size

    def frames(
        self, indices: Sequence[int] | np.ndarray, max_pixels: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stored frames where the store holds them at this size; the rest decoded and resized exactly."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        store = self._loaded()
        if idx.size == 0 or fit_pixels(*self.size, max_pixels) != store.frame_size:
            return super().frames(idx, max_pixels)
        if idx.min() < 0 or idx.max() >= self.num_frames:
            raise IndexError(f"frame index out of range [0, {self.num_frames}) in {self.path}")
        rows, hit = store.positions(idx)
        stamps = self._timestamps[idx].copy()
        if hit.all():
            return store.read_rows(rows), stamps
        out = np.empty((len(idx), *store.frame_size, 3), dtype=np.uint8)
        out[hit] = store.read_rows(rows[hit])
        out[~hit] = resize_frames(self.read(idx[~hit]), max_pixels)
        return out, stamps

    def _read(self, indices: np.ndarray) -> np.ndarray:
        wanted = indices.tolist()
        # Resolve every cache hit before inserting anything: an insert may evict a frame this very
        # call still needs.
        found = {i: self._cache[i] for i in wanted if i in self._cache}
        missing = np.array([i for i in wanted if i not in found], dtype=np.int64)
        if len(missing):
            found.update(zip(missing.tolist(), self._exact_video().read(missing)))
        if self._cache_frames:
            for i in wanted:
                self._cache[i] = found[i]
                self._cache.move_to_end(i)
            while len(self._cache) > self._cache_frames:
                self._cache.popitem(last=False)
        return np.stack([found[i] for i in wanted])

    def close(self) -> None:
        if self._exact is not None:
            self._exact.close()
        self._exact = None
        self._cache.clear()
        if self.store is not None:
            self.store.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        # The memmap and decoders are reopened in the receiving process, never copied into the pickle.
        state.update(store=None, _exact=None, _cache=OrderedDict())
        return state

    # ------------------------------------------------------------------ exact decoding
    def _exact_video(self) -> Video:
        """The exact decoder, opened on first need and checked against the store's frame index."""
        if self._exact is None:
            store = self._loaded()
            if self._backend_name == "pyav":
                exact: Video = PyAVVideo(self.path, index=store.index, decode_limit_s=self._decode_limit_s)
            elif self._backend_name == "decord":
                exact = DecordVideo(self.path, decode_limit_s=self._decode_limit_s)
                if exact.num_frames != store.index.num_frames:
                    exact.close()
                    raise VideoError(
                        f"video {self.path!r}: decord decodes {exact.num_frames} frames but the frame "
                        f"store {str(store.root)!r} verified {store.index.num_frames}"
                    )
            else:
                exact = BACKENDS[self._backend_name](self.path)
            self._exact = exact
        return self._exact
