"""The uniform-frames baseline's policy: scripted crops that together spread frames evenly over the
whole video, then the model answers.

A model imitates the turns it was trained on, so the evenly spread frames have to arrive where its
answer turn comes: a model trained on the search reference answers after its *second* crop (coarse,
then close), so the baseline scripts two crops there, the last one worded as the reference's close
crop (docs/agents.md, "Testbed recipe").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medscope_gym.agents.scripted import CLOSE_LOOK
from medscope_gym.agents.vlm.policy import HFVLMPolicy, TokenRecordingPolicy, reference_turn
from medscope_gym.chat import time_text
from medscope_gym.protocol import format_tool_call
from medscope_gym.suite import Sample

__all__ = ["UniformThenModel", "interleaved_crops"]

_SPREAD = "I look at frames spread evenly over the whole video."


def interleaved_crops(duration: float, crops: int, per_crop: int) -> list[tuple[float, float]]:
    """``crops`` intervals whose ``per_crop`` evenly spaced frames each (both ends included, as a crop
    thins its frames) interleave into ``crops * per_crop`` frames evenly spread over ``[0, duration]``.

    With h = duration / (crops * per_crop - 1), crop k runs from k·h to duration − (crops − 1 − k)·h:
    its frames fall at k·h, k·h + crops·h, ..., so crop 0 takes every ``crops``-th point of the even
    grid, crop 1 the next, and so on.
    """
    if crops < 1 or per_crop < 1:
        raise ValueError(f"interleaved_crops: crops and per_crop must be >= 1, got {crops}, {per_crop}")
    total = crops * per_crop
    step = duration / (total - 1) if total > 1 else 0.0
    return [(round(k * step, 1), round(duration - (crops - 1 - k) * step, 1)) for k in range(crops)]


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
        windows = interleaved_crops(float(info["duration"]), self.crops, self.per_crop)
        turns = []
        for k, (a, b) in enumerate(windows):
            close = self.crops > 1 and k == len(windows) - 1
            think = (
                f"{CLOSE_LOOK}{time_text(a)}-{time_text(b)} s, the frames around it." if close else _SPREAD
            )
            turns.append(format_tool_call("crop_video", {"start_time": a, "end_time": b}, think=think))
        self._scripted[slot] = turns

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
