"""The reward ablation on the testbed: ``medscope recipe-ablate CONFIG --seed S`` (docs/agents.md,
"Reward ablation on the testbed").

Every variant of the paper's ablation (:data:`~medscope_gym.agents.grpo.ablation.VARIANTS`: ``paper``,
``no_evidence``, ``conditional_evidence``, ``no_iou_bonus``, ``no_modulation``) is one Stage III: the
recipe's own GA-GRPO settings (``cfg.grpo``, :func:`~medscope_gym.agents.recipe.runner.stage_three_config`)
from this seed's Stage II, on this seed's Stage III stream, with the recipe's seed. Only the reward (or
the modulation) differs. Each is scored greedily on every held-out question (val + test), as every row
of the recipe's table is, and the Stage II start once, as the ablation's first row. The ``paper``
variant is the recipe's own Stage III run again, so it also tells whether Stage III repeats.

Layout: ``OUT/seed-S/ablation/<variant>/seed-S/`` (a GA-GRPO run folder each) and
``OUT/seed-S/ablation/ablation.{json,md}``. Finished variants are reused, so a killed ablation resumes.
Several seeds: run it once per seed, then ``medscope recipe-summary OUT`` adds the mean ± std table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medscope_gym.agents.grpo.ablation import VARIANTS, run_ablation
from medscope_gym.agents.recipe.config import RecipeConfig
from medscope_gym.agents.recipe.runner import final_of, stage_three_config

__all__ = ["ABLATION_FOLDER", "run_recipe_ablation"]

#: The ablation's folder inside a seed's folder.
ABLATION_FOLDER = "ablation"


def run_recipe_ablation(cfg: RecipeConfig, variants: Sequence[str] = tuple(VARIANTS)) -> dict[str, Any]:
    """Train and score every variant from ``cfg.seed``'s Stage II; returns ``run_ablation``'s result
    (also written to ``OUT/seed-S/ablation/ablation.json`` and ``.md``)."""
    root = Path(cfg.out) / f"seed-{cfg.seed}"
    start = final_of(root, "vcot")  # a clear error when Stage II has not finished
    suites = {name: root / "data" / name for name in ("rl", "heldout")}
    missing = [str(path) for path in suites.values() if not path.is_dir()]
    if missing:
        raise FileNotFoundError(f"the recipe's suites {missing} are missing; run `medscope recipe` first")
    out = root / ABLATION_FOLDER
    base = stage_three_config(cfg, start, suites, out)
    # scored on val + test, as the recipe's table is (Stage III itself validates on val alone)
    base = dataclasses.replace(base, eval_splits=("val", "test"))
    return run_ablation(base, out, variants, seeds=(cfg.seed,))
