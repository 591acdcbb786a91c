"""pytest-benchmark view of ``python -m benchmarks.perception_step``: a Stage I listing-phase step as one
padded batch (the baseline) and as length-sorted micro-batches, on the recipe_micro model; and the
report's fp32 against bf16 autocast."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

MICRO = Path(__file__).resolve().parents[1] / "configs" / "recipe_micro.yaml"


@pytest.fixture(scope="module")
def step_inputs():
    import torch

    from benchmarks.perception_step import listing_batches
    from medscope_gym.agents.recipe.config import RecipeConfig
    from medscope_gym.agents.recipe.perception import ExampleBatcher
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_model, build_processor

    torch.set_num_threads(1)
    micro = RecipeConfig.from_yaml(MICRO)
    cfg = RecipeConfig.from_yaml(MICRO, perception={**micro.perception, "batch_size": 8})
    tiny = TinyModelConfig(**cfg.model)
    processor = build_processor(tiny)
    return (
        build_model(processor.tokenizer, tiny).train(),
        ExampleBatcher(processor),
        listing_batches(cfg, 1)[0],
    )


@pytest.mark.parametrize("micro", [1, 2, 4])
def test_listing_step(benchmark, step_inputs, micro):
    from medscope_gym.agents.recipe.perception import backward_step

    model, batcher, batch = step_inputs
    benchmark.group = "Stage I listing-phase step (recipe_micro model)"
    loss = benchmark.pedantic(backward_step, (model, batcher, batch, micro), rounds=2)
    assert loss > 0


def test_report_rows():
    from benchmarks.perception_step import compare_micro_batches

    result = compare_micro_batches(MICRO, steps=1, settings=(1, 2))
    assert [row["micro_batches"] for row in result["rows"]] == [1, 2]
    assert result["rows"][0]["ratio"] == 1.0 and 0.0 < result["padding"] < 1.0
    assert result["rows"][1]["max_grad_diff"] < 1e-4  # the same gradient


def test_precision_rows():
    from benchmarks.perception_step import compare_precision

    result = compare_precision(MICRO, steps=2)
    assert [row["precision"] for row in result["rows"]] == ["fp32", "bf16 autocast"]
    assert result["rows"][0]["ratio"] == 1.0 and result["rows"][1]["step_s"] > 0.0
    # bf16 rounds the same computation: the losses differ, but by far less than the loss itself
    assert 0.0 < result["max_loss_diff"] < 0.1
