"""Exact frame access through decord, guarded against its known failure modes (see docs/retrieval.md).

decord can over-report the frame count of a container; reading past the real end then
fails or hangs. We verify the count once at open by decoding the last frame and, if that
fails, searching down for the last decodable one. Readers are created lazily, so an env
built in a parent process and forked into workers never shares a decoder across fork. Every
decoder call runs under a :class:`~medscope_gym.video.guard.DecodeGuard` time limit, so a hang
becomes a ``VideoError`` and the reader is replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medscope_gym.errors import VideoError
from medscope_gym.video.base import Video
from medscope_gym.video.guard import CHUNK_FRAMES, DEFAULT_DECODE_LIMIT_S, DecodeGuard
from medscope_gym.video.timestamps import exact_timestamps

__all__ = ["DecordVideo", "import_decord"]

INSTALL_HINT = "pip install 'medscope-gym[decord]'"


def import_decord():
    """The ``decord`` module, imported on first use: it is an optional extra, not a core dependency."""
    try:
        import decord
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"the decord video backend needs the optional package decord: {INSTALL_HINT} "
            "(or use the default backend, video_backend='pyav')",
            name="decord",
        ) from exc
    return decord


class DecordVideo(Video):
    """A video file read with ``decord.VideoReader`` (CPU)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        num_threads: int = 1,
        *,
        decode_limit_s: float | None = DEFAULT_DECODE_LIMIT_S,
    ) -> None:
        import_decord()  # fail here, naming the extra, rather than inside the decode guard
        self.path = str(path)
        self._num_threads = num_threads
        self._reader = None
        if not Path(self.path).is_file():
            raise VideoError(f"video {self.path!r} not found")
        self._guard = DecodeGuard(decode_limit_s, what=f"video {self.path!r}")
        try:
            self._guard(self._setup, action="opening and verifying the frame count")
        except BaseException:
            self.close()  # a video that fails to open leaves no reader or thread behind
            raise

    def _setup(self) -> None:
        reader = self._open()
        count = len(reader)
        if count <= 0:
            raise VideoError(f"video {self.path!r} has no video frames")
        count = self._verified_count(reader, count)
        table = reader.get_frame_timestamp(np.arange(count))
        self._timestamps, self._end = exact_timestamps(
            table[:, 0], float(reader.get_avg_fps()), ends=float(table[-1, 1])
        )
        frame = reader[0].asnumpy()
        self._size = (int(frame.shape[0]), int(frame.shape[1]))

    def _open(self):
        if self._reader is None:
            decord = import_decord()
            try:
                self._reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=self._num_threads)
            except Exception as exc:  # decord raises its own DECORDError and RuntimeError
                raise VideoError(f"video {self.path!r} cannot be opened by decord: {exc}") from exc
        return self._reader

    def _verified_count(self, reader, count: int) -> int:
        """Largest ``n <= count`` whose last frame really decodes."""
        if self._decodes(reader, count - 1):
            return count
        lo, hi = 0, count - 1  # frame lo decodes (checked below), frame hi does not
        if not self._decodes(reader, 0):
            raise VideoError(f"video {self.path!r}: not even the first frame decodes")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._decodes(reader, mid):
                lo = mid
            else:
                hi = mid
        return lo + 1

    @staticmethod
    def _decodes(reader, index: int) -> bool:
        try:
            reader.get_batch([index]).asnumpy()
            reader.seek(0)
            return True
        except Exception:
            return False

    def _read(self, indices: np.ndarray) -> np.ndarray:
        try:
            parts = [
                self._guard(self._batch, chunk, action=f"decoding frames {chunk[:4].tolist()}")
                for chunk in np.split(indices, range(CHUNK_FRAMES, len(indices), CHUNK_FRAMES))
            ]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        except VideoError:
            self._reader = None  # a reader that timed out or failed is not reused
            raise
        except Exception as exc:
            self._reader = None
            raise VideoError(
                f"video {self.path!r}: decoding frames {indices[:4].tolist()}… failed: {exc}"
            ) from exc

    def _batch(self, indices: np.ndarray) -> np.ndarray:
        return self._open().get_batch(indices.tolist()).asnumpy()

    def close(self) -> None:
        """Drop the reader and end the decode thread; safe to call twice, and from any thread.

        The video stays usable: the next read reopens both.
        """
        self._reader = None
        self._guard.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_reader"] = None  # decoders do not cross process boundaries
        return state
