"""The ``medscope`` command line.

    medscope play --env MedScope/SynthSurg-v0 --policy oracle --episodes 3 --seed 0
    medscope synth OUT_DIR --videos 6 --min-duration 60 --max-duration 150 --seed 0
    medscope suite validate SUITE_DIR

Commands import the heavy parts (agents, envs) only when they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from medscope_gym.errors import ConfigError, MedScopeError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

# Modules that add their own commands: each has ``register(commands, train_commands)`` taking the
# top-level and the ``medscope train`` subparser collections. They must import torch & co lazily.
COMMAND_MODULES: tuple[str, ...] = (
    "medscope_gym.agents.grpo.cli",
    "medscope_gym.agents.sb3.cli",
    "medscope_gym.agents.vlm.cli",
    "medscope_gym.store.cli",
    "medscope_gym.suite.cli",
)


def _cmd_play(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from medscope_gym.agents import SCRIPTED_POLICIES, make_scripted_policy, record_from_info, run_episode
    from medscope_gym.metrics import format_table, summarise

    names = [n.strip() for n in args.policy.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCRIPTED_POLICIES]
    if unknown or not names:
        raise ConfigError(
            f"unknown policy {', '.join(unknown) or '(none)'}; choose from {', '.join(SCRIPTED_POLICIES)}"
        )
    kwargs = {"reward": args.reward}
    if args.suite:
        kwargs["suite"] = args.suite
    if args.split:
        kwargs["split"] = args.split
    env = gym.make(args.env, render_mode="rgb_array" if args.render_dir else None, **kwargs)
    table = {}
    for name in names:
        policy = make_scripted_policy(name, seed=args.seed)
        records = []
        for episode in range(args.episodes):
            result = run_episode(env, policy, seed=args.seed if episode == 0 else None)
            info = result.final_info
            records.append(record_from_info(info))
            if not args.quiet:
                _print_episode(f"{name} {episode + 1}", result)
            if args.render_dir:
                from PIL import Image

                out = Path(args.render_dir) / f"{name}-{episode + 1:03d}-{info['sample_id']}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(env.render()).save(out)
        table[name] = summarise(records)
    env.close()
    print(format_table(table))
    return 0


def _print_episode(label: str, result) -> None:
    info = result.final_info
    parts = info["reward_parts"]
    print(f"=== episode {label}  sample {info['sample_id']}  task {info['task']}")
    print(f"[env] {result.observations[0]}")
    for action, reply in zip(result.actions, result.observations[1:]):
        print(f"[agent] {action}")
        print(f"[env] {reply}")
    end = "truncated" if result.truncated else "answered"
    truth = info["ground_truth"]
    print(f"--> {end}; ground truth {truth['answer']!r} evidence {truth['evidence']}")
    print(
        f"--> reward {parts['total']:.2f} = accuracy {parts['accuracy']:.2f} + format {parts['format']:.2f} "
        f"+ evidence {parts['evidence']:.2f} (crop {parts['crop']:.2f}, frame {parts['frame']:.2f})"
        f"{'' if info['format']['ok'] else '; format: ' + info['format']['reason']}\n"
    )


def _shares(text: str) -> tuple[float, float, float]:
    try:
        shares = tuple(float(x) for x in text.split(","))
    except ValueError:
        shares = ()
    if len(shares) != 3 or min(shares) < 0 or sum(shares) <= 0:
        raise argparse.ArgumentTypeError(f"expected three non-negative shares like 0.6,0.2,0.2, got {text!r}")
    return shares  # type: ignore[return-value]


def _cmd_synth(args: argparse.Namespace) -> int:
    from medscope_gym.suite import Suite
    from medscope_gym.synthetic import build_synthetic_suite

    path = build_synthetic_suite(
        args.out,
        n_videos=args.videos,
        min_duration_s=args.min_duration,
        max_duration_s=args.max_duration,
        seed=args.seed,
        width=args.width,
        height=args.height,
        fps=args.fps,
        burn_index=args.burn_index,
        splits=args.splits,
    )
    suite = Suite.load(path)
    print(f"wrote {len(suite)} samples over {len(suite.videos())} videos to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medscope", description="MedScope-Gym: RL on long clinical videos")
    sub = parser.add_subparsers(dest="command", required=True)

    play = sub.add_parser("play", help="run a scripted policy and print trajectories and reward parts")
    play.add_argument("--env", default="MedScope/SynthSurg-v0", help="a registered env id")
    play.add_argument("--suite", help="suite folder (for MedScope/ClinVideo-v0) or builtin:NAME")
    play.add_argument("--split", choices=("train", "val", "test"))
    play.add_argument(
        "--policy", default="oracle", help="oracle, no_tools, random, or a comma-separated list"
    )
    play.add_argument("--episodes", type=int, default=3)
    play.add_argument("--seed", type=int, default=0)
    play.add_argument(
        "--reward",
        default="paper",
        help="reward preset: paper, no_evidence, conditional_evidence, no_iou_bonus",
    )
    play.add_argument("--quiet", action="store_true", help="print only the summary table")
    play.add_argument("--render-dir", help="save the rgb_array picture of each finished episode here")
    play.set_defaults(func=_cmd_play)

    synth = sub.add_parser("synth", help="generate a synthetic procedure suite (videos, annotations, QA)")
    synth.add_argument("out")
    synth.add_argument("--videos", type=int, default=6)
    synth.add_argument("--min-duration", type=float, default=60.0)
    synth.add_argument("--max-duration", type=float, default=150.0)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--width", type=int, default=160)
    synth.add_argument("--height", type=int, default=120)
    synth.add_argument("--fps", type=float, default=25.0)
    synth.add_argument("--burn-index", action="store_true", help="burn the frame index into every frame")
    synth.add_argument(
        "--splits",
        type=_shares,
        default=(0.6, 0.2, 0.2),
        help="train,val,test shares of the videos (1,0,0: all videos but one test video train)",
    )
    synth.set_defaults(func=_cmd_synth)

    train = sub.add_parser("train", help="train an agent")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub, train_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MedScopeError as exc:
        print(f"medscope: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
