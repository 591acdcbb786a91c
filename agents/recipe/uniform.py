"""The uniform-frames baseline's policy: a scripted whole-video crop, then the model answers.

The scripted turn is worded as the search reference's close crop ("I look closely at A-B s, ..."),
the turn after which the reference lists what it sees and answers. A model trained on the reference
answers after that turn; worded as a first crop, the turn led a v17 Stage II model to list the frames
and ask for a close crop the budget no longer allowed, so it never answered (docs/results.md,
"Marked listings").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medscope_gym.agents.scripted import close_look
from medscope_gym.agents.vlm.policy import HFVLMPolicy, TokenRecordingPolicy, reference_turn
from medscope_gym.protocol import format_tool_call
from medscope_gym.suite import Sample

__all__ = ["UNIFORM_LOOK", "UniformThenModel", "uniform_turn"]

UNIFORM_LOOK = "I look at frames spread evenly over the whole video."


def uniform_turn(duration: float) -> str:
    """The scripted turn: ``crop_video(0, duration)``, reasoned as the reference's close crop."""
    end = round(float(duration), 1)
    return format_tool_call(
        "crop_video", {"start_time": 0.0, "end_time": end}, think=close_look(UNIFORM_LOOK, 0.0, end)
    )


class UniformThenModel(TokenRecordingPolicy):
    """Turn 1: ``crop_video(0, duration)`` (scripted, frames spread evenly); later turns: the model.

    How many of the crop's frames the model sees is its own ``frames.max_crop_frames`` (evenly thinned),
    so the caller sets the frame count there (``runner.uniform_frames_baseline``).
    """

    name = "uniform_then_model"

    def __init__(self, model: HFVLMPolicy) -> None:
        super().__init__(model.encoder)
        self.model = model
        self._scripted: dict[int, float] = {}

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        super().begin(slot, obs, info, sample)
        self._scripted[slot] = float(info["duration"])

    def _produce(self, slots: Sequence[int], observations, infos):
        out: list[Any] = [None] * len(slots)
        for i, slot in enumerate(slots):
            duration = self._scripted.pop(slot, None)
            if duration is not None:
                out[i] = reference_turn(self.encoder, uniform_turn(duration))
        rows = [i for i in range(len(slots)) if out[i] is None]
        if rows:
            generated = self.model.generate_turns(
                [self._slots[slots[i]].token_ids for i in rows], [self._slots[slots[i]].vision for i in rows]
            )
            for i, turn in zip(rows, generated):
                out[i] = turn
        return out
