"""``medscope recipe CONFIG --seed S``: the testbed recipe from nothing (docs/agents.md, "Testbed recipe").

torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse

from medscope_gym.agents.recipe.config import RecipeConfig
from medscope_gym.config import add_config_arguments, config_from_args

__all__ = ["register"]


def _cmd_recipe(args: argparse.Namespace) -> int:
    from medscope_gym.agents.recipe.runner import format_results, run_recipe

    if args.config_file is not None and getattr(args, "config", None) is None:
        args.config = args.config_file
    cfg = config_from_args(RecipeConfig, args)
    results = run_recipe(cfg)
    print(format_results(results))
    print(f"recipe: results in {cfg.out}/seed-{cfg.seed}/results.md (and results.json, curves.png)")
    return 0


def register(commands: argparse._SubParsersAction, train_commands: argparse._SubParsersAction) -> None:
    """Add ``recipe`` at the top level."""
    recipe = commands.add_parser(
        "recipe", help="the testbed recipe: data, model, Stage I-III, answer-only model, baselines, table"
    )
    recipe.add_argument("config_file", nargs="?", default=None, help="recipe YAML (same as --config)")
    add_config_arguments(recipe, RecipeConfig)
    recipe.set_defaults(func=_cmd_recipe)
