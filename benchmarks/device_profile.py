"""``medscope profile``: what rollouts and one GA-GRPO step cost for a real-size architecture on a device.

No weights can be downloaded, but cost depends on the architecture, not on the weights: the model is
built from the published sizes of Qwen2.5-VL-3B-Instruct with random weights (on the device, in bf16),
saved, and loaded back through ``from_pretrained`` like any checkpoint. Then, on the built-in suite:

1. a rollout of ``episodes`` episodes with :class:`~medscope_gym.agents.vlm.policy.HFVLMPolicy` (batched
   sampling,
   real frame budget): generated tokens/s and peak device memory;
   then the same episodes greedy, with and without KV-cache reuse across turns (``reuse_cache``), side
   by side: their wall times and the reuse ratio (full recompute / reuse);
2. one GA-GRPO step (LoRA r64/α128, bf16, gradient checkpointing on CUDA) over ``episodes`` rollouts:
   step time, rollout and training tokens/s, peak device memory.

``--arch tiny --device cpu`` runs the same code in seconds (the tests do). Measurement code of the
source checkout (see :mod:`benchmarks`); ``medscope profile`` loads it from there. torch is imported
when a measurement runs, not by importing this module.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from medscope_gym.agents.grpo.config import GRPOConfig
from medscope_gym.agents.grpo.trainer import train_grpo
from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
from medscope_gym.agents.training.metrics import read_metrics
from medscope_gym.agents.vlm.encoding import FrameConfig
from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig, resolve_device
from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_model, build_processor, tiny_policy_config
from medscope_gym.atomic import atomic_directory, atomic_write_text
from medscope_gym.config import Config, check, one_of, positive_int
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.errors import ConfigError
from medscope_gym.suite import Suite

__all__ = ["ARCHITECTURES", "ProfileConfig", "build_checkpoint", "profile"]

#: Sizes of published checkpoints (their config.json), and the offline tiny model.
ARCHITECTURES: dict[str, TinyModelConfig] = {
    "tiny": TinyModelConfig(),
    "qwen2.5-vl-3b": TinyModelConfig(
        text_hidden=2048,
        text_layers=36,
        text_heads=16,
        text_kv_heads=2,
        text_intermediate=11008,
        vision_depth=32,
        vision_hidden=1280,
        vision_heads=16,
        vision_intermediate=3420,
        vision_window=112,
        vision_full_attention=(7, 15, 23, 31),
        mrope_section=(16, 24, 24),
        padded_vocab=151936,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        max_pixels=224 * 224,
        max_position_embeddings=128000,
    ),
}


def _peak_memory_gib(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _reuse_ratio(policy: HFVLMPolicy, config: VLMPolicyConfig, make_envs, ids, dev) -> dict[str, Any]:
    """Greedy rollouts of the same episodes with and without KV-cache reuse: wall times and their ratio."""
    import torch

    seconds, sequences = {}, {}
    for reuse in (True, False):
        greedy = VLMPolicyConfig.from_dict(config.to_dict())
        greedy.sampling.temperature, greedy.reuse_cache = 0.0, reuse
        player = HFVLMPolicy(policy.model, policy.processor, greedy)
        envs = make_envs()
        try:
            t0 = time.perf_counter()
            trajectories = rollout(player, envs, sample_requests(ids))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds[reuse] = time.perf_counter() - t0
        finally:
            envs.close()
        sequences[reuse] = [t.input_ids() for t in trajectories]
    return {
        "rollout_greedy_reuse_s": seconds[True],
        "rollout_greedy_full_s": seconds[False],
        "rollout_reuse_ratio": seconds[False] / seconds[True],
        "rollout_reuse_token_identical": sequences[True] == sequences[False],
    }


def build_checkpoint(arch: str, out: str | Path, device: str = "cpu") -> Path:
    """Write a random-weight checkpoint of ``arch`` (bf16 on CUDA) with the offline tokenizer/processor."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    cfg = ARCHITECTURES[arch]
    processor = build_processor(cfg)
    on_gpu = device.startswith("cuda")
    model = build_model(processor.tokenizer, cfg, device=device, dtype="bfloat16" if on_gpu else None)
    policy = tiny_policy_config() if arch == "tiny" else VLMPolicyConfig(frames=FrameConfig())
    with atomic_directory(Path(out)) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "medscope_tiny.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        policy.save(tmp)
    del model
    return Path(out)


@dataclass
class ProfileConfig(Config):
    """Settings of ``medscope profile`` (the arguments of :func:`profile`)."""

    arch: str = "qwen2.5-vl-3b"
    """Architecture built with random weights: qwen2.5-vl-3b or tiny."""
    out: str = "runs/profile"
    """Folder for the built model and profile.json."""
    device: str = "auto"
    """"auto": CUDA when available, else CPU; or cpu | cuda | cuda:N."""
    suite: str = "builtin:synthsurg-small"
    """Suite folder or ``builtin:NAME`` the episodes come from."""
    episodes: int = 8
    """Episodes of the measured rollout (and rollouts of the measured GA-GRPO step)."""
    group_size: int = 4
    """G of the measured GA-GRPO step."""
    max_new_tokens: int = 128
    """Longest assistant turn in tokens."""

    def __post_init__(self) -> None:
        check(self, one_of(ARCHITECTURES), "arch")
        check(self, positive_int, "episodes", "max_new_tokens")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 2:
            raise ConfigError(f"group_size must be an integer >= 2, got {self.group_size!r}")


def profile(
    arch: str = "qwen2.5-vl-3b",
    out: str | Path = "runs/profile",
    *,
    device: str = "auto",
    suite: str = "builtin:synthsurg-small",
    episodes: int = 8,
    group_size: int = 4,
    max_new_tokens: int = 128,
) -> dict[str, Any]:
    """Measure rollout and one GA-GRPO step; returns (and writes to ``out/profile.json``) the numbers."""
    import torch

    dev, _ = resolve_device(device)
    out = Path(out)
    t0 = time.perf_counter()
    ckpt = build_checkpoint(arch, out / "model", str(dev))
    result: dict[str, Any] = {"arch": arch, "device": str(dev), "build_s": time.perf_counter() - t0}
    if dev.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(dev)

    # 1. rollout
    config = VLMPolicyConfig.load(ckpt)
    config.device, config.seed = str(dev), 0
    config.sampling = replace(config.sampling, max_new_tokens=max_new_tokens)
    policy = HFVLMPolicy.from_pretrained(ckpt, config=config)
    params = sum(p.numel() for p in policy.model.parameters())
    loaded = Suite.from_spec(suite)
    ids = [s.id for s in loaded][:episodes]
    envs = make_vector_env(lambda: ClinVideoEnv(loaded), len(ids))
    try:
        _reset_peak(dev)
        t1 = time.perf_counter()
        trajectories = rollout(policy, envs, sample_requests(ids))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        rollout_s = time.perf_counter() - t1
    finally:
        envs.close()
    tokens = sum(len(turn.action_ids) for t in trajectories for turn in t.turns)
    context = max(len(t.input_ids()) for t in trajectories)
    result.update(
        parameters=params,
        rollout_episodes=len(trajectories),
        rollout_s=rollout_s,
        rollout_tokens=tokens,
        rollout_tokens_per_s=tokens / rollout_s,
        rollout_longest_sequence=context,
        rollout_peak_gib=_peak_memory_gib(dev),
    )
    result.update(
        _reuse_ratio(
            policy, config, lambda: make_vector_env(lambda: ClinVideoEnv(loaded), len(ids)), ids, dev
        )
    )
    del policy
    if dev.type == "cuda":
        torch.cuda.empty_cache()

    # 2. one GA-GRPO step (LoRA, bf16 + gradient checkpointing on CUDA)
    cfg = GRPOConfig(
        model=str(ckpt),
        out=str(out / "grpo"),
        suite=suite,
        questions_per_step=max(1, episodes // group_size),
        group_size=group_size,
        num_envs=episodes,
        max_new_tokens=max_new_tokens,
        max_steps=1,
        learning_rate=1e-6,
        minibatch_size=episodes,
        micro_batch_size=1,
        eval_limit=0,
        drop_zero_variance=False,  # measure the update even when every reward of a group is equal
        resume=False,
        device=str(dev),
        progress=False,
        tensorboard=False,
    )
    _reset_peak(dev)
    train_grpo(cfg)
    row = next(r for r in read_metrics(cfg.out) if "perf/step_s" in r)
    result.update(
        grpo_lora=cfg.lora,
        grpo_rollouts=cfg.questions_per_step * cfg.group_size,
        grpo_step_s=row["perf/step_s"],
        grpo_rollout_s=row["perf/rollout_s"],
        grpo_update_s=row["perf/update_s"],
        grpo_gen_tokens_per_s=row["perf/gen_tokens_per_s"],
        grpo_train_tokens_per_s=row["perf/train_tokens_per_s"],
        grpo_peak_gib=_peak_memory_gib(dev),
    )
    atomic_write_text(out / "profile.json", json.dumps(result, indent=2) + "\n")
    return result
