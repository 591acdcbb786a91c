"""``medscope recipe CONFIG --seed S``: the testbed recipe from nothing (docs/agents.md, "Testbed recipe");
``medscope recipe-probe``: the reading probe (docs/results.md, "Reading probe"); ``medscope
recipe-ablate CONFIG --seed S``: the reward ablation from a seed's Stage II; ``medscope
recipe-summary OUT``: the seeds of a recipe (and their ablations) as mean ± std tables; ``medscope
recipe-listings SEED_DIR STAGE``: the listings of a stage's held-out episodes, counted step by step.

torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse

from medscope_gym.agents.grpo.ablation import VARIANTS
from medscope_gym.agents.recipe.config import RecipeConfig
from medscope_gym.agents.recipe.probe import ReadingProbeConfig
from medscope_gym.agents.scripted import SearchStyle
from medscope_gym.config import add_config_arguments, config_from_args

__all__ = ["register"]


def _recipe_config(args: argparse.Namespace) -> RecipeConfig:
    """The recipe's settings from the command line; the YAML may be given as the first argument."""
    if args.config_file is not None and getattr(args, "config", None) is None:
        args.config = args.config_file
    return config_from_args(RecipeConfig, args)


def _cmd_recipe(args: argparse.Namespace) -> int:
    from medscope_gym.agents.recipe.runner import format_results, run_recipe

    cfg = _recipe_config(args)
    results = run_recipe(cfg)
    print(format_results(results))
    print(f"recipe: results in {cfg.out}/seed-{cfg.seed}/results.md (and results.json, curves.png)")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from medscope_gym.agents.recipe.probe import ReadingProbeConfig, run_reading_probe
    from medscope_gym.atomic import atomic_write_text

    result = run_reading_probe(config_from_args(ReadingProbeConfig, args))
    shown = ", ".join(f"{skill} {acc:.3f}" for skill, acc in result["heldout"].items())
    print(f"probe: held-out accuracy {shown} ({result['seconds']:.0f} s)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.out), json.dumps(result, indent=2) + "\n")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from medscope_gym.agents.recipe.summary import (
        format_ablation_summary,
        format_orderings,
        format_summary_table,
        load_ablations,
        load_seeds,
    )

    seeds = load_seeds(args.out)
    print(format_summary_table(seeds))
    orderings = format_orderings(seeds)
    if orderings:
        print("\n" + orderings)
    ablations = load_ablations(args.out)
    if ablations:
        print("\n" + format_ablation_summary(ablations))
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from medscope_gym.agents.grpo.ablation import format_ablation
    from medscope_gym.agents.recipe.ablation import ABLATION_FOLDER, run_recipe_ablation

    cfg = _recipe_config(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    result = run_recipe_ablation(cfg, variants)
    print(format_ablation(result["table"], 1))
    print(f"recipe-ablate: {cfg.out}/seed-{cfg.seed}/{ABLATION_FOLDER}/ablation.md (and .json)")
    return 0


def _cmd_listings(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from medscope_gym.agents.recipe.listings import saved_listing_scores

    seed_dir = Path(args.seed_dir)
    recipe = seed_dir / "recipe.json"  # the run's settings: how its listings and close crops are written
    search = json.loads(recipe.read_text()).get("search", {}) if recipe.is_file() else {}
    style = SearchStyle.from_dict(search, f"{recipe}: search")
    scores = saved_listing_scores(seed_dir / args.stage / "eval", seed_dir / "data" / "heldout", style)
    print(json.dumps(scores, indent=2))
    return 0


def register(commands: argparse._SubParsersAction, train_commands: argparse._SubParsersAction) -> None:
    """Add ``recipe`` at the top level."""
    recipe = commands.add_parser(
        "recipe", help="the testbed recipe: data, model, Stage I-III, answer-only model, baselines, table"
    )
    recipe.add_argument("config_file", nargs="?", default=None, help="recipe YAML (same as --config)")
    add_config_arguments(recipe, RecipeConfig)
    recipe.set_defaults(func=_cmd_recipe)
    probe = commands.add_parser(
        "recipe-probe", help="the reading probe: can the tiny model learn to name a testbed symbol?"
    )
    probe.add_argument("--out", default=None, help="write the curve and final accuracy here (JSON)")
    add_config_arguments(probe, ReadingProbeConfig)
    probe.set_defaults(func=_cmd_probe)
    ablate = commands.add_parser(
        "recipe-ablate",
        help="the reward ablation on the testbed: one Stage III per reward variant, from a seed's Stage II",
    )
    ablate.add_argument("config_file", nargs="?", default=None, help="recipe YAML (same as --config)")
    ablate.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, of {', '.join(VARIANTS)} (default: all)",
    )
    add_config_arguments(ablate, RecipeConfig)
    ablate.set_defaults(func=_cmd_ablate)
    summary = commands.add_parser(
        "recipe-summary", help="several seeds of the recipe as one mean ± std table (OUT/seed-*/results.json)"
    )
    summary.add_argument("out", help="the recipe's out folder (holding seed-S/)")
    summary.set_defaults(func=_cmd_summary)
    listings = commands.add_parser(
        "recipe-listings",
        help="the listings and close crops of a stage's held-out episodes, scored against the captions",
    )
    listings.add_argument("seed_dir", help="one seed's folder of a recipe run (OUT/seed-S)")
    listings.add_argument("stage", nargs="?", default="stage-2-vcot", help="the stage's folder")
    listings.set_defaults(func=_cmd_listings)
