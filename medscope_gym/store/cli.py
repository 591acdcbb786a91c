"""``medscope prepare`` (build frame stores ahead) and ``medscope bench`` (the retrieval benchmark)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

__all__ = ["register"]


def _cmd_prepare(args: argparse.Namespace) -> int:
    from medscope_gym.store.key import StoreSettings
    from medscope_gym.store.open import resolve_store_root
    from medscope_gym.store.prepare import prepare_videos, suite_videos
    from medscope_gym.tools import ToolConfig

    tools = ToolConfig()
    settings = StoreSettings(fps=args.fps if args.fps is not None else float(tools.crop_fps),
                             max_pixels=args.max_pixels or int(tools.crop_max_pixels))
    root = resolve_store_root(args.store_dir)
    videos = suite_videos(args.suite)
    started = time.perf_counter()
    results = prepare_videos(videos, root, settings, workers=args.workers, threads=args.threads,
                             progress=not args.quiet)
    failed = [r for r in results if r.status == "failed"]
    built = [r for r in results if r.status == "built"]
    frames = sum(r.frames for r in built)
    elapsed = time.perf_counter() - started
    cached = len(results) - len(built) - len(failed)
    print(f"frame stores in {root}: {len(built)} built, {cached} already there, {len(failed)} failed; "
          f"{frames} frames decoded in {elapsed:.1f} s"
          + (f" ({frames / elapsed:.0f} fps)" if frames else ""))
    for r in failed:
        print(f"  failed: {r.video}: {r.error}")
    return 1 if failed else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from medscope_gym.store.bench import BenchConfig, format_report, run_bench, run_build_bench
    from medscope_gym.store.benchvideos import BenchVideoSpec

    overrides: dict = {}
    if args.minutes:
        overrides["minutes"] = tuple(float(m) for m in args.minutes.split(","))
    if args.repeats:
        overrides["repeats"] = args.repeats
    if args.naive_repeats:
        overrides["naive_repeats"] = args.naive_repeats
    if args.vector_copies:
        overrides["vector_copies"] = tuple(int(n) for n in args.vector_copies.split(","))
    if args.env_steps:
        overrides["env_vector_steps"] = args.env_steps
    if args.build_pairs:
        overrides["build_pairs"] = args.build_pairs
    if args.size:
        w, h = (int(x) for x in args.size.lower().split("x"))
        overrides["video"] = BenchVideoSpec(width=w, height=h)
    cfg = BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)
    run = run_build_bench if args.build_only else run_bench
    result = run(cfg, log=(lambda _msg: None) if args.quiet else print)
    print(format_report(result))
    if args.json:
        from medscope_gym.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=1, default=str) + "\n")
    return 0


def register(commands, train_commands) -> None:
    """Add ``prepare`` and ``bench`` to the top-level ``medscope`` commands."""
    prepare = commands.add_parser("prepare", help="build the frame stores of a suite's videos ahead of time")
    prepare.add_argument("suite", help="suite folder or builtin:NAME")
    prepare.add_argument("--store-dir", default="auto",
                         help="folder of the stores (default: auto = $MEDSCOPE_CACHE/frame_stores)")
    prepare.add_argument("--workers", type=int, default=2, help="videos built in parallel (processes)")
    prepare.add_argument("--threads", type=int, default=1, help="decoder threads per video (0: automatic)")
    prepare.add_argument("--fps", type=float, help="grid rate (default: the tools' crop_fps, 1)")
    prepare.add_argument("--max-pixels", type=int, help="pixel cap (default: the tools' crop_max_pixels)")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(func=_cmd_prepare)

    bench = commands.add_parser("bench", help="benchmark tool calls, env steps/s, store builds, memory")
    bench.add_argument("--quick", action="store_true", help="1- and 10-minute videos, few repeats (~1-2 min)")
    bench.add_argument("--minutes", help="comma-separated video lengths, e.g. 1,10,60,120")
    bench.add_argument("--repeats", type=int, help="timed calls per fast operation")
    bench.add_argument("--naive-repeats", type=int, help="timed calls per direct-decoding baseline")
    bench.add_argument("--vector-copies", help="comma-separated vector env sizes, e.g. 2,4,8")
    bench.add_argument("--env-steps", type=int, help="timed vector steps per env row")
    bench.add_argument("--size", help="video size WxH (default 320x180)")
    bench.add_argument("--build-pairs", type=int,
                       help="plain decode / store build pairs per video, back to back (default 3; quick: 1)")
    bench.add_argument("--build-only", action="store_true",
                       help="only the store build vs plain decode pairs (the other rows take much longer)")
    bench.add_argument("--json", type=Path, help="also write the raw results here")
    bench.add_argument("--quiet", action="store_true", help="print only the table")
    bench.set_defaults(func=_cmd_bench)
