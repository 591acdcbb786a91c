"""On-policy recovery data: episodes the model opens itself and the reference oracle finishes.

Behaviour cloning on flawless episodes leaves a small model stranded once it makes its first real
mistake: its own garbled turn and the env's error message are unlike anything in the SFT data, and
every later turn degrades. :class:`~medscope_gym.agents.sft.trainer.RecoveringOracle` injects hand-picked
mistakes;
this module collects the model's own. In each episode the model (sampling as configured) plays the
first 1..``max_model_turns`` turns, then the oracle takes over from whatever state the env is in.
The model's turns stay in the context but are not imitated (``TurnRecord.imitate = False``), so SFT
on these episodes teaches the expert's next action in states the model itself reaches: the data
aggregation idea of DAgger (Ross, Gordon and Bagnell, 2011), one round per SFT run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.vlm.policy import HFVLMPolicy, TokenRecordingPolicy, reference_turn
from medscope_gym.suite import Sample

__all__ = ["ModelThenReference"]


class ModelThenReference(TokenRecordingPolicy):
    """The model plays each episode's opening turns, a text reference (the oracle) the rest.

    The number of model turns is drawn per episode, uniformly from 1..``max_model_turns`` (seeded).
    The reference keeps its own turn count, so it plays its usual script (crop, frame, answer) right
    after the model's turns; keep ``max_model_turns`` + that script within the env's ``max_turns``.
    An episode the model ends itself (it answered) holds no imitated turn; callers drop those.
    """

    name = "model_then_reference"
    uses_ground_truth = True

    def __init__(
        self, model: HFVLMPolicy, reference: Policy, max_model_turns: int = 2, seed: int = 0
    ) -> None:
        if max_model_turns < 1:
            raise ValueError(f"max_model_turns must be >= 1, got {max_model_turns}")
        super().__init__(model.encoder)
        self.model = model
        self.reference = reference
        self.max_model_turns = max_model_turns
        self.rng = np.random.default_rng(seed)
        self._model_turns_left: dict[int, int] = {}

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        super().begin(slot, obs, info, sample)
        self.reference.begin(slot, obs, info, sample)
        self._model_turns_left[slot] = int(self.rng.integers(1, self.max_model_turns + 1))

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        by_model = {slot: self._model_turns_left[slot] > 0 for slot in slots}
        texts = super().act(slots, observations, infos)
        for slot in slots:
            self._slots[slot].turns[-1].imitate = not by_model[slot]
            if by_model[slot]:
                self._model_turns_left[slot] -= 1
        return texts

    def _produce(self, slots, observations, infos):
        out: list[Any] = [None] * len(slots)
        model_rows = [i for i, slot in enumerate(slots) if self._model_turns_left[slot] > 0]
        if model_rows:
            generated = self.model.generate_turns(
                [self._slots[slots[i]].token_ids for i in model_rows],
                [self._slots[slots[i]].vision for i in model_rows],
            )
            for i, turn in zip(model_rows, generated):
                out[i] = turn
        ref_rows = [i for i in range(len(slots)) if out[i] is None]
        if ref_rows:
            texts = self.reference.act(
                [slots[i] for i in ref_rows],
                [observations[i] for i in ref_rows],
                [infos[i] for i in ref_rows],
            )
            for i, text in zip(ref_rows, texts):
                out[i] = reference_turn(self.encoder, text)
        return out
