"""``medscope prepare``: build frame stores ahead (``medscope bench`` is a command of medscope_gym.cli)."""

from __future__ import annotations

import argparse
import time

from medscope_gym.store.key import StoreSettings
from medscope_gym.store.open import resolve_store_root
from medscope_gym.store.prepare import prepare_videos, suite_videos
from medscope_gym.tools import ToolConfig

__all__ = ["register"]


def _cmd_prepare(args: argparse.Namespace) -> int:
    tools = ToolConfig()
    settings = StoreSettings(
        fps=args.fps if args.fps is not None else float(tools.crop_fps),
        max_pixels=args.max_pixels or int(tools.crop_max_pixels),
    )
    root = resolve_store_root(args.store_dir)
    videos = suite_videos(args.suite)
    started = time.perf_counter()
    results = prepare_videos(
        videos, root, settings, workers=args.workers, threads=args.threads, progress=not args.quiet
    )
    failed = [r for r in results if r.status == "failed"]
    built = [r for r in results if r.status == "built"]
    frames = sum(r.frames for r in built)
    elapsed = time.perf_counter() - started
    cached = len(results) - len(built) - len(failed)
    print(
        f"frame stores in {root}: {len(built)} built, {cached} already there, {len(failed)} failed; "
        f"{frames} frames decoded in {elapsed:.1f} s" + (f" ({frames / elapsed:.0f} fps)" if frames else "")
    )
    for r in failed:
        print(f"  failed: {r.video}: {r.error}")
    return 1 if failed else 0


def register(commands, train_commands) -> None:
    """Add ``prepare`` to the top-level ``medscope`` commands."""
    prepare = commands.add_parser("prepare", help="build the frame stores of a suite's videos ahead of time")
    prepare.add_argument("suite", help="suite folder or builtin:NAME")
    prepare.add_argument(
        "--store-dir",
        default="auto",
        help="folder of the stores (default: auto = $MEDSCOPE_CACHE/frame_stores)",
    )
    prepare.add_argument("--workers", type=int, default=2, help="videos built in parallel (processes)")
    prepare.add_argument("--threads", type=int, default=1, help="decoder threads per video (0: automatic)")
    prepare.add_argument("--fps", type=float, help="grid rate (default: the tools' crop_fps, 1)")
    prepare.add_argument("--max-pixels", type=int, help="pixel cap (default: the tools' crop_max_pixels)")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(func=_cmd_prepare)
