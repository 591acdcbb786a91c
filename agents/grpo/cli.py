"""``medscope train grpo`` and ``medscope ablate`` (registered in medscope_gym.cli).

    medscope train grpo --config configs/grpo_tiny.yaml --model runs/sft/final --out runs/grpo
    medscope ablate --config configs/grpo_tiny.yaml --model runs/sft/final --out runs/ablation --seeds 0,1,2

Command-line values override the YAML file's. torch is imported only when a command runs.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _config(args: argparse.Namespace):
    from medscope_gym.agents.grpo.config import GRPOConfig

    return GRPOConfig.from_yaml(
        args.config,
        model=args.model,
        out=args.out,
        max_steps=args.max_steps,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        progress=False if args.quiet else None,
    )


def _cmd_train_grpo(args: argparse.Namespace) -> int:
    from medscope_gym.agents.grpo.trainer import train_grpo

    cfg = _config(args)
    final = train_grpo(cfg)
    print(
        f"grpo: final checkpoint {final}; metrics {final.parent / 'metrics.jsonl'}; "
        f"curves {final.parent / 'curves.png'}"
    )
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from medscope_gym.agents.grpo.ablation import format_ablation, run_ablation

    base = _config(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    result = run_ablation(base, args.out or base.out, variants, seeds)
    print(format_ablation(result["table"], len(seeds)))
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from medscope_gym.agents.grpo.profile import profile

    result = profile(
        args.arch,
        args.out,
        device=args.device,
        suite=args.suite,
        episodes=args.episodes,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
    )
    for key, value in result.items():
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML file of GRPOConfig fields")
    parser.add_argument("--model", default=None, help="start checkpoint (overrides the file's model)")
    parser.add_argument("--out", default=None, help="run folder (overrides the file's out)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(commands: argparse._SubParsersAction, train_commands: argparse._SubParsersAction) -> None:
    """Add ``grpo`` under ``train`` and ``ablate`` at the top level."""
    grpo = train_commands.add_parser("grpo", help="GA-GRPO from a checkpoint (usually the SFT cold start)")
    _common(grpo)
    grpo.set_defaults(func=_cmd_train_grpo)

    ablate = commands.add_parser(
        "ablate", help="the paper's reward ablation: one GA-GRPO run per variant and seed"
    )
    _common(ablate)
    ablate.add_argument(
        "--variants",
        default="paper,no_evidence,conditional_evidence,no_iou_bonus,no_modulation",
        help="comma-separated: paper, no_evidence, conditional_evidence, no_iou_bonus, no_modulation",
    )
    ablate.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    ablate.set_defaults(func=_cmd_ablate)

    prof = commands.add_parser(
        "profile",
        help="rollout tokens/s, GA-GRPO step time and memory of a real-size architecture (random weights)",
    )
    prof.add_argument("--arch", default="qwen2.5-vl-3b", help="qwen2.5-vl-3b | tiny")
    prof.add_argument("--out", default="runs/profile")
    prof.add_argument("--device", default="auto")
    prof.add_argument("--suite", default="builtin:synthsurg-small")
    prof.add_argument("--episodes", type=int, default=8)
    prof.add_argument("--group-size", type=int, default=4)
    prof.add_argument("--max-new-tokens", type=int, default=128)
    prof.set_defaults(func=_cmd_profile)
