"""``medscope recipe``: the three-stage testbed recipe into one results table (docs/agents.md)."""

from medscope_gym.agents.recipe.config import RecipeConfig
from medscope_gym.agents.recipe.runner import STAGES, run_recipe

__all__ = ["STAGES", "RecipeConfig", "run_recipe"]
