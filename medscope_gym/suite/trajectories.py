"""Reference tool-use trajectories (the "VCoT" part): the oracle's coarse-to-fine look, as text.

Each trajectory is what an expert agent would say turn by turn in the env's text protocol:
look at the preview, crop around the evidence, optionally refine an imperfect first crop,
optionally inspect one frame, answer. The reasoning names what the returned frames show (their
timestamps and, with a timeline, the phase, instruments and events at those times), and the
turn records carry the exact timestamps the env will return and the reward it will pay, so a
replay through ``ClinVideoEnv`` can be checked turn by turn. Controlled noise (refined first
crops, optional get_frame, some answers straight from the preview when the preview shows the
evidence) keeps SFT data from being one fixed pattern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medscope_gym.intervals import Interval, is_moment
from medscope_gym.judges import score_answer
from medscope_gym.protocol import format_answer, format_tool_call
from medscope_gym.rewards import RewardSpec, parse_reward, trajectory_reward
from medscope_gym.suite.labels import a_or_an, event_noun, phase_label, tool_label
from medscope_gym.suite.schema import Sample
from medscope_gym.suite.templates import TEMPLATES, correct_text, event_reference
from medscope_gym.suite.timeline import Timeline
from medscope_gym.tools import ToolConfig, sample_times

__all__ = ["TrajectoryConfig", "crop_timestamps", "frame_timestamps", "reference_trajectory"]


@dataclass(frozen=True)
class TrajectoryConfig:
    """Noise levels of reference trajectories; tool settings must match the env's."""

    p_no_tools: float = 0.15
    """Share of questions answered straight from the preview, when the preview shows the evidence."""
    p_refine: float = 0.4
    """Share whose first crop is a wider, shifted window that a second crop then tightens."""
    p_frame: float = 0.6
    """Share of window questions that end with a get_frame (moment questions always do)."""
    moment_pad_s: float = 2.0
    """A moment is cropped with this much on each side."""
    tools: ToolConfig = field(default_factory=ToolConfig)
    reward: RewardSpec = "paper"
    """Reward whose total is recorded with the trajectory: a name or a mapping (docs/rewards.md)."""


def _index(duration: float, fps: float, t: float) -> int:
    n = max(1, int(round(duration * fps)))
    return min(max(int(math.floor(t * fps + 1e-9)), 0), n - 1)


def crop_timestamps(duration: float, fps: float, start: float, end: float, tools: ToolConfig) -> list[float]:
    """Frame times crop_video returns for ``[start, end]`` on a constant-frame-rate video."""
    end = min(end, duration)
    times = sample_times(start, end, tools.crop_fps, tools.crop_max_frames)
    return [i / fps for i in sorted({_index(duration, fps, t) for t in times})]


def frame_timestamps(duration: float, fps: float, t: float, tools: ToolConfig) -> list[float]:
    """Frame times get_frame returns for ``t``: the frame on screen and its neighbours."""
    n = max(1, int(round(duration * fps)))
    count = min(tools.frame_count, n)
    first = min(max(0, _index(duration, fps, t) - (count - 1) // 2), n - count)
    return [(first + k) / fps for k in range(count)]


def _describe_at(tl: Timeline | None, t: float) -> str:
    if tl is None:
        return "the scene the question is about"
    parts = []
    phase = tl.phase_at(t)
    if phase:
        parts.append(f"{phase_label(phase).lower()}")
    tools = tl.instruments_at(t)
    parts.append(
        ("the " + ", ".join(tool_label(x) for x in tools) + " in view") if tools else "no instrument in view"
    )
    events = tl.events_at(t)
    if events:
        parts.append(" and ".join(a_or_an(event_noun(e.kind)) for e in events))
    return "; ".join(parts)


def _describe_frames(tl: Timeline | None, stamps: list[float], evidence: tuple[Interval, ...]) -> str:
    """What the returned frames show, naming the ones inside the evidence."""
    inside = [
        t
        for t in stamps
        if any(a - 1e-9 <= t <= b + 1e-9 or (a == b and abs(t - a) < 1.0) for a, b in evidence)
    ]
    head = f"{len(stamps)} frames from {stamps[0]:.1f} s to {stamps[-1]:.1f} s"
    if not inside:
        return f"{head}; none of them shows what the question asks about yet"
    mid = inside[len(inside) // 2]
    return (
        f"{head}; the frames at {inside[0]:.1f}-{inside[-1]:.1f} s are the relevant ones, "
        f"e.g. at {mid:.1f} s: {_describe_at(tl, mid)}"
    )


def _oracle_answer(sample: Sample) -> str:
    if sample.answer_type == "interval":
        a, b = sample.answer_interval  # type: ignore[misc]
        return f"[{a:g}, {b:g}]"
    return sample.answer


def _target(sample: Sample, cfg: TrajectoryConfig) -> Interval:
    a = min(w[0] for w in sample.evidence)
    b = max(w[1] for w in sample.evidence)
    if is_moment((a, b)):
        a, b = max(0.0, a - cfg.moment_pad_s), min(sample.duration, b + cfg.moment_pad_s)
    if b - a < 1.0:  # crops need start < end and at least one grid frame
        a, b = max(0.0, a - 0.5), min(sample.duration, b + 0.5)
    return (round(a, 2), round(b, 2))


def _coarse(target: Interval, duration: float, rng: np.random.Generator) -> Interval:
    """A wider, off-centre first crop that still holds the evidence (its IoU with it is low)."""
    a, b = target
    length = b - a
    width = max(length * float(rng.uniform(2.0, 6.0)), length + 10.0)
    shift = float(rng.uniform(-0.4, 0.4)) * (width - length)
    centre = (a + b) / 2 + shift
    lo = min(max(0.0, centre - width / 2), a)
    hi = max(min(duration, centre + width / 2), b)
    return (math.floor(lo * 10) / 10, math.ceil(hi * 10) / 10)


def reference_trajectory(
    sample: Sample,
    timeline: Timeline | None,
    rng: np.random.Generator,
    cfg: TrajectoryConfig | None = None,
    preview: np.ndarray | None = None,
) -> tuple[dict[str, Any], ...]:
    """Turns of one reference trajectory: ``action`` (assistant text), ``tool``/``arguments``/``timestamps``
    for tool turns, and on the last turn ``answer`` and the ``reward`` parts the env will pay."""
    cfg = cfg or TrajectoryConfig()
    duration, fps = sample.duration, sample.fps
    target = _target(sample, cfg)
    answer = _oracle_answer(sample)
    turns: list[dict[str, Any]] = []
    template = TEMPLATES.get(str(sample.extra.get("template")))
    shown = (
        preview is not None
        and timeline is not None
        and template is not None
        and template.from_preview(timeline, sample, preview)
    )
    n_preview = (
        len(preview)
        if preview is not None
        else min(cfg.tools.preview_max_frames, int(duration * cfg.tools.preview_fps))
    )
    intro = (
        f"The preview gives {n_preview} frames over the whole {duration:.0f} s video, about "
        f"{duration / max(1, n_preview):.1f} s apart."
    )
    last_crop: Interval | None = None
    last_frame: float | None = None
    if shown and rng.random() < cfg.p_no_tools:
        t = float(preview[np.argmin(np.abs(preview - (target[0] + target[1]) / 2))])  # type: ignore[index]
        think = (
            f"{intro} The preview frame at {t:.1f} s already shows {_describe_at(timeline, t)}, which "
            f"settles it: the answer is {correct_text(sample)}."
        )
        turns.append({"action": format_answer(answer, think=think), "answer": answer})
    else:
        crops = [_coarse(target, duration, rng), target] if rng.random() < cfg.p_refine else [target]
        think = (
            f"{intro} {_question_focus(sample, timeline)} I crop [{crops[0][0]:g}, {crops[0][1]:g}] s "
            "to look closer."
        )
        for k, (a, b) in enumerate(crops):
            stamps = crop_timestamps(duration, fps, a, b, cfg.tools)
            turns.append(
                {
                    "action": format_tool_call("crop_video", {"start_time": a, "end_time": b}, think=think),
                    "tool": "crop_video",
                    "arguments": {"start_time": a, "end_time": b},
                    "timestamps": stamps,
                }
            )
            last_crop = (a, min(b, duration))
            seen = _describe_frames(timeline, stamps, sample.evidence)
            if k + 1 < len(crops):
                think = (
                    f"The crop returned {seen}. That window is wider than needed, so I narrow it to "
                    f"[{crops[k + 1][0]:g}, {crops[k + 1][1]:g}] s."
                )
            else:
                think = f"The crop returned {seen}."
        moment = all(is_moment(w) for w in sample.evidence)
        if moment or rng.random() < cfg.p_frame:
            w = sample.evidence[0]
            t = round((w[0] + w[1]) / 2, 2)
            stamps = frame_timestamps(duration, fps, t, cfg.tools)
            turns.append(
                {
                    "action": format_tool_call(
                        "get_frame",
                        {"timestamp": t},
                        think=f"{think} I check the frame at {t:g} s in detail.",
                    ),
                    "tool": "get_frame",
                    "arguments": {"timestamp": t},
                    "timestamps": stamps,
                }
            )
            last_frame = t
            think = f"The frames at {stamps[0]:.2f}-{stamps[-1]:.2f} s show {_describe_at(timeline, t)}."
        think += f"{_finding(sample, timeline)} So the answer is {correct_text(sample).rstrip('.')}."
        turns.append({"action": format_answer(answer, think=think), "answer": answer})
    accuracy = score_answer(sample, answer).score
    parts = trajectory_reward(
        accuracy=accuracy,
        format_ok=True,
        last_crop=last_crop,
        last_frame=last_frame,
        evidence=sample.evidence,
        cfg=parse_reward(cfg.reward),
    )
    turns[-1]["reward"] = parts.as_dict()
    return tuple(turns)


def _finding(sample: Sample, tl: Timeline | None) -> str:
    """What the inspected frames establish for the question's template (empty without a timeline)."""
    template, q = sample.extra.get("template"), sample.extra.get("query", {})
    if tl is None or template is None:
        return ""
    if template == "event_order":
        seen = sorted(q["events"], key=lambda i: tl.events[i].start)
        listed = ", ".join(f"{event_reference(tl, i)} at {tl.events[i].start:.1f} s" for i in seen)
        return f" Across the crop: {listed}."
    if template == "instrument_count":
        visits = [
            (a, b)
            for a, b in tl.tool_runs(q["tool"])
            if b - a >= q["min_visit"] and q["start"] <= a and b <= q["end"]
        ]
        spans = ", ".join(f"{a:.0f}-{b:.0f}" for a, b in visits)
        return (
            f" Between {q['start']:g} and {q['end']:g} s the {tool_label(q['tool'])} comes into view at "
            f"{spans} s: {len(visits)} separate visits."
        )
    if sample.answer_type == "interval":
        a, b = sample.answer_interval  # type: ignore[misc]
        return f" It starts at {a:.1f} s and is over by {b:.1f} s."
    return ""


def _question_focus(sample: Sample, tl: Timeline | None) -> str:
    """Where the question points, from what the preview shows around the evidence."""
    a = min(w[0] for w in sample.evidence)
    b = max(w[1] for w in sample.evidence)
    if tl is None or sample.extra.get("template") in (
        None,
        "instrument_at",
        "phase_at",
        "action_at",
        "instrument_count",
        "describe",
    ):
        where = f"{a:.0f} s" if a == b else f"{a:.0f}-{b:.0f} s"
        return f"The question points at {where}, but the preview is too coarse to read it there."
    phase = tl.phase_at((a + b) / 2)
    return (
        f"Around {a:.0f}-{b:.0f} s the preview shows {phase_label(phase or '').lower() or 'the procedure'}, "
        "but the brief moment the question needs falls between preview frames."
    )
