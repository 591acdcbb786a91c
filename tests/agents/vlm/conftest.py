"""Fixtures of the VLM agent tests: one tiny checkpoint and one env suite for the whole session."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the VLM agent needs the [vlm] extra (torch, transformers)")


@pytest.fixture(scope="session", autouse=True)
def _one_thread(one_thread):
    """Every VLM test runs the tiny model on one thread."""


@pytest.fixture(scope="session")
def tiny_policy(tiny_dir):
    """An HFVLMPolicy on the tiny checkpoint with short turns (untrained: it writes noise, fast)."""
    from agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig

    config = VLMPolicyConfig.load(tiny_dir)
    config.sampling.max_new_tokens = 24
    config.seed = 0
    return HFVLMPolicy.from_pretrained(tiny_dir, config=config)
