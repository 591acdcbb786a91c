"""Evidence-windowed questions with exact answers, derived from a :class:`Procedure`.

Every question names its event unambiguously (by kind and order: "the second clip
application"), its evidence is the window that answers it, and choice options contain
exactly one correct answer. Kinds whose instrument or phase follows from the name alone
get no instrument or phase question, so a text-only guess cannot answer them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from medscope_gym.suite.schema import Sample, option_letter
from medscope_gym.synthetic.procedure import (
    CHOLEC80_PHASES,
    CHOLEC80_TOOLS,
    EVENT_INSTRUMENTS,
    EVENT_PHASES,
    Event,
    Procedure,
)

__all__ = [
    "EVENT_NOUNS",
    "NUM_OPTIONS",
    "ORDINALS",
    "PHASE_LABELS",
    "TOOL_LABELS",
    "balance_answer_positions",
    "build_questions",
    "event_reference",
    "format_seconds",
]

NUM_OPTIONS = 4
# Longest phase window a phase-grounding question may have, as a share of the video (SPEC §7 drops > 70%).
_MAX_PHASE_SHARE = 0.5

EVENT_NOUNS: dict[str, str] = {
    "bleeding": "bleeding",
    "clip_applied": "clip application",
    "duct_cut": "duct cut",
    "gallbladder_perforation": "gallbladder perforation",
    "irrigation_flush": "irrigation flush",
    "coagulation": "coagulation",
    "specimen_bagged": "specimen bagging",
}
PHASE_LABELS: dict[str, str] = {
    "Preparation": "Preparation",
    "CalotTriangleDissection": "Calot triangle dissection",
    "ClippingCutting": "Clipping and cutting",
    "GallbladderDissection": "Gallbladder dissection",
    "GallbladderPackaging": "Gallbladder packaging",
    "CleaningCoagulation": "Cleaning and coagulation",
    "GallbladderRetraction": "Gallbladder retraction",
}
TOOL_LABELS: dict[str, str] = {t: ("Specimen bag" if t == "SpecimenBag" else t) for t in CHOLEC80_TOOLS}
ORDINALS: tuple[str, ...] = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
)
_INTERVAL_HINT = "Answer with [start, end] in seconds."


def format_seconds(t: float) -> str:
    """Seconds with at most 3 decimals and no trailing zeros ("12.04", "3")."""
    return f"{t:.3f}".rstrip("0").rstrip(".")


def event_reference(procedure: Procedure, index: int) -> str:
    """Unambiguous noun phrase for ``procedure.events[index]``.

    "the bleeding" when it is the only event of its kind, else by order: "the second clip application".
    """
    event = procedure.events[index]
    same = [i for i, e in enumerate(procedure.events) if e.kind == event.kind]
    noun = EVENT_NOUNS[event.kind]
    if len(same) == 1:
        return f"the {noun}"
    k = same.index(index)
    ordinal = ORDINALS[k] if k < len(ORDINALS) else _numeric_ordinal(k + 1)
    return f"the {ordinal} {noun}"


def build_questions(
    procedure: Procedure, video: str, *, video_id: str, split: str = "test", seed: int = 0
) -> list[Sample]:
    """Questions about one procedure: event_instrument, event_phase, event_grounding, phase_grounding.

    ``video`` is the path stored in the samples (relative to the suite, e.g. ``videos/video01.mp4``).
    Choice answers are spread evenly over the option letters within the video.
    """
    rng = np.random.default_rng([procedure.seed, int(seed), 1])
    base = {"video": video, "duration": procedure.duration, "fps": procedure.fps, "source": "synthetic",
            "split": split}
    samples: list[Sample] = []
    counts: dict[str, int] = {}

    def add(task: str, **fields) -> None:
        counts[task] = counts.get(task, 0) + 1
        samples.append(Sample(id=f"{video_id}-{task}-{counts[task]:02d}", task=task, **base, **fields))

    present_somewhere = procedure.presence_array().any(axis=0)
    video_phases = {seg.name for seg in procedure.phases}
    for i, ev in enumerate(procedure.events):
        ref = event_reference(procedure, i)
        window = ((ev.start, ev.end),)
        if len(EVENT_INSTRUMENTS[ev.kind]) > 1:
            absent = ~_presence_during(procedure, ev).any(axis=0)
            pool = [t for j, t in enumerate(CHOLEC80_TOOLS) if absent[j] and present_somewhere[j]]
            spare = [t for j, t in enumerate(CHOLEC80_TOOLS) if absent[j] and not present_somewhere[j]]
            distractors = _pick(rng, pool, spare, NUM_OPTIONS - 1)
            if distractors is not None:
                add("event_instrument", question=f"Which of these instruments is in use during {ref}?",
                    options=tuple(TOOL_LABELS[t] for t in (ev.instrument, *distractors)),
                    answer=option_letter(0), answer_type="choice", evidence=window)
        if sum(ev.kind in kinds for kinds in EVENT_PHASES.values()) > 1:
            others = [p for p in CHOLEC80_PHASES if p != ev.phase]
            distractors = _pick(rng, [p for p in others if p in video_phases],
                                [p for p in others if p not in video_phases], NUM_OPTIONS - 1)
            if distractors is not None:
                add("event_phase", question=f"During which surgical phase does {ref} happen?",
                    options=tuple(PHASE_LABELS[p] for p in (ev.phase, *distractors)),
                    answer=option_letter(0), answer_type="choice", evidence=window)
        add("event_grounding", question=f"When does {ref} happen? {_INTERVAL_HINT}",
            answer=f"[{format_seconds(ev.start)}, {format_seconds(ev.end)}]", answer_type="interval",
            evidence=window)
    for seg in procedure.phases:
        if seg.end - seg.start <= _MAX_PHASE_SHARE * procedure.duration:
            add("phase_grounding",
                question=f"When does the {PHASE_LABELS[seg.name]} phase take place? {_INTERVAL_HINT}",
                answer=f"[{format_seconds(seg.start)}, {format_seconds(seg.end)}]", answer_type="interval",
                evidence=((seg.start, seg.end),))
    return balance_answer_positions(samples, rng)


def balance_answer_positions(samples: Sequence[Sample], rng: np.random.Generator) -> list[Sample]:
    """Move each choice question's correct option to a position drawn from shuffled blocks of all
    positions, so every letter is the answer equally often (±1 per option count); others keep their order."""
    out = list(samples)
    blocks: dict[int, list[int]] = {}
    for k, s in enumerate(out):
        if s.answer_type != "choice" or s.options is None:
            continue
        n = len(s.options)
        if not blocks.get(n):
            blocks[n] = [int(x) for x in rng.permutation(n)]
        target = blocks[n].pop()
        correct = s.options[s.answer_index]  # type: ignore[index]
        rest = [o for o in s.options if o != correct]
        rest = [rest[j] for j in rng.permutation(len(rest))]
        options = tuple(rest[:target] + [correct] + rest[target:])
        out[k] = dataclasses.replace(s, options=options, answer=option_letter(target))
    return out


def _presence_during(procedure: Procedure, event: Event) -> np.ndarray:
    """Presence rows of every second the event touches."""
    first = procedure.second_of_frame(event.start_frame)
    last = procedure.second_of_frame(event.end_frame - 1)
    return procedure.presence_array()[first:last + 1]


def _pick(rng: np.random.Generator, preferred: list[str], spare: list[str], k: int) -> list[str] | None:
    """``k`` names, from ``preferred`` first; None when there are not enough."""
    if len(preferred) + len(spare) < k:
        return None
    chosen = [preferred[j] for j in rng.permutation(len(preferred))[:k]]
    if len(chosen) < k:
        chosen += [spare[j] for j in rng.permutation(len(spare))[: k - len(chosen)]]
    return chosen


def _numeric_ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
