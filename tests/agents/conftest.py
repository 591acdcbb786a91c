"""Fixtures shared by the model-based agent tests (VLM, GA-GRPO): one tiny checkpoint and suite."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def one_thread():
    """The tiny model is faster on one thread than on two contended ones."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, one_thread):
    """A tiny Qwen2.5-VL checkpoint folder (random weights), built once."""
    pytest.importorskip("transformers")
    from medscope_gym.agents.vlm.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def suite(_isolated_cache):
    """The built-in synthetic suite (built into the session cache)."""
    from medscope_gym.suite import Suite

    return Suite.from_spec("builtin:synthsurg-small")


@pytest.fixture(scope="session")
def tiny_policy(tiny_dir):
    """An HFVLMPolicy on the tiny checkpoint with short turns (untrained: it writes noise, fast)."""
    from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig

    config = VLMPolicyConfig.load(tiny_dir)
    config.sampling.max_new_tokens = 24
    config.seed = 0
    return HFVLMPolicy.from_pretrained(tiny_dir, config=config)
