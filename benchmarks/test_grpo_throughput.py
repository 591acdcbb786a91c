"""pytest-benchmark view of the trainer throughput comparison (ours vs TRL's GRPOTrainer).

A plain ``pytest benchmarks/`` runs each side once on the untrained tiny model (a smoke check); the
numbers of docs/results.md come from ``python -m benchmarks.grpo_throughput --model runs/sft/final``
(a model that calls tools, so rollouts are multi-turn). ``--benchmark-enable`` times the rounds.
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

SETTINGS = dict(steps=2, batch_questions=1, group_size=2, max_new_tokens=16, seed=0, max_turns=2)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    from medscope_gym.agents.vlm.tiny import build_tiny_model

    torch.set_num_threads(1)
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


def test_ours(benchmark, tiny_model):
    from benchmarks.grpo_throughput import ours_step_throughput

    benchmark.group = "grpo step"
    result = benchmark.pedantic(
        ours_step_throughput, (tiny_model, "builtin:synthsurg-small"), SETTINGS, rounds=1
    )
    assert result["steps"] == SETTINGS["steps"] and result["seconds_per_step"] > 0


def test_trl(benchmark, tiny_model):
    pytest.importorskip("trl", reason="the TRL side needs the [trl] extra")
    from benchmarks.trl_throughput import trl_step_throughput

    benchmark.group = "grpo step"
    result = benchmark.pedantic(
        trl_step_throughput, (tiny_model, "builtin:synthsurg-small"), SETTINGS, rounds=1
    )
    assert result["steps"] == SETTINGS["steps"]
