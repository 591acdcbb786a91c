"""Sampling settings and the log-probabilities they define (behaviour and learner side alike).

The behaviour log-prob of a sampled token is the log-softmax of the temperature-scaled logits, with the
tokens the policy may never emit (vision placeholders, ``<|im_start|>``) masked out, evaluated at the
token. A learner (GA-GRPO) must score tokens with :func:`token_logprobs` and the trajectory's recorded
:class:`SamplingConfig` so that its ratios compare like with like. Top-p / top-k truncation, when
enabled, is not part of the recorded log-probs (the common choice for PPO-style ratios).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SamplingConfig", "token_logprobs"]


@dataclass
class SamplingConfig:
    """Generation settings of one rollout; recorded in every trajectory."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding (log-probs are then taken at temperature 1)."""
    top_p: float = 1.0
    """Nucleus sampling mass (1.0: off)."""
    top_k: int = 0
    """Keep the k most likely tokens (0: off)."""
    max_new_tokens: int = 384
    """Longest assistant turn in tokens; a turn cut here is sent to the env as is (and is malformed)."""
    stop_tokens: tuple[str, ...] = ("</tool_call>", "</answer>", "<|im_end|>", "<|endoftext|>")
    """Generation ends at the first of these (kept in the turn's tokens and text)."""
    suppressed_tokens: tuple[str, ...] = (
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
        "<|im_start|>",
    )
    """Tokens the policy may never emit: they would corrupt the vision layout of the sequence."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes recorded with the trajectory (e.g. the seed)."""

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingConfig:
        data = dict(data)
        for key in ("stop_tokens", "suppressed_tokens"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def token_logprobs(logits, tokens, temperature: float, suppressed_ids=()):
    """Log-prob of ``tokens`` under ``logits`` (``(..., V)`` and ``(...)``), temperature-scaled, float32.

    ``temperature`` <= 0 (greedy) scores at temperature 1. ``suppressed_ids`` get probability 0.
    """
    import torch

    scaled = logits.float()
    if temperature > 0:
        scaled = scaled / temperature
    if len(suppressed_ids):
        scaled = scaled.clone()
        scaled[..., list(suppressed_ids)] = float("-inf")
    logp = torch.log_softmax(scaled, dim=-1)
    return logp.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
