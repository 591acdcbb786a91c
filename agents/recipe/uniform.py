"""The uniform-frames baseline's policy: scripted crops that together spread frames evenly over the
whole video, then the model answers.

A model imitates the turns it was trained on, so the evenly spread frames have to arrive where its
answer turn comes. The recipe's uniform-frames model, trained on
:class:`~medscope_gym.agents.uniform_frames.UniformReference`, answers after the same scripted crops;
a model trained on the search reference answers after its *second* crop (coarse, then close), so
for it the baseline scripts two crops there, the last one worded as the reference's close crop
(docs/agents.md, "Testbed recipe").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medscope_gym.agents.uniform_frames import interleaved_crops, uniform_crop_calls
from medscope_gym.agents.vlm.policy import HFVLMPolicy, TokenRecordingPolicy, reference_turn
from medscope_gym.suite import Sample

__all__ = ["UniformThenModel", "interleaved_crops"]


class UniformThenModel(TokenRecordingPolicy):
    """Turns 1..``crops``: scripted ``crop_video`` calls (:func:`interleaved_crops`); later turns: the model.

    The env caps each crop at the frame count the caller chose (``runner.uniform_frames_baseline``) and
    allows no further tool call, so the model's next turn has to answer from those frames. With
    ``crops`` > 1 the last scripted crop is worded as the search reference's close crop ("I look
    closely at ..."), after which a model trained on that reference answers.
    """

    name = "uniform_then_model"

    def __init__(self, model: HFVLMPolicy, crops: int = 1, per_crop: int = 16) -> None:
        super().__init__(model.encoder)
        self.model = model
        self.crops = crops
        self.per_crop = per_crop
        self._scripted: dict[int, list[str]] = {}

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        super().begin(slot, obs, info, sample)
        self._scripted[slot] = uniform_crop_calls(float(info["duration"]), self.crops, self.per_crop)

    def _produce(self, slots: Sequence[int], observations, infos):
        out: list[Any] = [None] * len(slots)
        for i, slot in enumerate(slots):
            scripted = self._scripted.get(slot)
            if scripted:
                out[i] = reference_turn(self.encoder, scripted.pop(0))
        rows = [i for i in range(len(slots)) if out[i] is None]
        if rows:
            generated = self.model.generate_turns(
                [self._slots[slots[i]].token_ids for i in rows], [self._slots[slots[i]].vision for i in rows]
            )
            for i, turn in zip(rows, generated):
                out[i] = turn
        return out
