"""``medscope suite build|validate|stats|export``: the ClinVideoSuite pipeline on the command line.

medscope suite build data/cholec80 suites/cholec80 --splits 0.7,0.15,0.15
medscope suite validate suites/cholec80
medscope suite stats builtin:synthsurg-bench --plots out/ --policies oracle,no_tools
medscope suite export suites/cholec80 --out suites/cholec80/export --format rl,sft
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medscope_gym.agents.baselines import policy_scores
from medscope_gym.atomic import atomic_write_text
from medscope_gym.errors import ConfigError
from medscope_gym.store import resolve_store_root
from medscope_gym.suite import Suite
from medscope_gym.suite.builder import BuildConfig, build_suite
from medscope_gym.suite.export import export_suite
from medscope_gym.suite.filters import FILTER_NAMES, FilterConfig
from medscope_gym.suite.stats import format_stats, plot_histograms, suite_stats
from medscope_gym.suite.templates import DEFAULT_TEMPLATES, TemplateConfig
from medscope_gym.suite.trajectories import TrajectoryConfig
from medscope_gym.suite.verify import verify_suite_videos

__all__ = ["register"]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _cmd_build(args: argparse.Namespace) -> int:
    off = _csv(args.no_filter or "")
    bad = [f for f in off if f not in FILTER_NAMES]
    if bad:
        raise ConfigError(f"unknown filter(s) {', '.join(bad)}; choose from {', '.join(FILTER_NAMES)}")
    splits = tuple(float(x) for x in _csv(args.splits))
    cfg = BuildConfig(
        source_kind=args.kind,
        templates=_csv(args.templates) if args.templates else DEFAULT_TEMPLATES,
        template=TemplateConfig(per_video=args.per_video),
        filters=FilterConfig(**{name: False for name in off}),
        trajectories=None if args.no_trajectories else TrajectoryConfig(),
        captions=not args.no_captions,
        splits=splits,  # type: ignore[arg-type]
        seed=args.seed,
        link_videos=args.link,
    )
    result = build_suite(args.source, args.out, cfg, progress=not args.quiet, resume=not args.no_resume)
    for issue in result.issues:
        print(issue)
    print(result.report.format())
    counts = {s: sum(x.split == s for x in result.samples) for s in ("train", "val", "test")}
    print(
        f"wrote {len(result.samples)} samples over {len({s.video for s in result.samples})} videos to "
        f"{result.path} ({', '.join(f'{k}={v}' for k, v in counts.items())})"
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    suite = Suite.from_spec(args.suite)
    # Every video gets the check ClinVideoEnv.reset makes: open and index it, verify the decodable
    # frame count (a truncated file decodes fewer frames), compare each sample's duration, decode
    # the preview.
    errors = verify_suite_videos(suite, backend=args.backend, store_root=resolve_store_root(args.frame_store))
    n_videos = len(suite.videos())
    if errors:
        for err in errors:
            print(f"error: {err}", file=sys.stderr)
        print(f"FAILED: {len(errors)} of {n_videos} videos fail the check reset makes", file=sys.stderr)
        return 1
    print(f"ok: {len(suite)} samples, {n_videos} videos (each decoded and checked as reset would)")
    for key in ("split", "task", "answer_type"):
        print(f"  {key}: " + ", ".join(f"{k}={v}" for k, v in sorted(suite.counts(key).items())))
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    suite = Suite.from_spec(args.suite, split=args.split)
    stats = suite_stats(suite)
    policies = None
    if args.policies:
        store = None if args.no_frame_store else "auto"
        policies = policy_scores(suite, _csv(args.policies), limit=args.limit, frame_store=store)
    print(format_stats(stats, policies))
    if args.plots:
        for path in plot_histograms(suite, args.plots):
            print(f"wrote {path}")
    if args.json:
        atomic_write_text(args.json, json.dumps({"stats": stats, "policies": policies}, indent=1) + "\n")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    suite = Suite.from_spec(args.suite)
    out = Path(args.out) if args.out else suite.root / "export"
    counts = export_suite(suite, out, formats=_csv(args.format), splits=_csv(args.splits))
    for name, n in sorted(counts.items()):
        print(f"wrote {n:6d} rows to {out / name}")
    return 0


def register(commands: argparse._SubParsersAction, train_commands: argparse._SubParsersAction) -> None:
    """Add the ``suite`` command group."""
    suite = commands.add_parser("suite", help="build, validate, inspect and export ClinVideoSuite folders")
    sub = suite.add_subparsers(dest="suite_command", required=True)

    build = sub.add_parser("build", help="annotated videos (Cholec80, CholecT50, MedVidQA, RL rows) -> suite")
    build.add_argument("source", help="folder with the videos and their annotations")
    build.add_argument("out", help="suite folder to write (replaced atomically)")
    build.add_argument("--kind", default="auto", help="cholec80, cholect50, medvidqa, paper_rows or auto")
    build.add_argument("--splits", default="0.7,0.15,0.15", help="train,val,test shares of the videos")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--templates", help="comma-separated question templates (default: all)")
    build.add_argument("--per-video", type=int, default=6, help="questions per template and video, at most")
    build.add_argument(
        "--no-filter",
        help="comma-separated filters to skip: inconsistent, long_evidence, "
        "near_duplicate, preview, text_only",
    )
    build.add_argument("--no-trajectories", action="store_true", help="skip the reference trajectories")
    build.add_argument("--no-captions", action="store_true", help="skip the dense captions")
    build.add_argument(
        "--link",
        default="hardlink",
        choices=("hardlink", "symlink", "copy"),
        help="how videos enter the suite folder",
    )
    build.add_argument("--no-resume", action="store_true", help="discard cached per-video work")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=_cmd_build)

    validate = sub.add_parser(
        "validate", help="check a suite folder and decode-check every video as the env's reset would"
    )
    validate.add_argument("suite", help="suite folder or builtin:NAME")
    validate.add_argument("--backend", default="pyav", choices=("pyav", "decord"), help="exact decoder")
    validate.add_argument(
        "--frame-store",
        default=None,
        help="also build/check frame stores: 'auto' ($MEDSCOPE_CACHE/frame_stores) or a folder "
        "(default: decode the videos directly)",
    )
    validate.set_defaults(func=_cmd_validate)

    stats = sub.add_parser("stats", help="counts, evidence histograms, filter report, baselines vs chance")
    stats.add_argument("suite", help="suite folder or builtin:NAME")
    stats.add_argument("--split", choices=("train", "val", "test"))
    stats.add_argument("--plots", help="folder for evidence_length.png and evidence_position.png")
    stats.add_argument("--policies", help="scripted policies to play through the env, e.g. oracle,no_tools")
    stats.add_argument("--limit", type=int, help="play the policies on the first N samples only")
    stats.add_argument("--no-frame-store", action="store_true", help="policies: decode tool calls directly")
    stats.add_argument("--json", help="also write the numbers to this JSON file")
    stats.set_defaults(func=_cmd_stats)

    export = sub.add_parser("export", help="write the paper's RL rows and HF chat SFT records")
    export.add_argument("suite", help="suite folder or builtin:NAME")
    export.add_argument("--out", help="output folder (default: SUITE/export)")
    export.add_argument("--format", default="rl,sft", help="rl, sft or both")
    export.add_argument("--splits", default="train,val,test")
    export.set_defaults(func=_cmd_export)
