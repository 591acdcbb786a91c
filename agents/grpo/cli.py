"""``medscope train grpo`` and ``medscope ablate`` (registered in medscope_gym.cli).

    medscope train grpo --config configs/grpo_tiny.yaml --model runs/sft/final --out runs/grpo
    medscope ablate --config configs/grpo_tiny.yaml --model runs/sft/final --out runs/ablation --seeds 0,1,2

Every flag is a :class:`~medscope_gym.agents.grpo.config.GRPOConfig` field; command-line values override
the YAML file's. torch is imported only when a command runs. (``medscope profile`` is measurement code:
``benchmarks/device_profile.py``, a command of medscope_gym.cli.)
"""

from __future__ import annotations

import argparse

from medscope_gym.agents.grpo.config import GRPOConfig
from medscope_gym.config import add_config_arguments, config_from_args

__all__ = ["register"]


def _cmd_train_grpo(args: argparse.Namespace) -> int:
    from medscope_gym.agents.grpo.trainer import train_grpo

    cfg = config_from_args(GRPOConfig, args)
    final = train_grpo(cfg)
    print(
        f"grpo: final checkpoint {final}; metrics {final.parent / 'metrics.jsonl'}; "
        f"curves {final.parent / 'curves.png'}"
    )
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from medscope_gym.agents.grpo.ablation import format_ablation, run_ablation

    base = config_from_args(GRPOConfig, args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    result = run_ablation(base, base.out, variants, seeds)
    print(format_ablation(result["table"], len(seeds)))
    return 0


def register(commands: argparse._SubParsersAction, train_commands: argparse._SubParsersAction) -> None:
    """Add ``grpo`` under ``train`` and ``ablate`` at the top level."""
    grpo = train_commands.add_parser("grpo", help="GA-GRPO from a checkpoint (usually the SFT cold start)")
    add_config_arguments(grpo, GRPOConfig)
    grpo.set_defaults(func=_cmd_train_grpo)

    ablate = commands.add_parser(
        "ablate", help="the paper's reward ablation: one GA-GRPO run per variant and seed"
    )
    ablate.add_argument(
        "--variants",
        default="paper,no_evidence,conditional_evidence,no_iou_bonus,no_modulation",
        help="comma-separated: paper, no_evidence, conditional_evidence, no_iou_bonus, no_modulation",
    )
    ablate.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    add_config_arguments(
        ablate, GRPOConfig, title="GRPOConfig fields of every run (out: the ablation folder)"
    )
    ablate.set_defaults(func=_cmd_ablate)
