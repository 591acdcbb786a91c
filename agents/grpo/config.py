"""The GA-GRPO run configuration: one typed dataclass, loaded from YAML, every default documented.

It follows the project's config convention (:mod:`medscope_gym.config`; docs/ga-grpo.md lists the
fields). Defaults follow the paper's reference code: G = 8 rollouts per question, 8 questions per step
(batch 64 trajectories), advantage = reward − group mean without std normalisation, binary evidence
modulation (×1.2 / ×0.8), PPO clip ε = 0.2 with token-mean over the model's own tokens, no KL term,
lr 1e-6 with LoRA r64/α128. A CPU run of the tiny model needs other values (see
``configs/grpo_tiny.yaml``): a tiny model learns nothing at lr 1e-6 in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from medscope_gym.agents.training.models import LORA_TARGETS
from medscope_gym.config import (
    Config,
    check,
    non_negative_float,
    one_of,
    positive_float,
    positive_int,
)
from medscope_gym.errors import ConfigError
from medscope_gym.rewards import RewardSpec, parse_reward

__all__ = ["MODULATION_MODES", "GRPOConfig"]

MODULATION_MODES = ("binary", "continuous", "off")


@dataclass
class GRPOConfig(Config):
    """Settings of one GA-GRPO run (``medscope train grpo --config FILE``; docs/ga-grpo.md)."""

    RENAMED: ClassVar[dict[str, str]] = {"lr": "learning_rate", "reward_preset": "reward"}

    model: str
    """Checkpoint folder to start from (usually the SFT cold start's ``final/``)."""
    out: str
    """Run folder: checkpoint-N/, final/, metrics.jsonl, tb/, curves.png, config.json, eval/."""

    # ---- data and env
    suite: str = "builtin:synthsurg-small"
    """Suite folder or ``builtin:NAME``."""
    train_split: str = "train"
    """Questions the policy is trained on."""
    eval_splits: tuple[str, ...] = ("val", "test")
    """Held-out questions for the evaluations during and after training."""
    eval_suite: str | None = None
    """Suite the held-out questions come from (None: ``suite``). With a separate suite, GA-GRPO can train
    on questions (and videos) the SFT cold start never saw and still be scored on the usual held-out set."""
    reward: RewardSpec = "paper"
    """Env reward (docs/rewards.md): a name (paper, no_evidence, conditional_evidence, no_iou_bonus, graded,
    monotone) or a mapping of RewardConfig fields, e.g. {preset: paper, miss_scoring: monotone}."""
    max_turns: int = 5
    """Env turn budget per episode."""
    max_tool_calls: int = 5
    """Env tool-call budget per episode."""
    num_envs: int = 16
    """Parallel episodes per process (one batched generate per turn)."""

    # ---- group sampling
    questions_per_step: int = 8
    """B: questions per optimisation step (across all processes; groups are never split)."""
    group_size: int = 8
    """G: rollouts per question from identical resets."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (the learner scores tokens at the same temperature)."""
    top_p: float = 1.0
    """Nucleus sampling of the rollouts (1.0: off; truncation is not part of the recorded log-probs)."""
    max_new_tokens: int | None = None
    """Longest assistant turn; None: the checkpoint's medscope_policy.json value."""

    # ---- advantages
    normalise_std: bool = False
    """Divide each group's advantages by its reward std (+ ``std_eps``); the paper does not."""
    std_eps: float = 1e-4
    """Added to the std before dividing (zero-variance groups then keep advantage 0, never NaN)."""
    modulation: str = "binary"
    """Evidence-modulated advantage: "binary", "continuous" or "off" (docs/ga-grpo.md)."""
    modulation_up: float = 1.2
    """Binary mode: factor for (A ≥ 0 and evidence > 0) and for (A < 0 and evidence = 0)."""
    modulation_down: float = 0.8
    """Binary mode: factor for (A ≥ 0 and evidence = 0) and for (A < 0 and evidence > 0)."""
    modulation_scale: float = 0.2
    """Continuous mode: A ≥ 0 → ×max(floor, 1 + scale·clip(f, −1, 1)); A < 0 → ×max(floor, 1 − scale·…)."""
    modulation_floor: float = 0.1
    """Continuous mode: smallest factor."""
    drop_zero_variance: bool = True
    """Leave groups whose rewards are all equal (advantage 0 everywhere) out of the update (logged)."""

    # ---- optimisation
    max_steps: int = 200
    """Optimisation steps (each: one batch of B×G rollouts, then ``update_epochs`` passes over it)."""
    update_epochs: int = 1
    """Passes over each batch of rollouts."""
    minibatch_size: int = 16
    """Trajectories per optimizer update (per process); the batch is shuffled and split into these."""
    micro_batch_size: int = 4
    """Trajectories per forward/backward (gradient accumulation inside a minibatch)."""
    learning_rate: float = 1e-6
    """AdamW learning rate (constant after ``warmup_steps``)."""
    warmup_steps: int = 0
    """Linear warmup of the learning rate, in optimizer updates."""
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.99)
    clip_eps: float = 0.2
    """PPO ratio clip ε (lower bound 1 − ε)."""
    clip_eps_high: float | None = None
    """Upper ratio bound 1 + ε_high (None: ε, symmetric)."""
    kl_coef: float = 0.0
    """Weight of the k3 KL estimate against the frozen start model (0: off, the paper's choice)."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0: off)."""

    # ---- model and devices
    lora: bool = True
    """Train LoRA adapters (peft) on the language model; the KL reference is then the adapter-off base."""
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.0
    """0 keeps training-time log-probs comparable with sampling-time ones."""
    lora_targets: tuple[str, ...] = LORA_TARGETS
    freeze_vision: bool = True
    """Keep the vision tower fixed (full fine-tuning only; LoRA never touches it)."""
    gradient_checkpointing: bool | None = None
    """Recompute activations in the backward pass; None: on for CUDA, off on CPU."""
    device: str = "auto"
    """"auto": CUDA when available (bf16 autocast), else CPU (fp32). Multi-GPU: launch with accelerate."""

    # ---- evaluation, logging, checkpoints
    eval_every: int = 10
    """Held-out evaluation every this many steps (and before the first and after the last)."""
    eval_at_start: bool = True
    """Evaluate the start checkpoint before the first step (the ablation does it once for all runs)."""
    eval_repeats: int = 1
    """Episodes per held-out question."""
    eval_temperature: float = 0.0
    """Sampling temperature of the held-out evaluation (0: greedy)."""
    eval_limit: int | None = None
    """Evaluate on the first N held-out questions only."""
    save_every: int = 25
    """Checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    resume: bool = True
    """Continue from the latest checkpoint-N in ``out`` (exact: model, optimizer, RNG, data position)."""
    save_rollouts: bool = False
    """Keep every step's trajectories under ``out/rollouts/step-N`` (JSONL + frames)."""
    save_eval: bool = True
    """Keep each held-out evaluation's trajectories (with the frames the model was fed) under
    ``out/eval/step-N``, the input of ``medscope view`` (docs/viewer.md)."""
    tensorboard: bool = True
    """Also write TensorBoard events to ``out/tb`` (needs the ``tensorboard`` package)."""
    seed: int = 0
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    progress: bool = True

    def __post_init__(self) -> None:
        self.eval_splits = tuple(self.eval_splits)
        self.lora_targets = tuple(self.lora_targets)
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        parse_reward(self.reward)
        check(self, one_of(MODULATION_MODES), "modulation")
        check(
            self,
            positive_int,
            "questions_per_step",
            "group_size",
            "max_steps",
            "update_epochs",
            "minibatch_size",
            "micro_batch_size",
            "num_envs",
            "eval_every",
            "save_every",
            "eval_repeats",
        )
        if self.group_size < 2:
            raise ConfigError("group_size must be >= 2: a group of one has no relative advantage")
        check(self, positive_float, "learning_rate", "clip_eps", "std_eps", "temperature")
        check(self, non_negative_float, "kl_coef", "max_grad_norm")
