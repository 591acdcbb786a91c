"""Questions about one synthetic procedure, through the suite's question templates.

The templates, their distractors and answer-position balancing live in
:mod:`medscope_gym.suite.templates` (shared with the Cholec80/CholecT50 loaders); this module keeps
the synthetic package's names for them and the label tables the tests use to re-derive answers.
"""

from __future__ import annotations

import dataclasses

from medscope_gym.suite.labels import ORDINALS, event_noun, format_seconds, phase_label, tool_label
from medscope_gym.suite.schema import Sample
from medscope_gym.suite.templates import balance_answer_positions, generate_questions
from medscope_gym.suite.templates import event_reference as _timeline_event_reference
from medscope_gym.synthetic.procedure import CHOLEC80_PHASES, CHOLEC80_TOOLS, EVENT_KINDS, Procedure
from medscope_gym.synthetic.timeline import procedure_timeline

__all__ = [
    "CLASSIC_TEMPLATES",
    "EVENT_NOUNS",
    "ORDINALS",
    "PHASE_LABELS",
    "TOOL_LABELS",
    "balance_answer_positions",
    "build_questions",
    "event_reference",
    "format_seconds",
]

EVENT_NOUNS: dict[str, str] = {k: event_noun(k) for k in EVENT_KINDS}
PHASE_LABELS: dict[str, str] = {p: phase_label(p) for p in CHOLEC80_PHASES}
TOOL_LABELS: dict[str, str] = {t: tool_label(t) for t in CHOLEC80_TOOLS}
# The first question families of the synthetic suites: events (instrument, phase, when) and phases (when).
CLASSIC_TEMPLATES: tuple[str, ...] = ("event_instrument", "event_phase", "event_grounding", "phase_grounding")


def event_reference(procedure: Procedure, index: int) -> str:
    """ "the bleeding" when it is the only event of its kind, else by order: "the second clip application"."""
    return _timeline_event_reference(procedure_timeline(procedure, "video"), index)


def build_questions(
    procedure: Procedure,
    video: str,
    *,
    video_id: str,
    split: str = "test",
    seed: int = 0,
    templates: tuple[str, ...] = CLASSIC_TEMPLATES,
) -> list[Sample]:
    """Unfiltered candidate questions about one procedure (the suite builder filters and splits them)."""
    timeline = procedure_timeline(procedure, video_id)
    samples = generate_questions(timeline, video, templates=templates, seed=seed)
    return [dataclasses.replace(s, split=split) for s in samples]
