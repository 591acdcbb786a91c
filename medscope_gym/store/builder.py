"""Build a frame store in one sequential pass over the file (decode each video once; see docs/retrieval.md).

The pass demuxes each packet (recording every frame's time and keyframe flag: the frame
index), decodes it, and picks on the fly the frames on screen at the grid times
``(k + 0.5) / fps``, exactly as the tools sample them. A frame's turn comes when its successor
arrives (the successor's time ends it); only picked frames — 1 in 25 at 1 fps on a 25 fps
file — are converted to RGB, resized with the tools' own resize and written, on a helper thread
that also flushes the rows to disk as it goes. The decoding thread thus does about what a plain
``for frame in container.decode()`` does; beyond that, a build costs the exact resize of the
picked frames, which the helper thread overlaps with decoding when a core is free (docs/results.md
has the measurements). Packets are demuxed a GOP ahead: in H.264
without frame reordering, the frames after a GOP's last grid frame are not decoded at all when
the next keyframe is an IDR (nothing after an IDR refers to earlier frames), which saves 5 % of
the decoding with a keyframe every 10 s and most of it with a keyframe every second.

Picking before the index is complete is checked afterwards, never trusted: the grid is computed
again from the finished index (:func:`grid_indices`, what crops use), and a frame picked on the
way but not on that grid is dropped, a grid frame that was not picked is decoded exactly. The
times used on the way are the same float64 operations the finished index does, under both of its
rules (constant rate: ideal times; variable rate: the container's), so on ordinary files the two
agree and nothing is redone.

Builds are atomic and safe to run concurrently: a per-key lock file serialises builders of
the same store (the second waits and then reuses the first's result), the store is written
in a private folder and renamed into place, and leftovers of a killed build are removed by
the next builder of that key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import queue
import shutil
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from medscope_gym.errors import MedScopeError, VideoError
from medscope_gym.store.frame_store import MANIFEST, FrameStore
from medscope_gym.store.key import STORE_FORMAT, StoreSettings, store_key
from medscope_gym.tools import sample_times
from medscope_gym.video.guard import DEFAULT_DECODE_LIMIT_S, DecodeGuard, DecodeTimeout
from medscope_gym.video.pyav_backend import (
    FrameIndex,
    PyAVVideo,
    _open_container,
    packet_index,
    stream_timing,
    to_rgb_image,
)
from medscope_gym.video.resize import fit_pixels, resize_frames, resized_bytes

__all__ = ["StoreLockTimeout", "build_store", "ensure_store", "grid_indices", "store_path"]

Progress = Callable[[int], None]
"""Called with the number of frames decoded since the last call."""

_HEADER_BYTES = 128
"""Reserved length of ``frames.npy``'s header: the row count is only known once the pass ends."""


def store_path(video: str | os.PathLike[str], root: str | os.PathLike[str], settings: StoreSettings) -> Path:
    """Where the store of ``video`` with ``settings`` lives under ``root`` (built or not)."""
    return Path(root) / store_key(video, settings)


def grid_indices(timestamps: np.ndarray, duration: float, settings: StoreSettings) -> np.ndarray:
    """Sorted unique frames on screen at every grid time in ``[0, duration]`` (what crops sample)."""
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
    lock_timeout_s: float | None = None,
) -> Path:
    """The store folder of ``video``, building it first if needed; returns its path.

    While another process builds the same store, this one waits for it (logging who holds the
    lock) and then reuses its result. A holder that shows no progress for ``lock_timeout_s``
    seconds (default ``$MEDSCOPE_STORE_LOCK_TIMEOUT_S``, 300; None: wait forever) — typically one
    paused with Ctrl-Z — ends the wait with :class:`StoreLockTimeout` naming it (an ``OSError``:
    :func:`~medscope_gym.store.open_tool_video` then decodes the video directly, with a warning).
    """
    final = store_path(video, root, settings)
    if (final / MANIFEST).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    if lock_timeout_s is None:
        lock_timeout_s = _default_lock_timeout()
    with _locked(
        final.parent / f".{final.name}.lock", timeout_s=lock_timeout_s, activity=lambda: _activity(final)
    ):
        if (final / MANIFEST).is_file():  # another process built it while we waited
            return final
        for stale in final.parent.glob(f".{final.name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
        try:
            build_store(
                video, tmp, settings, threads=threads, progress=progress, decode_limit_s=decode_limit_s
            )
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
    overlap: bool = True,
) -> FrameStore:
    """Write the store of ``video`` into the folder ``out`` (created; not atomic — see :func:`ensure_store`).

    ``decode_limit_s`` bounds every chunk of the pass (each run of packets), so a hung decoder
    fails the build with a clear error instead of blocking it forever. ``overlap`` converts,
    resizes and writes the picked frames on a helper thread while decoding goes on (both
    release the GIL); False does all of it on the decoding thread.
    """
    video, out = str(video), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    guard = DecodeGuard(decode_limit_s, what=f"video {video!r}")
    started = time.perf_counter()
    container, stream = _open_container(video, threads)
    hung = False
    decode = _DecodePass(container, stream, out / "frames.npy", settings, overlap, progress)
    try:
        while guard(decode.chunk, action=f"decoding frames from {decode.seen} on"):
            pass
        index, wanted = decode.finish(video)
    except DecodeTimeout:
        hung = True  # the stuck thread still uses the decoder and the file: leave both to it
        raise
    finally:
        decode.close(abandon=hung)
        guard.close()  # a build leaves no decode thread behind (a hung one exits when its call returns)
        if not hung:
            container.close()
    if decode.picked != index.pts[wanted].tolist():
        _assemble(out / "frames.npy", video, index, wanted, decode, settings, threads, decode_limit_s)
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
        "native_size": list(decode.native),
        "stored_frames": int(len(wanted)),
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return FrameStore.load(out)


class _DecodePass:
    """The single pass, in resumable chunks of packets so the decode time limit applies per chunk.

    Frame ``i`` is on the grid when a grid time ``g`` (plus the tools' 1e-9) satisfies
    ``t[i] <= g < t[i + 1]`` (frame 0 also takes the grid times before it). ``t`` is not final
    during the pass: the finished index uses ideal constant-rate times when every frame lies
    close enough to them, else the container's. The pass picks a frame when either rule puts
    it on the grid, computing each time exactly as the index will, and drops the ideal rule as
    soon as a frame is further off it than the index could accept (a variable-rate file).
    """

    CHUNK = 500  # packets per guarded call: seconds even for 1080p on a loaded core

    def __init__(
        self,
        container,
        stream,
        frames_path: Path,
        settings: StoreSettings,
        overlap: bool,
        progress: Progress | None,
    ) -> None:
        self.packets = container.demux(stream)
        self.time_base, self.avg_fps = stream_timing(stream)
        self.frames_path, self.settings, self.overlap = frames_path, settings, overlap
        self.progress = progress
        self.stamps: list[int] = []  # packet times in decode order (pts, else dts)
        self.keys: list[bool] = []
        self.picked: list[int] = []  # pts of the frames handed to the writer, in row order
        self.seen = 0  # frames out of the decoder
        self.last: int | None = None  # pts of the latest frame
        self.held = None  # the latest frame: picked or not once its successor's time is known
        self.held_pts: int | None = None
        self.t0 = 0.0  # time of the first frame (the ideal rule's origin)
        self.ideal = self.avg_fps > 0
        # exact_timestamps keeps ideal times while every frame is within max(1 % of a frame, 2**-22 of the
        # largest time) of them; a frame off by more (2x margin on the container's duration) ends that rule
        duration = _duration_guess(container, stream)
        self.ideal_limit = max(0.01 / self.avg_fps, 2.0**-21 * duration) if self.ideal else 0.0
        self.k_raw = self.k_ideal = 0  # next grid time at or after the held frame's start, per rule
        self.g_raw = self.g_ideal = 0.5 / settings.fps + 1e-9
        self.native: tuple[int, int] = (0, 0)
        self.writer: _RowWriter | None = None
        self.error: Exception | None = None
        # GOP tails no grid frame needs are not decoded (H.264 without reordering, next keyframe an IDR)
        self.pending: deque = deque()  # demuxed packets to decode in order; None: one left out
        self.next_key = None  # the keyframe packet that ends the group in ``pending``
        self.skips: deque[tuple[int, int]] = deque()  # (pts of the IDR after a left-out run, frames in it)
        self.groups = 0
        self.nal_length = _h264_nal_length(stream)
        self.left_out = 0

    def chunk(self) -> bool:
        """Demux and decode up to CHUNK packets; False once the stream has ended."""
        stamps, pending, skips = self.stamps, self.pending, self.skips
        tb, fps, afps = float(self.time_base), self.settings.fps, self.avg_fps
        limit = self.ideal_limit
        seen, held, held_pts, last = self.seen, self.held, self.held_pts, self.last
        t0, ideal = self.t0, self.ideal
        k_raw, g_raw, k_ideal, g_ideal = self.k_raw, self.g_raw, self.k_ideal, self.g_ideal
        q = 0.0
        start = seen
        more = True
        try:
            for _ in range(self.CHUNK):
                if not pending and not self._refill(ideal):
                    more = False
                    break
                packet = pending.popleft()
                if packet is None:
                    continue
                try:
                    frames = packet.decode()
                except Exception as exc:  # a decode error mid-stream: keep what decoded, finish() decides
                    self.error, more = exc, False
                    break
                for frame in frames:
                    t = frame.pts
                    if t is None:  # no times from the decoder: frames come in packet order
                        t = stamps[seen] if seen < len(stamps) else None
                        if t is None:
                            seen += 1
                            continue
                    if skips and t >= skips[0][0]:
                        seen += skips.popleft()[1]  # the frames left out before this IDR
                    raw = t * tb
                    if held is None:
                        t0, q = raw, raw
                        self._start(frame)
                    else:
                        if ideal:
                            q = t0 + seen / afps
                            if abs(raw - q) > limit and abs(raw - q) > 2.0**-21 * abs(raw):
                                ideal = False
                        if g_raw < raw or (ideal and g_ideal < q):
                            self._pick(held, held_pts)
                        while g_raw < raw:
                            k_raw += 1
                            g_raw = (k_raw + 0.5) / fps + 1e-9
                        while ideal and g_ideal < q:
                            k_ideal += 1
                            g_ideal = (k_ideal + 0.5) / fps + 1e-9
                    held, held_pts, last = frame, t, t
                    seen += 1
        finally:
            self.seen, self.held, self.held_pts, self.last = seen, held, held_pts, last
            self.t0, self.ideal = t0, ideal
            self.k_raw, self.g_raw, self.k_ideal, self.g_ideal = k_raw, g_raw, k_ideal, g_ideal
        if self.progress is not None and seen > start:
            self.progress(seen - start)
        return more

    LOOKAHEAD = 4096  # packets demuxed ahead at most to find the next keyframe

    def _refill(self, ideal: bool) -> bool:
        """Demux the next group of packets (a keyframe up to the next one) into ``pending``.

        False at the end of the stream. Packets are indexed here, in decode order.
        """
        group = [] if self.next_key is None else [self.next_key]
        self.next_key = None
        while len(group) < self.LOOKAHEAD:
            try:
                packet = next(self.packets)
            except StopIteration:
                break
            except Exception as exc:
                raise VideoError(f"reading packets failed: {exc}") from exc
            stamp = packet.pts
            if stamp is None:
                stamp = packet.dts  # some AVIs carry only dts
            if stamp is not None and packet.size:
                self.stamps.append(stamp)
                self.keys.append(packet.is_keyframe)
                if packet.is_keyframe and group:
                    self.next_key = packet
                    break
            group.append(packet)
        if not group:
            return False
        self.groups += 1
        left_out = self._tail_to_leave_out(group, ideal)
        self.pending.extend(group[: len(group) - left_out])
        if left_out:
            self.pending.extend([None] * left_out)
            self.skips.append((self.next_key.pts, left_out))
            self.left_out += left_out
        return True

    def _tail_to_leave_out(self, group: list, ideal: bool) -> int:
        """How many packets at the end of ``group`` no grid frame needs (0 unless that is certain).

        Only without frame reordering (each packet one frame, in time order) and when the next
        keyframe is an H.264 IDR, after which nothing refers to earlier frames: then the frames
        after the group's last grid candidate are never used. Candidates are judged on the packet
        times, widened by the ideal rule's tolerance (and a microsecond), so the decoded part always
        holds every frame the pass could pick; the finished index checks the picks anyway.
        """
        key = self.next_key
        if not self.nal_length or key is None or key.pts is None or self.groups == 1:
            return 0
        pts = [p.pts for p in group]
        if None in pts or any(p.size == 0 for p in group) or key.pts <= pts[-1]:
            return 0
        if any(b <= a for a, b in zip(pts, pts[1:])) or not _is_h264_idr(bytes(key), self.nal_length):
            return 0
        tb, fps = float(self.time_base), self.settings.fps
        end = key.pts * tb
        widen = (max(self.ideal_limit, 2.0**-21 * abs(end)) if ideal else 0.0) + 1e-6
        end += widen
        for j in range(len(group) - 1, -1, -1):
            start = pts[j] * tb - widen
            k = max(0, math.ceil((start - 1e-9) * fps - 0.5))
            if (k + 0.5) / fps + 1e-9 < end:  # a grid time within [start, end): frame j may be picked
                return len(group) - 1 - j
            end = start + 2 * widen
        return len(group)

    def _start(self, frame) -> None:
        self.native = (int(frame.height), int(frame.width))
        size = fit_pixels(*self.native, self.settings.max_pixels)
        self.writer = _RowWriter(self.frames_path, self.native, size, self.settings.max_pixels, self.overlap)

    def _pick(self, frame, pts: int) -> None:
        self.writer.put(len(self.picked), frame)
        self.picked.append(pts)

    def finish(self, video: str) -> tuple[FrameIndex, np.ndarray]:
        """The frame index (cut to the frames that decode) and its grid; writes the last row if due."""
        if not self.stamps:
            raise VideoError(f"video {video!r} has no video frames")
        if self.held is None:
            raise VideoError(f"video {video!r}: no frame decodes" + (f": {self.error}" if self.error else ""))
        index = packet_index(self.stamps, self.keys, self.time_base, self.avg_fps)
        decoded = int(np.searchsorted(index.pts, self.last, side="right"))
        if decoded < index.num_frames:  # a broken tail: keep the frames that decode
            index = index.truncated(decoded)
        timestamps, end = index.timestamps()
        wanted = grid_indices(timestamps, end - float(timestamps[0]), self.settings)
        if int(index.pts[wanted[-1]]) == self.held_pts:  # the last frame: only the finished index ends it
            self._pick(self.held, self.held_pts)
        self.held = None
        self.writer.close(len(self.picked))
        return index, wanted

    def close(self, abandon: bool = False) -> None:
        self.held = None
        if self.writer is not None:
            self.writer.abort(close_file=not abandon)


class _RowWriter:
    """Converts picked frames to RGB, resizes them to the store size, writes them as ``frames.npy`` rows.

    With ``overlap`` this runs on a helper thread fed through a bounded queue (about 64 MB of
    frames waiting at most), so it overlaps the decode instead of adding to it. The pixels are
    exactly :func:`resize_frames`' either way: crops served from the store equal crops decoded
    directly. The header is written last, when the number of rows is known.
    """

    QUEUE_BYTES = 64 << 20
    SYNC_BYTES = 64 << 20  # with overlap, rows are flushed to disk as they go: the final fsync is short

    def __init__(
        self, path: Path, native: tuple[int, int], size: tuple[int, int], max_pixels: int, overlap: bool
    ) -> None:
        from av.video.reformatter import VideoReformatter

        self.path, self.size, self.max_pixels = path, size, max_pixels
        self.row_bytes = size[0] * size[1] * 3
        self.reformatter = VideoReformatter()
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.stopped = False
        self.unsynced = 0
        if overlap:
            self.queue: queue.Queue = queue.Queue(max(2, self.QUEUE_BYTES // (native[0] * native[1] * 3)))
            self.thread = threading.Thread(target=self._loop, name="medscope-store-writer", daemon=True)
            self.thread.start()

    def put(self, row: int, frame) -> None:
        if self.stopped:
            raise VideoError("the frame store build was stopped")
        if self.thread is None:
            self._write(row, frame)
            return
        if self.error is not None:
            raise self.error  # as raised on the helper thread (an OSError stays one: see open_tool_video)
        self.queue.put((row, frame))

    def _write(self, row: int, frame) -> None:
        data = resized_bytes(to_rgb_image(frame, self.reformatter), self.max_pixels)
        if len(data) != self.row_bytes:
            raise VideoError(f"frame size changed mid-stream to {frame.height}×{frame.width}")
        _pwrite_all(self.fd, data, _HEADER_BYTES + row * self.row_bytes)
        self.unsynced += len(data)
        if self.thread is not None and self.unsynced >= self.SYNC_BYTES:
            os.fdatasync(self.fd)  # waits on the disk on this thread, while decoding goes on
            self.unsynced = 0

    def _loop(self) -> None:
        while (job := self.queue.get()) is not None:
            if self.error is None:  # after an error keep draining, so put() never blocks
                try:
                    self._write(*job)
                except BaseException as exc:
                    self.error = exc

    def _join(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None

    def close(self, rows: int) -> None:
        """Wait for every queued row, then write the header for ``rows`` rows; raises a writing error."""
        self._join()
        self.stopped = True
        if self.error is not None:
            raise self.error
        _pwrite_all(self.fd, _npy_header((rows, *self.size, 3), _HEADER_BYTES), 0)
        os.ftruncate(self.fd, _HEADER_BYTES + rows * self.row_bytes)
        os.fsync(self.fd)  # on disk before the manifest says the store is complete
        os.close(self.fd)
        self.fd = -1

    def abort(self, close_file: bool = True) -> None:
        """Stop after a failure, dropping queued rows; a no-op after :meth:`close`.

        ``close_file=False`` leaves the file open for a decoding thread that hung and may still
        write a row (closing it could hand its descriptor to another file).
        """
        if self.stopped and self.fd < 0:
            return
        self.stopped = True
        self.error = self.error or VideoError("stopped")
        self._join()
        if close_file and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _h264_nal_length(stream) -> int:
    """Bytes of the NAL unit length prefix of an H.264 stream (4 for Annex B start codes); 0: not H.264."""
    if stream.codec_context.name != "h264":
        return 0
    extra = bytes(stream.codec_context.extradata or b"")
    if len(extra) >= 7 and extra[0] == 1:  # avcC
        return (extra[4] & 3) + 1
    return -1  # Annex B


def _is_h264_idr(data: bytes, nal_length: int) -> bool:
    """Whether an H.264 access unit's first slice is an IDR slice (NAL type 5, not 1)."""
    units = []
    if nal_length > 0:  # length-prefixed NAL units
        i = 0
        while i + nal_length < len(data):
            size = int.from_bytes(data[i : i + nal_length], "big")
            i += nal_length
            if size <= 0 or i + size > len(data):
                return False
            units.append(data[i] & 0x1F)
            i += size
    else:  # start codes
        i = data.find(b"\x00\x00\x01")
        while 0 <= i < len(data) - 3:
            units.append(data[i + 3] & 0x1F)
            i = data.find(b"\x00\x00\x01", i + 3)
    slices = [t for t in units if t in (1, 5)]
    return bool(slices) and slices[0] == 5


def _duration_guess(container, stream) -> float:
    """The container's idea of the stream's length in seconds (only to size a tolerance; 0.0 if unknown)."""
    if stream.duration is not None and stream.time_base is not None:
        return abs(float(stream.duration * stream.time_base))
    if container.duration is not None:
        return abs(container.duration / 1_000_000)  # AV_TIME_BASE
    return 0.0


def _pwrite_all(fd: int, data: bytes | memoryview, at: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        n = os.pwrite(fd, view, at)
        view, at = view[n:], at + n


def _npy_header(shape: tuple[int, ...], length: int) -> bytes:
    """A ``.npy`` version 1.0 header for a uint8 array of ``shape``, padded to exactly ``length`` bytes."""
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    if len(text) > length - 11:
        raise VideoError(f"frame store shape {shape} does not fit the reserved header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", length - 10) + (text.ljust(length - 11) + "\n").encode()


def _assemble(
    path: Path,
    video: str,
    index: FrameIndex,
    wanted: np.ndarray,
    decode: _DecodePass,
    settings: StoreSettings,
    threads: int,
    decode_limit_s: float | None,
) -> None:
    """Rewrite ``frames.npy`` to hold exactly the grid frames (the rare case the pass picked otherwise).

    Picked rows on the grid are copied; grid frames the pass did not pick are decoded exactly.
    """
    size = fit_pixels(*decode.native, settings.max_pixels)
    picked = {pts: row for row, pts in enumerate(decode.picked)}
    rows = np.array([picked.get(int(p), -1) for p in index.pts[wanted]], dtype=np.int64)
    tmp = path.with_name("frames.final.npy")
    final = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(wanted), *size, 3))
    if decode.picked:
        src = np.load(path, mmap_mode="r")
        for a in range(0, len(rows), 256):
            take = np.flatnonzero(rows[a : a + 256] >= 0) + a
            final[take] = src[rows[take]]
        del src
    missing = np.flatnonzero(rows < 0)
    if len(missing):
        exact = PyAVVideo(video, index=index, threads=threads, decode_limit_s=decode_limit_s)
        try:
            for a in range(0, len(missing), 64):
                part = missing[a : a + 64]
                final[part] = resize_frames(exact.read(wanted[part]), settings.max_pixels)
        finally:
            exact.close()
    final.flush()
    del final
    os.replace(tmp, path)


class StoreLockTimeout(MedScopeError, TimeoutError):
    """Another process held a frame store's build lock and showed no progress for the time limit."""


_LOG = logging.getLogger("medscope_gym.store")
_LOCK_POLL_S = (0.05, 1.0)  # first and longest pause between attempts to take a held lock


def _default_lock_timeout() -> float | None:
    """``$MEDSCOPE_STORE_LOCK_TIMEOUT_S`` (seconds without progress; default 300; 0 or less: no limit)."""
    value = float(os.environ.get("MEDSCOPE_STORE_LOCK_TIMEOUT_S", "300"))
    return value if value > 0 else None


@contextlib.contextmanager
def _locked(
    path: Path, *, timeout_s: float | None = None, activity: Callable[[], object] | None = None
) -> Iterator[None]:
    """Hold the exclusive lock ``path``; the holder's pid, host and start time are written into it.

    A held lock is waited for: a log line names the holder (and says when it is stopped), and the
    wait ends with :class:`StoreLockTimeout` once neither the lock nor ``activity()`` (a value that
    changes while the holder works) has changed for ``timeout_s`` seconds (None: no limit).
    """
    with open(path, "a+b") as fh:
        if not _try_lock(fh):
            _wait_for_lock(fh, path, timeout_s, activity)
        try:
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
            fh.truncate(0)
            fh.write(json.dumps(holder).encode())
            fh.flush()
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _try_lock(fh) -> bool:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _wait_for_lock(fh, path: Path, timeout_s: float | None, activity: Callable[[], object] | None) -> None:
    started = quiet_since = time.monotonic()
    last = activity() if activity else None
    pause = _LOCK_POLL_S[0]
    holder = _lock_holder(path)
    _LOG.info("waiting for %s, held by %s", path, holder)
    warned = False
    while not _try_lock(fh):
        now = time.monotonic()
        seen = activity() if activity else None
        if seen != last:
            last, quiet_since = seen, now
        quiet = now - quiet_since
        if not warned and quiet >= (10.0 if timeout_s is None else min(10.0, timeout_s / 2)):
            warned = True
            limit = f"time-out after {timeout_s:g} s without progress" if timeout_s else "no time limit"
            _LOG.warning(
                "still waiting for %s after %.0f s: held by %s, no progress for %.0f s (%s)",
                path,
                now - started,
                _lock_holder(path),
                quiet,
                limit,
            )
        if timeout_s is not None and quiet >= timeout_s:
            raise StoreLockTimeout(
                f"frame store lock {str(path)!r} is held by {_lock_holder(path)}, which showed no progress "
                f"for {quiet:.0f} s (waited {now - started:.0f} s); resume or end that process, or set "
                "MEDSCOPE_STORE_LOCK_TIMEOUT_S to wait longer"
            )
        time.sleep(pause)
        pause = min(pause * 2, _LOCK_POLL_S[1])


def _lock_holder(path: Path) -> str:
    """Who holds the lock, as its file says: "process 123 on host (for 12 s, stopped: ...)"."""
    try:
        info = json.loads(path.read_bytes() or b"{}")
        pid, host, since = int(info["pid"]), str(info["host"]), float(info["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (unknown: the lock file names no holder)"
    notes = [f"for {max(0.0, time.time() - since):.0f} s"]
    if host == socket.gethostname():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = ""
        if state in ("T", "t"):
            notes.append(f"stopped (Ctrl-Z or SIGSTOP): resume it with `kill -CONT {pid}` or end it")
    return f"process {pid} on {host} ({', '.join(notes)})"


def _activity(final: Path) -> tuple[int, int]:
    """Total bytes and latest change of the in-progress builds of ``final`` (what a working builder grows)."""
    size = latest = 0
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        for f in tmp.rglob("*"):
            try:
                st = f.stat()
            except OSError:
                continue
            size += st.st_size
            latest = max(latest, st.st_mtime_ns)
    return size, latest
