"""The ``medscope`` command line.

    medscope play --env MedScope/SynthSurg-v0 --policy oracle,no_tools --episodes 3 --seed 0 --reward graded
    medscope play --policy oracle,random --episodes 20 --quiet --out runs/play
    medscope view runs/play/oracle runs/play/random --out compare.html
    medscope synth OUT_DIR --videos 6 --min-duration 60 --max-duration 150 --seed 0
    medscope suite validate SUITE_DIR
    medscope bench --quick                      # measurement commands: benchmarks/ of a source checkout
    medscope profile --arch tiny --device cpu

The top layer of the package (tests/test_architecture.py): it may import the core, the envs and the
agents, and nothing below imports it. Importing it does not import torch & co: the agents import them
when a command runs. ``bench`` and ``profile`` run the measurement code of ``benchmarks/``, which is not
installed: they load it from the source checkout an editable install points at, and say so without one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import gymnasium as gym

from medscope_gym.agents import SCRIPTED_POLICIES, make_scripted_policy, run_episode
from medscope_gym.agents.evaluate import USAGE_COLUMNS, format_summary, make_policy, summarise_trajectories
from medscope_gym.agents.grpo import cli as grpo_cli
from medscope_gym.agents.recipe import cli as recipe_cli
from medscope_gym.agents.sb3 import cli as sb3_cli
from medscope_gym.agents.viewer import RecordingPolicy, ViewConfig, trajectory_from_result, write_report
from medscope_gym.agents.vlm import cli as vlm_cli
from medscope_gym.atomic import atomic_write_text
from medscope_gym.config import Config, add_config_arguments, check, config_from_args, positive_int
from medscope_gym.errors import ConfigError, MedScopeError
from medscope_gym.rewards import RewardSpec, parse_reward
from medscope_gym.store import cli as store_cli
from medscope_gym.suite import Suite
from medscope_gym.suite import cli as suite_cli
from medscope_gym.synthetic import build_synthetic_suite

__all__ = ["COMMAND_MODULES", "PlayConfig", "build_parser", "main"]

# Modules that add their own commands: each has ``register(commands, train_commands)`` taking the
# top-level and the ``medscope train`` subparser collections. They must import torch & co lazily.
COMMAND_MODULES: tuple[ModuleType, ...] = (grpo_cli, sb3_cli, vlm_cli, store_cli, suite_cli, recipe_cli)

_CHECKOUT = Path(__file__).resolve().parent.parent
"""The checkout an editable install points at; its ``benchmarks/`` is not installed."""


@dataclass
class PlayConfig(Config):
    """Settings of ``medscope play``: scripted policies played on an env, episode by episode."""

    env: str = "MedScope/SynthSurg-v0"
    """A registered env id."""
    suite: str | None = None
    """Suite folder (for MedScope/ClinVideo-v0) or ``builtin:NAME``; None: the env id's suite."""
    split: Literal["train", "val", "test"] | None = None
    """Play only this split's questions (None: all)."""
    policy: tuple[str, ...] = ("oracle",)
    """Policies to play, one after the other: oracle, no_tools, random, or openai:MODEL (a model served by an
    OpenAI-compatible endpoint at base_url)."""
    episodes: int = 3
    """Episodes per policy."""
    seed: int = 0
    """Seed of the first episode and of the policies."""
    reward: RewardSpec = "paper"
    """Env reward (docs/rewards.md): a name (paper, no_evidence, graded, monotone, ...) or a mapping of
    RewardConfig fields."""
    quiet: bool = False
    """Print only the summary table, not every trajectory."""
    render_dir: str | None = None
    """Save the rgb_array picture of each finished episode here."""
    out: str | None = None
    """Save each policy's episodes here, as ``OUT/<policy>/trajectories/`` and ``metrics.json``, with the
    observations' text and frame thumbnails: ``medscope view OUT/<policy>`` shows them (docs/viewer.md)."""
    base_url: str | None = None
    """API root of an ``openai:MODEL`` policy, e.g. http://127.0.0.1:8000/v1 (None: $OPENAI_BASE_URL, else
    https://api.openai.com/v1)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the endpoint's API key (unset: no key is sent)."""
    max_frames: int = 32
    """Frames of the preview and of each crop sent to an endpoint (evenly thinned)."""
    native_tools: bool = False
    """Send the tool schemas as ``tools=`` and map the endpoint's native tool calls to the text protocol."""

    def __post_init__(self) -> None:
        self.policy = tuple(self.policy)
        unknown = [n for n in self.policy if n not in SCRIPTED_POLICIES and not n.startswith("openai:")]
        if unknown or not self.policy:
            raise ConfigError(
                f"unknown policy {', '.join(unknown) or '(none)'}; choose from "
                f"{', '.join(SCRIPTED_POLICIES)} or openai:MODEL"
            )
        check(self, positive_int, "episodes", "max_frames")
        parse_reward(self.reward)


def _cmd_play(args: argparse.Namespace) -> int:
    cfg = config_from_args(PlayConfig, args)
    kwargs = {"reward": cfg.reward}
    if cfg.suite:
        kwargs["suite"] = cfg.suite
    if cfg.split:
        kwargs["split"] = cfg.split
    env = gym.make(cfg.env, render_mode="rgb_array" if cfg.render_dir else None, **kwargs)
    table = {}
    for name in cfg.policy:
        if name.startswith("openai:"):
            policy = make_policy(
                name,
                cfg.seed,
                base_url=cfg.base_url,
                api_key_env=cfg.api_key_env,
                max_frames=cfg.max_frames,
                native_tools=cfg.native_tools,
            )
        else:
            policy = make_scripted_policy(name, seed=cfg.seed)
        recorder = RecordingPolicy(policy) if cfg.out and not policy.records_turns else None
        trajectories = []
        for episode in range(cfg.episodes):
            seed = cfg.seed if episode == 0 else None
            result = run_episode(env, recorder or policy, seed=seed)
            info = result.final_info
            turns = recorder.take_turns(0) if recorder is not None else None
            trajectories.append(trajectory_from_result(result, policy.label, seed=seed, turns=turns))
            if not cfg.quiet:
                _print_episode(f"{name} {episode + 1}", result)
            if cfg.render_dir:
                from PIL import Image

                out = Path(cfg.render_dir) / f"{_stem(name)}-{episode + 1:03d}-{info['sample_id']}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(env.render()).save(out)
        summary = summarise_trajectories(trajectories)
        table[name] = summary["overall"]
        usage = policy.usage()  # what a served policy's endpoint reported
        if usage is not None:
            table[name].update({k: usage["overall"][k] for k in USAGE_COLUMNS})
        if cfg.out:
            _save_play(Path(cfg.out) / _stem(name), trajectories, cfg, name, summary)
    env.close()
    print(format_summary(table))
    if cfg.out:
        print(f"trajectories in {cfg.out}/<policy>; see them with: medscope view {cfg.out}/<policy>")
    return 0


def _stem(policy: str) -> str:
    return policy.replace("/", "_").replace(":", "_")


def _save_play(folder: Path, trajectories, cfg: PlayConfig, policy: str, summary: dict) -> None:
    from medscope_gym.agents.rollout.trajectory import save_trajectories

    save_trajectories(folder / "trajectories", trajectories)
    meta = {"policy": policy, "env": cfg.env, "suite": cfg.suite, "split": cfg.split, "summary": summary}
    atomic_write_text(folder / "metrics.json", json.dumps(meta, indent=2) + "\n")


def _cmd_view(args: argparse.Namespace) -> int:
    cfg = config_from_args(ViewConfig, args)
    if len(args.runs) > 2:
        raise ConfigError(f"medscope view shows one or two run folders, got {len(args.runs)}")
    print(f"episode viewer: {write_report(args.runs, cfg)}")
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


def _benchmarks(module: str) -> ModuleType:
    """``benchmarks.<module>`` of the source checkout; ``ConfigError`` without one (an installed wheel)."""
    root = _CHECKOUT / "benchmarks"
    if not ((root / "__init__.py").is_file() and (_CHECKOUT / "pyproject.toml").is_file()):
        raise ConfigError(
            "this command runs the measurement code in benchmarks/ of a MedScope-Gym source checkout, which "
            "an installed package does not ship: clone the repository, `pip install -e .` there and run it "
            "again (docs/benchmarks.md)"
        )
    package = sys.modules.get("benchmarks")
    if package is None:
        spec = importlib.util.spec_from_file_location(
            "benchmarks", root / "__init__.py", submodule_search_locations=[str(root)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = package
        spec.loader.exec_module(package)
    elif Path(getattr(package, "__file__", None) or "/").resolve().parent != root.resolve():
        raise ConfigError(f"another package named benchmarks is imported ({package!r}), not {root}")
    return importlib.import_module(f"benchmarks.{module}")


def _cmd_bench(args: argparse.Namespace) -> int:
    retrieval, videos = _benchmarks("retrieval"), _benchmarks("videos")
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
        overrides["video"] = videos.BenchVideoSpec(width=w, height=h)
    cfg = retrieval.BenchConfig.quick(**overrides) if args.quick else retrieval.BenchConfig(**overrides)
    run = retrieval.run_build_bench if args.build_only else retrieval.run_bench
    result = run(cfg, log=(lambda _msg: None) if args.quiet else print)
    print(retrieval.format_report(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1, default=str) + "\n")
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    device_profile = _benchmarks("device_profile")
    cfg = config_from_args(device_profile.ProfileConfig, args)
    result = device_profile.profile(
        cfg.arch,
        cfg.out,
        device=cfg.device,
        suite=cfg.suite,
        episodes=cfg.episodes,
        group_size=cfg.group_size,
        max_new_tokens=cfg.max_new_tokens,
    )
    for key, value in result.items():
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    return 0


def _fail(error: ConfigError) -> None:
    raise error


def _add_measurement_commands(commands: argparse._SubParsersAction) -> None:
    """``bench`` and ``profile``: thin commands over benchmarks/ (docs/benchmarks.md)."""
    bench = commands.add_parser("bench", help="benchmark tool calls, env steps/s, store builds, memory")
    bench.add_argument("--quick", action="store_true", help="1- and 10-minute videos, few repeats (~1-2 min)")
    bench.add_argument("--minutes", help="comma-separated video lengths, e.g. 1,10,60,120")
    bench.add_argument("--repeats", type=int, help="timed calls per fast operation")
    bench.add_argument("--naive-repeats", type=int, help="timed calls per direct-decoding baseline")
    bench.add_argument("--vector-copies", help="comma-separated vector env sizes, e.g. 2,4,8")
    bench.add_argument("--env-steps", type=int, help="timed vector steps per env row")
    bench.add_argument("--size", help="video size WxH (default 320x180)")
    bench.add_argument(
        "--build-pairs",
        type=int,
        help="plain decode / store build pairs per video, back to back (default 3; quick: 1)",
    )
    bench.add_argument(
        "--build-only",
        action="store_true",
        help="only the store build vs plain decode pairs (the other rows take much longer)",
    )
    bench.add_argument("--json", type=Path, help="also write the raw results here")
    bench.add_argument("--quiet", action="store_true", help="print only the table")
    bench.set_defaults(func=_cmd_bench)

    help_text = "rollout tokens/s, GA-GRPO step time and memory of a real-size architecture (random weights)"
    try:
        profile_config = _benchmarks("device_profile").ProfileConfig
    except ConfigError as exc:  # no source checkout: take any arguments, say what is missing when run
        prof = commands.add_parser("profile", help=help_text, prefix_chars="\0", add_help=False)
        prof.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)
        prof.set_defaults(func=lambda _args, error=exc: _fail(error))
        return
    prof = commands.add_parser("profile", help=help_text)
    add_config_arguments(prof, profile_config)
    prof.set_defaults(func=_cmd_profile)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medscope", description="MedScope-Gym: RL on long clinical videos")
    sub = parser.add_subparsers(dest="command", required=True)

    play = sub.add_parser("play", help="run a scripted policy and print trajectories and reward parts")
    add_config_arguments(play, PlayConfig)
    play.set_defaults(func=_cmd_play)

    view = sub.add_parser(
        "view", help="write an HTML report of the episodes of one run folder, or two side by side"
    )
    view.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="eval/play --out folder, GA-GRPO run or trajectories folder",
    )
    add_config_arguments(view, ViewConfig)
    view.set_defaults(func=_cmd_view)

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
        module.register(sub, train_sub)
    _add_measurement_commands(sub)
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
