"""Dense timestamped captions built from a timeline (the "Cap" part of ClinVideoSuite).

Captions are sentences over ``[start, end]`` seconds: one per phase, per instrument visit of at
least ``min_visit_s``, per event and per action triplet. They come from the annotations only,
so they are exact, and the window descriptions used as free-text answers are built the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from medscope_gym.suite.labels import a_or_an, event_noun, phase_label, tool_label
from medscope_gym.suite.schema import Caption
from medscope_gym.suite.timeline import Timeline

__all__ = ["captions_in_window", "dense_captions", "describe_window"]


def dense_captions(timeline: Timeline, min_visit_s: float = 2.0) -> tuple[Caption, ...]:
    """All captions of a video, sorted by start time."""
    caps: list[Caption] = [Caption(p.start, p.end, f"{phase_label(p.name)} phase.") for p in timeline.phases]
    for tool in timeline.tools:
        for a, b in timeline.tool_runs(tool):
            if b - a >= min_visit_s:
                caps.append(Caption(a, b, f"The {tool_label(tool)} is in view."))
    for ev in timeline.events:
        caps.append(Caption(ev.start, ev.end, _event_sentence(ev)))
    for act in timeline.actions:
        caps.append(
            Caption(
                act.start,
                act.end,
                f"The {act.instrument.replace('_', ' ')} performs "
                f"{act.verb.replace('_', ' ')} on the {act.target.replace('_', ' ')}.",
            )
        )
    return tuple(sorted(caps, key=lambda c: (c.start, c.end, c.text)))


def captions_in_window(captions: Sequence[Caption], start: float, end: float) -> tuple[Caption, ...]:
    """Captions that overlap ``[start, end]`` (a moment overlaps the captions that hold it)."""
    return tuple(c for c in captions if c.start <= end and c.end >= start and (c.end > start or start == end))


def describe_window(timeline: Timeline, start: float, end: float) -> str:
    """A short factual description of ``[start, end]``: phase(s), instruments in view, events."""
    phases = [p.name for p in timeline.phases if p.start < end and p.end > start]
    seconds = range(max(0, int(math.floor(start))), min(timeline.num_seconds, int(math.ceil(end))))
    tools = [t for j, t in enumerate(timeline.tools) if any(timeline.presence[k, j] for k in seconds)]
    events = [e for e in timeline.events if e.start < end and e.end > start]
    parts = [f"{' then '.join(phase_label(p) for p in dict.fromkeys(phases))} phase"]
    parts.append("instruments in view: " + (", ".join(tool_label(t) for t in tools) if tools else "none"))
    if events:
        parts.append("events: " + ", ".join(a_or_an(event_noun(e.kind)) for e in events))
    actions = list(dict.fromkeys(a.label for a in timeline.actions if a.start < end and a.end > start))
    if actions:
        parts.append("actions: " + ", ".join(actions[:3]))
    return "; ".join(parts) + "."


def _event_sentence(ev) -> str:
    text = a_or_an(event_noun(ev.kind)).capitalize()
    if ev.instrument:
        text += f" with the {tool_label(ev.instrument)}"
    if ev.phase:
        text += f" during {phase_label(ev.phase).lower()}"
    return text + "."
