"""The uniform-frames baseline's policy: a scripted whole-video crop, then the model answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medscope_gym.agents.vlm.policy import HFVLMPolicy, TokenRecordingPolicy, reference_turn
from medscope_gym.protocol import format_tool_call
from medscope_gym.suite import Sample

__all__ = ["UniformThenModel"]


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
                text = format_tool_call(
                    "crop_video",
                    {"start_time": 0, "end_time": round(duration, 1)},
                    think="I look at frames spread evenly over the whole video.",
                )
                out[i] = reference_turn(self.encoder, text)
        rows = [i for i in range(len(slots)) if out[i] is None]
        if rows:
            generated = self.model.generate_turns(
                [self._slots[slots[i]].token_ids for i in rows], [self._slots[slots[i]].vision for i in rows]
            )
            for i, turn in zip(rows, generated):
                out[i] = turn
        return out
