"""A time limit on decoder calls, so a hanging decoder becomes a clear :class:`VideoError`.

decord and FFmpeg can hang on broken or over-reported containers (see docs/retrieval.md). Each guarded
call runs on a private decode thread while the caller waits at most ``limit_s`` seconds;
past it the caller gets a ``VideoError`` naming the file and the call, and the guard
abandons the stuck thread, which exits once its call returns (the backend must then drop its
reader and open a fresh one). Backends close their guard in ``close()``: an evicted decoder
leaves no thread behind.
Both decoders release the GIL inside their C code (decord through ctypes, PyAV in its
``nogil`` decode loop), which is what lets the waiting thread wake up. A decoder stuck while
*holding* the GIL cannot be interrupted from inside the process; ``medscope prepare`` runs
its decodes in worker processes for that reason.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

from medscope_gym.errors import VideoError

__all__ = ["CHUNK_FRAMES", "DEFAULT_DECODE_LIMIT_S", "DecodeGuard", "DecodeTimeout"]

T = TypeVar("T")

DEFAULT_DECODE_LIMIT_S = float(os.environ.get("MEDSCOPE_DECODE_LIMIT_S", "60"))
"""Seconds one guarded call may take (``$MEDSCOPE_DECODE_LIMIT_S``); generous: a crop takes milliseconds."""

CHUNK_FRAMES = 16
"""Backends decode long requests in chunks of this many frames, one guarded call each, so the
limit bounds a chunk (at most 16 GOPs of decoding), not a whole 512-frame preview."""


class DecodeTimeout(VideoError):
    """A decoder call ran past its time limit (the decoder is presumed hung)."""


class _DecodeThread:
    """One daemon thread running submitted calls in order (daemon: a hung call never blocks exit).

    The loop keeps no reference to a finished call (its function, arguments or result), so an
    idle thread pins neither the decoder nor the last frames it decoded; :meth:`stop` ends it
    once the call in progress, if any, returns.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self._loop, args=(self._jobs,), name="medscope-decode", daemon=True
        )
        self.thread.start()

    @staticmethod
    def _loop(jobs: queue.SimpleQueue) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, args, box, done = job
            del job
            try:
                box.append((True, fn(*args)))
            except BaseException as exc:  # handed to the caller, which re-raises it
                box.append((False, exc))
            del fn, args, box  # the caller holds the result; an idle thread holds nothing
            done.set()
            del done

    def submit(self, fn: Callable[..., object], args: tuple) -> tuple[list, threading.Event]:
        box: list = []
        done = threading.Event()
        self._jobs.put((fn, args, box, done))
        return box, done

    def stop(self) -> None:
        """Let the thread exit after its current call (never waits: safe from the thread itself)."""
        self._jobs.put(None)


class DecodeGuard:
    """Runs decoder calls on one private thread with a time limit; ``limit_s=None`` calls directly.

    The thread is started lazily and per process (never inherited across fork), so a guard
    held by an env that is pickled into a worker starts clean there. :meth:`close` ends the
    thread, and so does garbage collection of the guard; a later call starts a new one. A
    thread abandoned after a time-out is told to exit too, once its stuck call returns.
    """

    def __init__(self, limit_s: float | None = DEFAULT_DECODE_LIMIT_S, what: str = "video") -> None:
        if limit_s is not None and not limit_s > 0:
            raise ValueError(f"limit_s must be > 0 or None, got {limit_s!r}")
        self.limit_s = limit_s
        self.what = what
        self._thread: _DecodeThread | None = None
        self._pid = 0
        self._calls = threading.Lock()  # one guarded call at a time (held while the caller waits)
        self._state = threading.Lock()  # guards ``_thread``; never held while waiting

    @property
    def thread(self) -> threading.Thread | None:
        """The decode thread now serving this guard (None before the first call and after close)."""
        worker = self._thread
        return worker.thread if worker is not None and self._pid == os.getpid() else None

    def __call__(self, fn: Callable[..., T], *args: object, action: str = "decoding") -> T:
        if self.limit_s is None:
            return fn(*args)
        worker = self._thread
        if worker is not None and worker.thread is threading.current_thread():
            return fn(*args)  # a guarded call that calls the guard again: already on the decode thread
        with self._calls:
            with self._state:
                if self._thread is None or self._pid != os.getpid():
                    self._thread, self._pid = _DecodeThread(), os.getpid()
                    # a guard dropped without close() still ends its thread
                    weakref.finalize(self, _DecodeThread.stop, self._thread).atexit = False
                worker = self._thread
            box, done = worker.submit(fn, args)
            if not done.wait(self.limit_s):
                with self._state:
                    if self._thread is worker:
                        self._thread = None  # abandon the stuck thread; the next call starts a fresh one
                worker.stop()  # it exits as soon as the stuck call returns
                raise DecodeTimeout(
                    f"{self.what}: {action} did not finish within {self.limit_s:g} s; the decoder is "
                    "presumed hung (raise MEDSCOPE_DECODE_LIMIT_S if the file is just slow to decode)"
                )
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """End the decode thread; safe to call twice, from any thread, the decode thread included.

        Never waits: the thread exits once the call it is running (if any) returns, so a close()
        reached from inside a guarded call (a backend releasing its decoder on an error) does not
        wait on itself.
        """
        with self._state:
            worker, self._thread = self._thread, None
        if worker is not None and self._pid == os.getpid():
            worker.stop()

    def __getstate__(self) -> dict:
        return {"limit_s": self.limit_s, "what": self.what}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["limit_s"], state["what"])
