"""The reading probe: Stage I's perception training on a model built from scratch, nothing else.

When the recipe's stages fail together, the first suspect is a vision tower that never learned to tell
the symbols apart, and a multi-turn SFT loss cannot show it: a symbol's name is two or three of a
trajectory's ~150 imitated tokens. The probe trains the recipe's tiny model on the perception skills
alone (by default ``symbol``: name the symbol three timestamped frames show) and prints held-out
accuracy per skill, and per kind of answer for ``frames``: ``medscope recipe-probe --seed 0``
(docs/results.md, "Reading probe").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medscope_gym.agents.recipe.perception import PerceptionConfig, train_perception

__all__ = ["ReadingProbeConfig", "run_reading_probe"]


@dataclass
class ReadingProbeConfig(PerceptionConfig):
    """Stage I's settings on a fresh model (``model``), by default the ``symbol`` skill alone."""

    model: dict[str, Any] = field(
        default_factory=lambda: {
            "text_hidden": 128,
            "text_layers": 4,
            "text_intermediate": 384,
            "vision_depth": 2,
            "vision_hidden": 64,
            "vision_heads": 2,
            "patch_size": 8,
            "min_pixels": 256,
            "max_pixels": 4096,
        }
    )
    """TinyModelConfig fields of the model built from scratch (default: configs/recipe_tiny.yaml's)."""
    skills: tuple[str, ...] = ("symbol",)
    """Skills trained and scored (default: ``symbol`` alone)."""
    steps: int = 600
    """Optimizer steps."""
    heldout: int = 200
    """Held-out examples per skill."""
    checkpoint: str | None = None
    """Start from this checkpoint folder instead of a model built from ``model`` (with ``--steps 0``:
    score it as it is, e.g. whether a Stage II model still reads what Stage I taught it)."""
    save: str | None = None
    """Write the trained model here (with the checkpoint's processor and policy settings), e.g. to
    continue a recipe's Stage I model with other examples and score it in episodes."""


def run_reading_probe(cfg: ReadingProbeConfig) -> dict[str, Any]:
    """Build the model (seeded by ``cfg.seed``) or load ``cfg.checkpoint``, and train it; returns Stage
    I's scores and curve."""
    tiny = None
    if cfg.checkpoint is not None:
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        from medscope_gym.agents.recipe.perception import policy_system_prompt

        processor = AutoProcessor.from_pretrained(cfg.checkpoint)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(cfg.checkpoint)
        system_prompt = policy_system_prompt(cfg.checkpoint)
    else:
        from medscope_gym.agents.vlm.tiny import (
            TinyModelConfig,
            build_model,
            build_processor,
            tiny_policy_config,
        )

        tiny = TinyModelConfig(**{**cfg.model, "seed": cfg.seed})
        processor = build_processor(tiny)
        model = build_model(processor.tokenizer, tiny)
        system_prompt = tiny_policy_config().system_prompt
    result = {"config": cfg.to_dict(), **train_perception(model, processor, cfg, system_prompt=system_prompt)}
    if cfg.save is not None:
        from medscope_gym.agents.recipe.perception import save_perception_model

        save_perception_model(model, processor, cfg.checkpoint, cfg.save, tiny)
    return result
