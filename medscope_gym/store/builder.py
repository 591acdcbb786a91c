"""Build a frame store in one sequential decode pass (SPEC §9: decode each video once).

The pass demuxes the packets first (no decoding: the frame times and keyframes), picks the
frames on screen at the grid times ``(k + 0.5) / fps`` exactly as the tools do, then decodes
the whole stream forward once, converting to RGB and resizing only the picked frames. The
decode dominates, so a build runs near the speed of a plain decode of the file.

Builds are atomic and safe to run concurrently: a per-key lock file serialises builders of
the same store (the second waits and then reuses the first's result), the store is written
in a private folder and renamed into place, and leftovers of a killed build are removed by
the next builder of that key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from medscope_gym.errors import VideoError
from medscope_gym.store.frame_store import MANIFEST, FrameStore
from medscope_gym.store.key import STORE_FORMAT, StoreSettings, store_key
from medscope_gym.video.guard import DEFAULT_DECODE_LIMIT_S, DecodeGuard
from medscope_gym.video.pyav_backend import FrameIndex, _open_container, index_packets, to_rgb
from medscope_gym.video.resize import fit_pixels, resize_frames

__all__ = ["build_store", "ensure_store", "grid_indices", "store_path"]

Progress = Callable[[int], None]
"""Called with the number of frames decoded since the last call."""


def store_path(video: str | os.PathLike[str], root: str | os.PathLike[str], settings: StoreSettings) -> Path:
    """Where the store of ``video`` with ``settings`` lives under ``root`` (built or not)."""
    return Path(root) / store_key(video, settings)


def grid_indices(timestamps: np.ndarray, duration: float, settings: StoreSettings) -> np.ndarray:
    """Sorted unique frames on screen at every grid time in ``[0, duration]`` (what crops sample)."""
    from medscope_gym.tools import sample_times

    times = sample_times(0.0, duration, settings.fps, max_frames=np.iinfo(np.int64).max)
    idx = np.searchsorted(timestamps, times + 1e-9, side="right") - 1
    return np.unique(np.clip(idx, 0, len(timestamps) - 1)).astype(np.int64)


def ensure_store(
    video: str | os.PathLike[str],
    root: str | os.PathLike[str],
    settings: StoreSettings,
    *,
    threads: int = 1,
    progress: Progress | None = None,
    decode_limit_s: float | None = DEFAULT_DECODE_LIMIT_S,
) -> Path:
    """The store folder of ``video``, building it first if needed; returns its path."""
    final = store_path(video, root, settings)
    if (final / MANIFEST).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final.parent / f".{final.name}.lock"):
        if (final / MANIFEST).is_file():  # another process built it while we waited
            return final
        for stale in final.parent.glob(f".{final.name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
        try:
            build_store(video, tmp, settings, threads=threads, progress=progress,
                        decode_limit_s=decode_limit_s)
            if final.exists():
                shutil.rmtree(final)  # an unfinished folder without a manifest
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_store(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: StoreSettings,
    *,
    threads: int = 1,
    progress: Progress | None = None,
    decode_limit_s: float | None = DEFAULT_DECODE_LIMIT_S,
) -> FrameStore:
    """Write the store of ``video`` into the folder ``out`` (created; not atomic — see :func:`ensure_store`).

    ``decode_limit_s`` bounds every chunk of the pass (demux, each run of decoded frames), so
    a hung decoder fails the build with a clear error instead of blocking it forever.
    """
    video, out = str(video), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    guard = DecodeGuard(decode_limit_s, what=f"video {video!r}")
    started = time.perf_counter()
    index = guard(index_packets, video, action="indexing packets")
    timestamps, end = index.timestamps()
    wanted = grid_indices(timestamps, end - float(timestamps[0]), settings)
    container, stream = _open_container(video, threads)
    try:
        frames_iter = container.decode(stream)
        first = guard(next, frames_iter, None, action="decoding the first frame")
        if first is None:
            raise VideoError(f"video {video!r}: no frame decodes")
        native = (int(first.height), int(first.width))
        size = fit_pixels(*native, settings.max_pixels)
        frames = np.lib.format.open_memmap(
            out / "frames.npy", mode="w+", dtype=np.uint8, shape=(len(wanted), *size, 3)
        )
        decode = _DecodePass(first, frames_iter, index, wanted, frames, settings.max_pixels, progress)
        while guard(decode.chunk, action=f"decoding frames from {decode.count} on"):
            pass
        decoded = decode.finish()
    finally:
        container.close()
    if decoded < index.num_frames:
        # A broken tail: keep the frames that decode, if the grid still fits inside them.
        index = index.truncated(decoded)
        timestamps, end = index.timestamps()
        kept = grid_indices(timestamps, end - float(timestamps[0]), settings)
        if not np.all(np.isin(kept, wanted)):
            raise VideoError(f"video {video!r}: only {decoded} of {len(index.pts)} frames decode")
        frames.flush()
        rows = np.searchsorted(wanted, kept)
        np.save(out / "frames.tmp.npy", np.asarray(frames[rows]))
        del frames
        os.replace(out / "frames.tmp.npy", out / "frames.npy")
        wanted = kept
    else:
        frames.flush()
        del frames
    np.save(out / "indices.npy", wanted)
    np.save(out / "pts.npy", index.pts)
    np.save(out / "keyframe.npy", index.keyframe)
    manifest = {
        "format": STORE_FORMAT,
        "settings": {"fps": settings.fps, "max_pixels": settings.max_pixels},
        "source": {"name": Path(video).name, "bytes": os.path.getsize(video)},
        "time_base": [index.time_base.numerator, index.time_base.denominator],
        "avg_fps": index.avg_fps,
        "num_frames": int(index.num_frames),
        "native_size": list(native),
        "stored_frames": int(len(wanted)),
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return FrameStore.load(out)


class _DecodePass:
    """The sequential pass in resumable chunks, so the decode time limit applies per chunk."""

    CHUNK = 500  # frames per guarded call: seconds even for 1080p on a loaded core

    def __init__(self, first, frames_iter, index: FrameIndex, wanted: np.ndarray, frames: np.ndarray,
                 max_pixels: int, progress: Progress | None) -> None:
        self.frame, self.frames_iter = first, frames_iter
        from av.video.reformatter import VideoReformatter

        self.pts, self.wanted, self.frames = index.pts, wanted, frames
        self.pts_list, self.wanted_list = index.pts.tolist(), wanted.tolist()
        self.reformatter = VideoReformatter()
        self.max_pixels, self.progress = max_pixels, progress
        self.row = 0  # next row of ``frames`` to fill
        self.count = 0  # frames decoded and matched to the index so far
        self.error: Exception | None = None

    def chunk(self) -> bool:
        """Decode up to CHUNK frames; False once the stream has ended."""
        pts, wanted = self.pts_list, self.wanted_list
        done = 0
        frame = self.frame
        try:
            while frame is not None and done < self.CHUNK:
                stamp = frame.pts
                i = self.count  # frames come in presentation order: the next one is expected
                if stamp is not None and (i >= len(pts) or pts[i] != stamp):
                    i = int(np.searchsorted(self.pts, stamp))  # a gap: find it (or skip an unknown)
                    if i >= len(pts) or pts[i] != stamp:
                        i = -1
                if 0 <= i < len(pts):
                    self.count = i + 1
                    if self.row < len(wanted) and wanted[self.row] == i:
                        rgb = to_rgb(frame, self.reformatter)
                        self.frames[self.row] = resize_frames(rgb[None], self.max_pixels)[0]
                        self.row += 1
                done += 1
                frame = next(self.frames_iter, None)
        except Exception as exc:  # a decode error mid-stream: keep what decoded, the caller decides
            self.error, frame = exc, None
        self.frame = frame
        if self.progress is not None and done:
            self.progress(done)
        return frame is not None

    def finish(self) -> int:
        """Frames decoded; raises if a wanted frame inside them never came out of the decoder."""
        if self.row < len(self.wanted) and self.wanted[self.row] < self.count:
            raise VideoError(
                f"the decoder never produced frame {int(self.wanted[self.row])} (frame times disagree)"
                + (f": {self.error}" if self.error else "")
            )
        return self.count


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
