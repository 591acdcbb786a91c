"""The uniform-frames reference: frames spread evenly over the whole video, listed, then the answer.

The issue's baseline for "looking where it matters" is a model that sees as many frames as the agent,
at the tools' resolution, but evenly spread instead of chosen. Scoring the visual-CoT model on such
frames is not that baseline: it imitates the turns it was trained on and answers only after a close
crop (docs/results.md, "The uniform-frames baseline"). :class:`UniformReference` is what such a model
is trained on instead, as the answer-only model is trained on answers after the preview: scripted
crops that interleave into one even grid (:func:`interleaved_crops`), then the frames listed as
Stage I lists a crop (each frame's time and the symbol it shows, or "no") and the correct answer.
The crop turns are not imitated: at evaluation they are scripted the same way
(:class:`~medscope_gym.agents.recipe.uniform.UniformThenModel`), so the model learns only to read
evenly spread frames and answer from them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.scripted import CLOSE_LOOK, CROP_LISTING, SearchStyle, option_text, oracle_answer
from medscope_gym.chat import time_text
from medscope_gym.protocol import format_answer, format_tool_call
from medscope_gym.suite import Sample
from medscope_gym.synthetic.testbed import SYMBOL_FREE_CAPTIONS

__all__ = ["SPREAD_LOOK", "UniformReference", "interleaved_crops", "uniform_crop_calls"]

#: The reasoning of a scripted crop of evenly spread frames.
SPREAD_LOOK = "I look at frames spread evenly over the whole video."


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


def uniform_crop_calls(duration: float, crops: int, per_crop: int) -> list[str]:
    """The scripted ``crop_video`` turns of :func:`interleaved_crops`. With ``crops`` > 1 the last one
    is worded as the search reference's close crop ("I look closely at ..."), after which a model
    trained on that reference answers; every other one says the frames are spread evenly."""
    turns = []
    windows = interleaved_crops(duration, crops, per_crop)
    for k, (a, b) in enumerate(windows):
        think = SPREAD_LOOK
        if crops > 1 and k == len(windows) - 1:
            think = f"{CLOSE_LOOK}{time_text(a)}-{time_text(b)} s, the frames around it."
        turns.append(format_tool_call("crop_video", {"start_time": a, "end_time": b}, think=think))
    return turns


class UniformReference(Policy):
    """Scripted evenly spread crops (not imitated), then every frame they showed listed, and the answer.

    The env must cap each crop at ``per_crop`` frames and allow ``crops`` tool calls (the SFT trainer
    sets both for ``reference: uniform``). The answer turn lists the crops' frames in time order as
    Stage I's crop listing does ("The crop frames: 0.0 no; 11.6 a red ring at the centre; ..."; a
    frame shows the caption at its time unless that caption is one of ``symbol_free``), in ``style``
    (its marks), and answers correctly whatever the frames showed: the choice option's text when
    ``style.choice_text``, else its letter; an interval as the ground truth to ``decimals``. Where no
    frame shows the evidence the model learns to guess as well as the questions allow, as the
    answer-only model does without any frame.
    """

    name = "uniform_reference"
    uses_ground_truth = True

    def __init__(
        self,
        crops: int = 1,
        per_crop: int = 16,
        decimals: int | None = None,
        style: SearchStyle | None = None,
        symbol_free: Collection[str] = SYMBOL_FREE_CAPTIONS,
    ) -> None:
        if crops < 1 or per_crop < 1:
            raise ValueError(f"UniformReference: crops and per_crop must be >= 1, got {crops}, {per_crop}")
        self.crops = crops
        self.per_crop = per_crop
        self.decimals = decimals
        self.style = style or SearchStyle()
        self.symbol_free = frozenset(symbol_free)
        self._state: dict[int, dict[str, Any]] = {}

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        sample = self.episode_sample(sample)
        calls = uniform_crop_calls(float(info["duration"]), self.crops, self.per_crop)
        self._state[slot] = {"sample": sample, "calls": calls, "times": [], "scripted": False}

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        return [self._next(slot, obs) for slot, obs in zip(slots, observations)]

    def imitate_last(self, slot: int) -> bool:
        """False after a scripted crop: the model never writes those."""
        return not self._state[slot]["scripted"]

    def _next(self, slot: int, obs: dict[str, Any]) -> str:
        st = self._state[slot]
        if len(st["calls"]) < self.crops:  # the observation holds the frames of the crop just made
            st["times"].extend(float(t) for t in np.asarray(obs.get("video_times", ())).reshape(-1))
        st["scripted"] = bool(st["calls"])
        if st["calls"]:
            return st["calls"].pop(0)
        return self._answer(st["sample"], sorted(set(st["times"])))

    def _answer(self, sample: Sample, times: list[float]) -> str:
        labels = []
        for t in times:
            shown = sample.caption_at(t)
            labels.append(shown if shown is not None and shown not in self.symbol_free else "no")
        think = f"{CROP_LISTING}{self.style.crop_listing(times, labels)}." if times else ""
        text = option_text(sample)
        answer = text if self.style.choice_text and text is not None else oracle_answer(sample, self.decimals)
        return format_answer(answer, think=think or None)
