"""pytest-benchmark view of ``python -m benchmarks.rollout_reuse``: rollouts with and without KV-cache reuse.

A plain ``pytest benchmarks/test_rollout_reuse.py`` plays a few 5-turn episodes of the tiny model both
ways (a smoke check that both paths run and generate the same greedy tokens); ``--benchmark-enable``
times the rounds, grouped so the two paths of one model sit side by side. The numbers of
docs/results.md come from ``python -m benchmarks.rollout_reuse`` (tiny and mid-size model, GA-GRPO step).
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

SETTINGS = dict(preview_frames=32, crop_frames=8, max_new_tokens=8, episodes=2, num_envs=2, seed=0)


@pytest.fixture(scope="module")
def tiny():
    import torch

    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_model, build_processor

    torch.set_num_threads(1)
    cfg = TinyModelConfig()
    processor = build_processor(cfg)
    return build_model(processor.tokenizer, cfg), processor, cfg.max_pixels


def test_rollout_reuse_tiny(benchmark, tiny):
    from benchmarks.rollout_reuse import compare_rollouts

    model, processor, max_pixels = tiny
    benchmark.group = "rollout, tiny model, 5-turn episodes"
    result = benchmark.pedantic(
        compare_rollouts, (model, processor), dict(SETTINGS, max_pixels=max_pixels), rounds=1
    )
    benchmark.extra_info.update(ratio=result["ratio"], token_identical=result["token_identical"])
    assert result["token_identical"]
    assert result["reuse"]["turns_per_episode"] == result["full"]["turns_per_episode"] == 5
