"""``medscope train sb3``: train a Stable-Baselines3 agent on the numeric env and evaluate it.

    medscope train sb3 --algo ppo --env MedScope/SynthSurg-Numeric-v0 --max-steps 60000 --seed 0 \\
        --time-limit-s 900 --out runs/ppo-seed0
    medscope train sb3 --config run.yaml --seed 1

Every flag is a :class:`~medscope_gym.agents.sb3.train.TrainConfig` field (``--config FILE.yaml`` loads
fields, flags win). torch and stable-baselines3 are imported only when the command runs.
"""

from __future__ import annotations

import argparse

from medscope_gym.agents.sb3.train import TrainConfig
from medscope_gym.config import add_config_arguments, config_from_args

__all__ = ["register"]


def _cmd_train_sb3(args: argparse.Namespace) -> int:
    from medscope_gym.agents.sb3.train import train
    from medscope_gym.metrics import format_table

    cfg = config_from_args(TrainConfig, args)
    results = train(cfg)
    print(
        f"trained {results['train_steps']} steps ({results['train_episodes']} episodes) in "
        f"{results['train_seconds']:.0f} s ({results['train_cpu_seconds']:.0f} s CPU); "
        f"model, curve and results in {cfg.out}"
    )
    if results["eval"]:
        columns = ["episodes", "accuracy", "evidence_R@0.5", "evidence_mIoU", "reward", "tool_calls", "turns"]
        print(format_table(results["eval"], columns))
    return 0


def register(commands: argparse._SubParsersAction, train_commands: argparse._SubParsersAction) -> None:
    """Add ``medscope train sb3``."""
    p = train_commands.add_parser(
        "sb3",
        help="train a Stable-Baselines3 agent on the numeric env",
        description="Train PPO/A2C on a numeric ClinVideo env, save the model, plot the "
        "learning curve and evaluate on held-out questions against scripted baselines.",
    )
    add_config_arguments(p, TrainConfig)
    p.set_defaults(func=_cmd_train_sb3)
