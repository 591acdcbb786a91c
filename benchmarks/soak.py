"""Soak run: thousands of mixed episodes on a suite with more videos than the env keeps open.

Every reset of a video that is not open evicts the least recently used decoder, so a decoder
that leaks (memory, a decode thread) on close shows up as RSS or thread growth. The run reports
the process's resident memory (raw, and after a ``malloc_trim``) and OS thread count after a
warm-up (every video opened and its frame store built) and at checkpoints up to the end.

``python -m benchmarks.soak --episodes 3000`` runs it on the built-in ``synthsurg-small`` suite
(6 videos, ``--max-open-videos 3``); ``benchmarks/test_soak.py`` is the pytest-benchmark view, and
``tests/medscope_gym/video/test_decoder_lifetime.py`` a quick version with a bound on the growth.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Checkpoint", "SoakResult", "process_stats", "soak"]


def process_stats() -> tuple[float, int]:
    """Resident memory (MiB) and OS threads of this process (from ``/proc/self/status``)."""
    rss_kib = threads = 0
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kib / 1024.0, threads


def trimmed_rss() -> float:
    """Resident memory (MiB) after glibc's ``malloc_trim`` hands free heap pages back to the OS.

    Raw RSS also counts memory the process freed but glibc keeps (its high-water mark moves with
    the order of large transient allocations such as previews), so it wobbles by tens of MiB
    between checkpoints; what survives a trim is memory still in use, where a leak shows.
    Elsewhere than glibc this is the raw RSS.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return process_stats()[0]


def decode_threads() -> int:
    """Live decode-guard threads (one per decoder that has decoded and is not closed)."""
    return sum(t.name == "medscope-decode" for t in threading.enumerate())


@dataclass(frozen=True)
class Checkpoint:
    episodes: int
    rss_mib: float
    """Raw resident memory."""
    live_mib: float
    """Resident memory after a trim (:func:`trimmed_rss`), measured right after ``rss_mib``."""
    threads: int
    decode_threads: int
    seconds: float


@dataclass
class SoakResult:
    episodes: int
    max_open_videos: int
    videos: int
    checkpoints: list[Checkpoint] = field(default_factory=list)

    @property
    def warm(self) -> Checkpoint:
        return self.checkpoints[0]

    @property
    def end(self) -> Checkpoint:
        return self.checkpoints[-1]

    @property
    def rss_ratio(self) -> float:
        """Raw RSS at the end over raw RSS after the warm-up."""
        return self.end.rss_mib / self.warm.rss_mib

    @property
    def live_ratio(self) -> float:
        """Trimmed RSS at the end over trimmed RSS after the warm-up (the leak check)."""
        return self.end.live_mib / self.warm.live_mib

    def table(self) -> str:
        lines = [
            f"soak: {self.episodes} episodes, {self.videos} videos, max_open_videos={self.max_open_videos}",
            f"{'episodes':>9} {'RSS MiB':>9} {'trimmed':>8} {'threads':>8} {'decode':>7} {'seconds':>8}",
        ]
        for c in self.checkpoints:
            lines.append(
                f"{c.episodes:>9} {c.rss_mib:>9.1f} {c.live_mib:>8.1f} {c.threads:>8} "
                f"{c.decode_threads:>7} {c.seconds:>8.1f}"
            )
        lines.append(
            f"end / warm-up: RSS {self.rss_ratio:.3f}, trimmed RSS {self.live_ratio:.3f}; "
            f"threads {self.warm.threads} -> {self.end.threads}"
        )
        return "\n".join(lines)


def _settle(limit: int, wait_s: float = 1.0) -> None:
    """Give closed decoders' threads a moment to exit (they stop asynchronously, never blocking close)."""
    deadline = time.monotonic() + wait_s
    while decode_threads() > limit and time.monotonic() < deadline:
        time.sleep(0.01)


def soak(
    suite: str | os.PathLike[str],
    episodes: int,
    *,
    max_open_videos: int = 3,
    warmup: int | None = None,
    every: int | None = None,
    seed: int = 0,
    **env_kwargs,
) -> SoakResult:
    """Run ``episodes`` mixed episodes (crops, get_frame, bad turns, answers) on one env.

    Checkpoints come after ``warmup`` episodes (default: a fifth, at least 30), every ``every``
    episodes after that (default: a fifth of the rest) and at the end.
    """
    from medscope_gym.envs.clinvideo import ClinVideoEnv
    from medscope_gym.protocol import format_answer, format_tool_call

    env = ClinVideoEnv(suite, max_open_videos=max_open_videos, max_turns=6, **env_kwargs)
    videos = len(env.suite.videos())
    warmup = max(30, episodes // 5) if warmup is None else warmup
    every = max(1, (episodes - warmup) // 5) if every is None else every
    rng = np.random.default_rng(seed)
    result = SoakResult(episodes, max_open_videos, videos)
    started = time.perf_counter()

    def checkpoint(done: int) -> None:
        if result.checkpoints and result.checkpoints[-1].episodes == done:
            return
        gc.collect()
        _settle(max_open_videos)
        rss, threads = process_stats()
        seconds = time.perf_counter() - started
        result.checkpoints.append(Checkpoint(done, rss, trimmed_rss(), threads, decode_threads(), seconds))

    try:
        for k in range(1, episodes + 1):
            env.reset(seed=int(rng.integers(2**31)))
            duration = env.current_sample.duration
            for _ in range(int(rng.integers(0, 3))):
                roll = rng.random()
                if roll < 0.45:
                    start = round(float(rng.uniform(0, max(duration - 2, 0.1))), 2)
                    end = round(start + float(rng.uniform(2, 30)), 2)
                    crop = {"start_time": start, "end_time": end}
                    action = format_tool_call("crop_video", crop, think="crop")
                elif roll < 0.9:
                    t = round(float(rng.uniform(0, duration)), 2)
                    action = format_tool_call("get_frame", {"timestamp": t}, think="frame")
                else:
                    action = "no tags at all"
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            else:
                env.step(format_answer("ABCD"[int(rng.integers(4))], think="done"))
            if k in (warmup, episodes) or (k > warmup and (k - warmup) % every == 0):
                checkpoint(k)
    finally:
        env.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="builtin:synthsurg-small")
    parser.add_argument("--episodes", type=int, default=3000)
    parser.add_argument("--max-open-videos", type=int, default=3)
    parser.add_argument("--backend", default="pyav", choices=["pyav", "decord"])
    parser.add_argument("--no-store", action="store_true", help="decode every call (frame_store=None)")
    args = parser.parse_args(argv)
    suite = args.suite if args.suite.startswith("builtin:") else Path(args.suite)
    result = soak(
        suite,
        args.episodes,
        max_open_videos=args.max_open_videos,
        video_backend=args.backend,
        frame_store=None if args.no_store else "auto",
    )
    print(result.table())


if __name__ == "__main__":
    main()
