"""The SFT cold-start run configuration (``medscope train sft``; docs/agents.md lists the fields).

It follows the project's config convention (:mod:`medscope_gym.config`): a typed dataclass with a
docstring per field, YAML files with unknown fields rejected, and command-line flags derived from the
fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from medscope_gym.agents.scripted import SearchStyle
from medscope_gym.agents.training.models import LORA_TARGETS
from medscope_gym.agents.vlm.policy import VLMPolicyConfig
from medscope_gym.config import (
    Config,
    check,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from medscope_gym.errors import ConfigError

__all__ = ["REFERENCES", "SFTConfig"]

#: The reference policies SFT imitates (``SFTConfig.reference``).
REFERENCES: tuple[str, ...] = ("oracle", "search", "answer_only", "uniform")


@dataclass
class SFTConfig(Config):
    """Settings of one SFT run (``medscope train sft``)."""

    RENAMED: ClassVar[dict[str, str]] = {"data": "suite", "split": "train_split", "lr": "learning_rate"}

    model: str
    """Checkpoint folder to start from (``from_pretrained``)."""
    out: str
    """Run folder: data/, checkpoint-N/, final/, metrics.jsonl, loss.png, config.json."""
    suite: str = "builtin:synthsurg-small"
    """Suite to build reference trajectories from: a folder or ``builtin:NAME``."""
    train_split: str = "train"
    """Suite split the reference trajectories come from."""
    repeats: int = 1
    """Reference rollouts per sample (distinct env seeds)."""
    recovery_rate: float = 0.0
    """Share of reference episodes that open with a deliberate, non-imitated mistake the oracle then
    recovers from (:class:`~medscope_gym.agents.sft.trainer.RecoveringOracle`)."""
    evidence_jitter: float = 0.0
    """Seconds (at most) by which the oracle widens each evidence window per rollout (varied numbers)."""
    decimals: int | None = None
    """Decimals of every number the reference writes (None: exact ground truth). 1 gives the tiny model
    one number format to learn (``27.5``), instead of annotation floats (``29.84``, ``63.975``)."""
    crop_to_preview: bool = False
    """The oracle crops between the preview frames around the evidence (what an agent that saw only the
    preview can ask for) instead of the evidence's own seconds."""
    reference: str = "oracle"
    """Reference policy: "oracle" (crop the evidence, get_frame, answer), "search" (list the marked
    preview frames, crop the named stretch or search them in order, crop the evidence closely, answer:
    :class:`~medscope_gym.agents.scripted.SearchingOracle`, every choice derivable from what it was
    shown), "answer_only" (the correct answer right after the preview, no tool call: the answer-only
    model of ``medscope recipe``) or "uniform" (scripted crops of evenly spread frames, not imitated,
    then those frames listed and the correct answer: the recipe's uniform-frames model,
    :class:`~medscope_gym.agents.uniform_frames.UniformReference`)."""
    uniform_crops: int = 1
    """Scripted crops of the "uniform" reference; their frames interleave into one even grid."""
    uniform_frames: int = 16
    """Frames of each scripted crop of the "uniform" reference (the env caps each crop at this many,
    and the policy is shown them all)."""
    search: dict[str, Any] = field(default_factory=dict)
    """:class:`~medscope_gym.agents.scripted.SearchStyle` fields of the "search" reference (how it
    writes the close crop and the answer after a crop listing; empty: its original script), e.g.
    ``{"close_from": "first", "choice_text": true}``."""
    on_policy_repeats: int = 0
    """Extra episodes per sample that the start model (``model``) opens itself for 1..``on_policy_turns``
    turns before the oracle takes over; only the oracle's turns are imitated (DAgger-style recovery
    from the model's own mistakes, :mod:`medscope_gym.agents.sft.dagger`). Use it on a checkpoint that already
    follows the protocol (a second SFT round)."""
    on_policy_turns: int = 2
    """Most opening turns the model plays in an on-policy episode (the oracle then needs 3 more)."""
    on_policy_temperature: float | None = None
    """Sampling temperature of the model's opening turns (None: the checkpoint's own setting)."""
    limit: int | None = None
    """Use only the first ``limit`` samples of the split (quick runs, tests)."""
    max_steps: int = 1000
    """Optimizer steps (each on ``batch_size`` x ``grad_accum`` trajectories)."""
    batch_size: int = 1
    """Trajectories per forward/backward."""
    grad_accum: int = 1
    """Forward/backward passes accumulated per optimizer step."""
    learning_rate: float = 1e-4
    """Peak learning rate (AdamW); linear warmup then cosine decay to 10%."""
    warmup_steps: int = 20
    """Linear warmup of the learning rate, in optimizer steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0: off)."""
    lora: bool = False
    """Train LoRA adapters on the language model's attention/MLP projections instead of all weights
    (merged into final/)."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA path."""
    lora_targets: tuple[str, ...] = LORA_TARGETS
    """Language-model projections that get adapters."""
    freeze_vision: bool = False
    """Keep the vision tower fixed (full fine-tuning only)."""
    save_every: int = 250
    """Checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Older checkpoints beyond this many are deleted."""
    resume: bool = True
    """Continue from the latest checkpoint-N in ``out`` when there is one."""
    seed: int = 0
    """Seed of the reference rollouts, the data order and the initialisation of new weights."""
    device: str = "auto"
    """"auto": CUDA when available (bf16 autocast), else CPU (fp32); or cpu | cuda | cuda:N."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    policy: VLMPolicyConfig | None = None
    """Frame budget / system prompt; None: the model folder's medscope_policy.json, else defaults."""
    log_every: int = 10
    """Print the loss every this many steps."""
    progress: bool = True
    """Show progress bars (reference episodes, optimizer steps, the held-out evaluation)."""
    eval_split: str = "val"
    """Split of the held-out evaluation at the end."""
    eval_limit: int = 20
    """Questions of ``eval_split`` the final model plays greedily at the end; their well_formed rate and
    accuracy are printed, the episodes saved to ``out/eval`` (0: no evaluation)."""

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        check(
            self,
            positive_int,
            "repeats",
            "on_policy_turns",
            "max_steps",
            "batch_size",
            "grad_accum",
            "lora_r",
            "lora_alpha",
            "save_every",
            "log_every",
            "uniform_crops",
            "uniform_frames",
        )
        check(self, non_negative_int, "on_policy_repeats", "warmup_steps", "keep_checkpoints", "eval_limit")
        check(self, non_negative_int, "decimals", "limit", optional=True)
        check(self, positive_int, "threads", optional=True)
        check(self, probability, "recovery_rate", "lora_dropout")
        check(self, non_negative_float, "evidence_jitter", "weight_decay", "max_grad_norm")
        check(self, non_negative_float, "on_policy_temperature", optional=True)
        check(self, positive_float, "learning_rate")
        if self.reference not in REFERENCES:
            raise ConfigError(f"reference must be one of {REFERENCES}, got {self.reference!r}")
        self.style  # noqa: B018 (checks the search fields early)

    @property
    def style(self) -> SearchStyle:
        """``search`` as a :class:`~medscope_gym.agents.scripted.SearchStyle`."""
        return SearchStyle.from_dict(self.search, "SFTConfig.search")
