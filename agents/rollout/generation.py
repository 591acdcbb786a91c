"""The generation interface of the rollout engine: one turn per running episode, token in, token out.

A token-recording policy (:class:`medscope_gym.agents.vlm.policy.TokenRecordingPolicy`) keeps one running
token sequence per slot and asks a :class:`TurnGenerator` for the next assistant turn of a batch of slots.
Each :class:`TurnRequest` carries the whole episode so far, as token ids (chat-template deltas with the
vision placeholders expanded, and the ids sampled in earlier turns, exactly as sampled) plus its vision
inputs chunk by chunk: both the processed tensors (for an in-process model) and the frames (for a server
that takes images and videos as multimodal data). A backend may keep state per slot between turns (the
KV cache of :class:`medscope_gym.agents.vlm.generation.CachedGenerator`) or be stateless and rely on its
own prefix caching (a serving engine such as vLLM or SGLang: prompt token ids + multimodal data in,
sampled token ids + their log-probs out); :meth:`TurnGenerator.release` tells it an episode ended.

Implementations in this project: :class:`~medscope_gym.agents.vlm.generation.FullContextGenerator`
(``model.generate`` over each whole context, every turn) and
:class:`~medscope_gym.agents.vlm.generation.CachedGenerator` (per-episode KV cache, new tokens only).
Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from medscope_gym.agents.rollout.trajectory import MediaInputs

__all__ = ["TurnGenerator", "TurnOutput", "TurnRequest"]


@dataclass
class TurnRequest:
    """The next turn of one running episode: its whole token sequence so far and its vision inputs."""

    slot: int
    """The episode's slot (a backend's per-episode state is keyed by it until :meth:`release`)."""
    token_ids: Sequence[int]
    """Every token of the episode so far, ending with the newest observation chunk."""
    chunk_starts: Sequence[int]
    """Offset in ``token_ids`` of each observation chunk (one per chunk of ``vision``/``media``)."""
    vision: Sequence[dict[str, Any]]
    """Per chunk, the processor outputs of its frames (``pixel_values_videos``, ``video_grid_thw``, ...;
    empty for a text-only chunk). Chunks of identical observations may be the same object (shared)."""
    media: Sequence[MediaInputs]
    """Per chunk, its frames as shown to the model (for a backend that runs its own processor)."""


@dataclass
class TurnOutput:
    """One generated turn: the sampled ids (ending at the stop token, if any) and their log-probs."""

    token_ids: list[int]
    logprobs: list[float]
    """Behaviour log-prob of each sampled id (see :func:`medscope_gym.agents.vlm.sampling.token_logprobs`)."""
    finish: str
    """"stop" (ended on a stop token) or "length" (cut at the turn's token cap)."""


@runtime_checkable
class TurnGenerator(Protocol):
    """Generates the next turn of a batch of episodes (see the module docstring)."""

    def generate(self, requests: Sequence[TurnRequest]) -> list[TurnOutput]:
        """One turn for each request, in request order."""

    def release(self, slot: int) -> None:
        """The episode in ``slot`` ended (or is replaced): drop any state kept for it."""
