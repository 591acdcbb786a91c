"""Question templates: evidence-bound questions generated from a :class:`Timeline`.

Each template produces samples whose ``extra["query"]`` holds the structured question (which
event, which time, which tool), so the answer can be re-derived from the timeline at any time
(:meth:`Template.derive`: the consistency filter and the tests do exactly that) and judged
against what the coarse preview alone would show (:meth:`Template.from_preview`).
Choice options are one correct answer plus distractors drawn from the same video where possible.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medscope_gym.intervals import Interval, temporal_iou
from medscope_gym.suite.captions import describe_window
from medscope_gym.suite.labels import event_noun, format_seconds, ordinal, phase_label, tool_label
from medscope_gym.suite.schema import Sample, option_letter
from medscope_gym.suite.timeline import CHOLEC80_PHASES, Timeline

__all__ = [
    "DEFAULT_TEMPLATES",
    "NUM_OPTIONS",
    "TEMPLATES",
    "Template",
    "TemplateConfig",
    "balance_answer_positions",
    "correct_text",
    "event_reference",
    "generate_questions",
]

NUM_OPTIONS = 4
_INTERVAL_HINT = "Answer with [start, end] in seconds."
_COUNT_PAD_S = 10.0
# A preview estimate this close to an interval answer counts as answering it.
PREVIEW_IOU = 0.5


@dataclass(frozen=True)
class TemplateConfig:
    """How many questions of each template to draw per video, and the limits they respect."""

    per_video: int = 6
    """At most this many questions per template and video (drawn at random among candidates)."""
    max_visit_s: float = 20.0
    """Instrument visits longer than this are not asked about (they are not "short evidence")."""
    min_visit_s: float = 2.0
    """Shorter visits are annotation flicker, not a visit."""
    count_window_s: tuple[float, float] = (40.0, 240.0)
    """Counting questions: windows shorter than half the first value are skipped, and the counted
    visits span at most the second (the window adds up to 10 s on each side, inside the gaps)."""
    describe_pad_s: float = 4.0
    """Description windows are an event padded by this much on each side."""


def correct_text(sample: Sample) -> str:
    """The correct option's text (choice) or the answer itself."""
    if sample.answer_type == "choice" and sample.options is not None:
        return sample.options[sample.answer_index]  # type: ignore[index]
    return sample.answer


def event_reference(timeline: Timeline, index: int) -> str:
    """ "the bleeding" when it is the only one of its kind, else "the second clip application"."""
    kind, k, n = timeline.event_index_label(index)
    return f"the {event_noun(kind)}" if n == 1 else f"the {ordinal(k)} {event_noun(kind)}"


def _interval_text(a: float, b: float) -> str:
    return f"[{format_seconds(a)}, {format_seconds(b)}]"


class _Draw:
    """Per-video sample factory: ids, common fields, random choices."""

    def __init__(self, timeline: Timeline, video: str, rng: np.random.Generator, cfg: TemplateConfig) -> None:
        self.tl, self.video, self.rng, self.cfg = timeline, video, rng, cfg
        self.count: dict[str, int] = {}

    def sample(
        self,
        template: str,
        task: str,
        question: str,
        answer: str | Interval,
        evidence,
        query: dict,
        options: Sequence[str] | None = None,
        answer_type: str | None = None,
    ) -> Sample:
        self.count[template] = self.count.get(template, 0) + 1
        if options is not None:
            kind, answer_text, opts = "choice", option_letter(0), tuple(options)
        elif isinstance(answer, tuple):
            kind, answer_text, opts = "interval", _interval_text(*answer), None
        else:
            kind, answer_text, opts = answer_type or "text", str(answer), None
        return Sample(
            id=f"{self.tl.video_id}-{template}-{self.count[template]:03d}",
            video=self.video,
            duration=self.tl.duration,
            fps=self.tl.fps,
            question=question,
            answer=answer_text,
            answer_type=kind,
            task=task,
            evidence=tuple((float(a), float(b)) for a, b in evidence),
            source=self.tl.source,
            split="test",
            options=opts,
            extra={"template": template, "query": query},
        )

    def pick(self, pool: Sequence[Any], k: int) -> list[Any]:
        if len(pool) <= k:
            return list(pool)
        return [pool[i] for i in sorted(self.rng.choice(len(pool), size=k, replace=False))]

    def distractors(self, preferred: Sequence[str], spare: Sequence[str], k: int = NUM_OPTIONS - 1):
        """``k`` distinct names, from ``preferred`` (same video) first; None when there are too few."""
        preferred = list(dict.fromkeys(preferred))
        spare = [s for s in dict.fromkeys(spare) if s not in preferred]
        if len(preferred) + len(spare) < k:
            return None
        chosen = [preferred[j] for j in self.rng.permutation(len(preferred))[:k]]
        return chosen + [spare[j] for j in self.rng.permutation(len(spare))[: k - len(chosen)]]


class Template(abc.ABC):
    """One question family. Subclasses implement generate, derive and from_preview."""

    name: str = ""
    task: str = ""

    @abc.abstractmethod
    def generate(self, d: _Draw) -> list[Sample]:
        """Draw this family's questions for one video."""

    @abc.abstractmethod
    def derive(self, tl: Timeline, sample: Sample) -> str | Interval | int | None:
        """The answer the timeline gives for the sample's query (option text, interval or count)."""

    @abc.abstractmethod
    def from_preview(self, tl: Timeline, sample: Sample, preview: np.ndarray) -> bool:
        """Whether the annotations at the preview's frame times alone give the answer away."""


# ---------------------------------------------------------------------- helpers on the preview
def _spacing(tl: Timeline, preview: np.ndarray) -> float:
    return tl.duration / max(1, len(preview))


def _hits(preview: np.ndarray, a: float, b: float) -> np.ndarray:
    return preview[(preview >= a - 1e-9) & (preview < b)]


def _interval_from_preview(tl: Timeline, preview: np.ndarray, truth: Interval) -> bool:
    inside = _hits(preview, *truth)
    if len(inside) == 0:
        return False
    half = _spacing(tl, preview) / 2
    guess = (max(0.0, float(inside.min()) - half), min(tl.duration, float(inside.max()) + half))
    return temporal_iou(guess, truth) >= PREVIEW_IOU


def _nearest(preview: np.ndarray, t: float) -> float:
    return float(preview[int(np.argmin(np.abs(preview - t)))])


def _choice_unique(options: Sequence[str], true_set: set[str], correct: str) -> bool:
    return correct in true_set and not any(o in true_set for o in options if o != correct)


# ---------------------------------------------------------------------- templates
class InstrumentAt(Template):
    """Instrument recognition at a moment inside a brief instrument visit; the evidence is the annotated
    second that holds the moment (instruments are labelled per second)."""

    name, task = "instrument_at", "instrument_recognition"

    def generate(self, d: _Draw) -> list[Sample]:
        tl, cfg = d.tl, d.cfg
        seen = set(t for j, t in enumerate(tl.tools) if tl.presence[:, j].any()) if tl.num_seconds else set()
        candidates = []
        for tool in tl.tools:
            for a, b in tl.tool_runs(tool):
                if cfg.min_visit_s <= b - a <= cfg.max_visit_s:
                    candidates.append((tool, a, b))
        out = []
        for tool, a, b in d.pick(candidates, d.cfg.per_video):
            k = int(d.rng.integers(int(a), int(math.ceil(b))))
            t = k + 0.5
            present = set(tl.instruments_at(t))
            absent = [x for x in tl.tools if x not in present]
            distract = d.distractors([x for x in absent if x in seen], absent)
            if distract is None:
                continue
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    f"Which of these instruments is in view at {format_seconds(t)} s?",
                    None,
                    [(k, min(k + 1.0, tl.duration))],
                    {"time": t},
                    options=[tool_label(x) for x in (tool, *distract)],
                )
            )
        return out

    def derive(self, tl, sample):
        present = {tool_label(x) for x in tl.instruments_at(sample.extra["query"]["time"])}
        hits = [o for o in sample.options or () if o in present]
        return hits[0] if len(hits) == 1 else None

    def from_preview(self, tl, sample, preview):
        t = _nearest(preview, sample.extra["query"]["time"])
        present = {tool_label(x) for x in tl.instruments_at(t)}
        return _choice_unique(sample.options or (), present, correct_text(sample))


class EventInstrument(Template):
    name, task = "event_instrument", "instrument_recognition"

    def generate(self, d):
        tl = d.tl
        seen = {t for j, t in enumerate(tl.tools) if tl.num_seconds and tl.presence[:, j].any()}
        out = []
        idx = [i for i, e in enumerate(tl.events) if e.instrument]
        for i in d.pick(idx, d.cfg.per_video):
            ev = tl.events[i]
            during = set()
            for k in range(int(ev.start), min(tl.num_seconds, int(math.ceil(ev.end)))):
                during |= set(tl.instruments_at(k + 0.5))
            absent = [x for x in tl.tools if x not in during and x != ev.instrument]
            distract = d.distractors([x for x in absent if x in seen], absent)
            if distract is None:
                continue
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    f"Which of these instruments is in use during {event_reference(tl, i)}?",
                    None,
                    [(ev.start, ev.end)],
                    {"event": i},
                    options=[tool_label(x) for x in (ev.instrument, *distract)],
                )
            )
        return out

    def derive(self, tl, sample):
        ev = tl.events[sample.extra["query"]["event"]]
        return tool_label(ev.instrument) if ev.instrument else None

    def from_preview(self, tl, sample, preview):
        ev = tl.events[sample.extra["query"]["event"]]
        return len(_hits(preview, ev.start, ev.end)) > 0


class EventPhase(Template):
    name, task = "event_phase", "phase_recognition"

    def generate(self, d):
        tl = d.tl
        in_video = [p.name for p in tl.phases]
        out = []
        idx = [i for i, e in enumerate(tl.events) if e.phase]
        for i in d.pick(idx, d.cfg.per_video):
            ev = tl.events[i]
            others = [p for p in CHOLEC80_PHASES if p != ev.phase]
            distract = d.distractors([p for p in others if p in in_video], others)
            if distract is None:
                continue
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    f"During which surgical phase does {event_reference(tl, i)} happen?",
                    None,
                    [(ev.start, ev.end)],
                    {"event": i},
                    options=[phase_label(p) for p in (ev.phase, *distract)],
                )
            )
        return out

    def derive(self, tl, sample):
        ev = tl.events[sample.extra["query"]["event"]]
        phase = tl.phase_at((ev.start + ev.end) / 2)
        return phase_label(phase) if phase == ev.phase else None

    def from_preview(self, tl, sample, preview):
        ev = tl.events[sample.extra["query"]["event"]]
        return len(_hits(preview, ev.start, ev.end)) > 0


class PhaseAt(Template):
    """Phase recognition at a moment a few seconds after a phase change (where a coarse look errs)."""

    name, task = "phase_at", "phase_recognition"

    def generate(self, d):
        tl = d.tl
        in_video = [p.name for p in tl.phases]
        out = []
        for span in d.pick(list(tl.phases[1:]), d.cfg.per_video):
            t = round(span.start + float(d.rng.uniform(0.2, 0.9)) * min(8.0, span.end - span.start), 1)
            if not span.start <= t < span.end:
                continue
            others = [p for p in CHOLEC80_PHASES if p != span.name]
            distract = d.distractors([p for p in others if p in in_video], others)
            if distract is None:
                continue
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    f"Which surgical phase is under way at {format_seconds(t)} s?",
                    None,
                    [(t, t)],
                    {"time": t},
                    options=[phase_label(p) for p in (span.name, *distract)],
                )
            )
        return out

    def derive(self, tl, sample):
        phase = tl.phase_at(sample.extra["query"]["time"])
        return phase_label(phase) if phase else None

    def from_preview(self, tl, sample, preview):
        phase = tl.phase_at(_nearest(preview, sample.extra["query"]["time"]))
        return phase is not None and phase_label(phase) == correct_text(sample)


def _occurrence_phrase(k: int, n: int) -> str:
    return "" if n == 1 else f" for the {ordinal(k)} time"


class PhaseGrounding(Template):
    name, task = "phase_grounding", "temporal_grounding"

    def generate(self, d):
        tl = d.tl
        out = []
        for j in d.pick(list(range(len(tl.phases))), d.cfg.per_video):
            span = tl.phases[j]
            same = [i for i, p in enumerate(tl.phases) if p.name == span.name]
            k = same.index(j)
            q = (
                f"When does the {phase_label(span.name)} phase take place"
                f"{_occurrence_phrase(k, len(same))}? {_INTERVAL_HINT}"
            )
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    q,
                    (span.start, span.end),
                    [(span.start, span.end)],
                    {"phase": span.name, "occurrence": k},
                )
            )
        return out

    def derive(self, tl, sample):
        q = sample.extra["query"]
        same = [p for p in tl.phases if p.name == q["phase"]]
        return (
            (same[q["occurrence"]].start, same[q["occurrence"]].end) if q["occurrence"] < len(same) else None
        )

    def from_preview(self, tl, sample, preview):
        return _interval_from_preview(tl, preview, sample.evidence[0])


class EventGrounding(Template):
    name, task = "event_grounding", "temporal_grounding"

    def generate(self, d):
        tl = d.tl
        out = []
        for i in d.pick(list(range(len(tl.events))), d.cfg.per_video):
            ev = tl.events[i]
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    f"When does {event_reference(tl, i)} happen? {_INTERVAL_HINT}",
                    (ev.start, ev.end),
                    [(ev.start, ev.end)],
                    {"event": i},
                )
            )
        return out

    def derive(self, tl, sample):
        ev = tl.events[sample.extra["query"]["event"]]
        return (ev.start, ev.end)

    def from_preview(self, tl, sample, preview):
        return _interval_from_preview(tl, preview, sample.evidence[0])


class InstrumentGrounding(Template):
    """When a given instrument comes into view for the k-th time (brief visits only)."""

    name, task = "instrument_grounding", "temporal_grounding"

    def generate(self, d):
        tl, cfg = d.tl, d.cfg
        candidates = []
        for tool in tl.tools:
            visits = [r for r in tl.tool_runs(tool) if r[1] - r[0] >= cfg.min_visit_s]
            candidates += [
                (tool, k, len(visits), r) for k, r in enumerate(visits) if r[1] - r[0] <= cfg.max_visit_s
            ]
        out = []
        for tool, k, n, (a, b) in d.pick(candidates, d.cfg.per_video):
            q = (
                f"When is the {tool_label(tool)} in view{_occurrence_phrase(k, n)}? Count only visits of "
                f"{format_seconds(cfg.min_visit_s)} s or more. {_INTERVAL_HINT}"
            )
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    q,
                    (a, b),
                    [(a, b)],
                    {"tool": tool, "occurrence": k, "min_visit": cfg.min_visit_s},
                )
            )
        return out

    def derive(self, tl, sample):
        q = sample.extra["query"]
        visits = [r for r in tl.tool_runs(q["tool"]) if r[1] - r[0] >= q["min_visit"]]
        return visits[q["occurrence"]] if q["occurrence"] < len(visits) else None

    def from_preview(self, tl, sample, preview):
        return _interval_from_preview(tl, preview, sample.evidence[0])


class ActionAt(Template):
    """Action triplet recognition at a moment (CholecT50 labels each second: the evidence is that second)."""

    name, task = "action_at", "action_recognition"

    def generate(self, d):
        tl = d.tl
        labels = list(dict.fromkeys(a.label for a in tl.actions))
        out = []
        for act in d.pick(list(tl.actions), d.cfg.per_video):
            t = float(math.floor(float(d.rng.uniform(act.start, act.end)))) + 0.5
            if not act.start <= t < act.end:
                continue
            active = {a.label for a in tl.actions_at(t)}
            distract = d.distractors([x for x in labels if x not in active], [])
            if distract is None:
                continue
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    f"Which action is performed at {format_seconds(t)} s?",
                    None,
                    [(t - 0.5, min(t + 0.5, tl.duration))],
                    {"time": t},
                    options=[act.label, *distract],
                )
            )
        return out

    def derive(self, tl, sample):
        active = {a.label for a in tl.actions_at(sample.extra["query"]["time"])}
        hits = [o for o in sample.options or () if o in active]
        return hits[0] if len(hits) == 1 else None

    def from_preview(self, tl, sample, preview):
        active = {a.label for a in tl.actions_at(_nearest(preview, sample.extra["query"]["time"]))}
        return _choice_unique(sample.options or (), active, correct_text(sample))


class EventOrder(Template):
    """Which of several events (of different kinds, close together) happens first.

    The evidence is the span from the first to the last of them: all must be seen to order them (a
    window per event would make the crop reward punish the one crop that shows them all)."""

    name, task = "event_order", "ordering"

    def generate(self, d):
        tl = d.tl
        out = []
        n = len(tl.events)
        starts = list(range(max(0, n - 3)))
        for s in d.pick(starts, d.cfg.per_video):
            group = list(range(s, min(n, s + 6)))
            kinds: dict[str, int] = {}
            for i in group:
                kinds.setdefault(tl.events[i].kind, i)
            chosen = list(kinds.values())
            if len(chosen) < 3:
                continue
            chosen = d.pick(chosen, NUM_OPTIONS) if len(chosen) > NUM_OPTIONS else chosen
            first = min(chosen, key=lambda i: tl.events[i].start)
            refs = {i: event_reference(tl, i) for i in chosen}
            options = [refs[first]] + [refs[i] for i in chosen if i != first]
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    "Which of these events happens first?",
                    None,
                    [(min(tl.events[i].start for i in chosen), max(tl.events[i].end for i in chosen))],
                    {"events": sorted(chosen)},
                    options=options,
                )
            )
        return out

    def derive(self, tl, sample):
        first = min(sample.extra["query"]["events"], key=lambda i: tl.events[i].start)
        return event_reference(tl, first)

    def from_preview(self, tl, sample, preview):
        return all(
            len(_hits(preview, tl.events[i].start, tl.events[i].end)) > 0
            for i in sample.extra["query"]["events"]
        )


class InstrumentCount(Template):
    """How many separate visits of an instrument fall inside a window (whose edges are in gaps).

    The evidence is the asked window: counting needs all of it."""

    name, task = "instrument_count", "counting"

    def generate(self, d):
        tl, cfg = d.tl, d.cfg
        lo, hi = cfg.count_window_s
        out = []
        tools = [t for t in tl.tools if len(self._visits(tl, t, cfg.min_visit_s)) >= 2]
        for _ in range(d.cfg.per_video * 3):
            if not tools or len(out) >= d.cfg.per_video:
                break
            tool = tools[int(d.rng.integers(len(tools)))]
            visits = self._visits(tl, tool, cfg.min_visit_s)
            i = int(d.rng.integers(len(visits)))
            j = i
            while j + 1 < len(visits) and visits[j + 1][1] - visits[i][0] <= hi and d.rng.random() < 0.7:
                j += 1
            gap_before = visits[i - 1][1] if i > 0 else 0.0
            gap_after = visits[j + 1][0] if j + 1 < len(visits) else tl.duration
            # Window edges inside the neighbouring gaps, at most _COUNT_PAD_S beyond the counted visits.
            a = round(visits[i][0] - min(_COUNT_PAD_S, (visits[i][0] - gap_before) / 2), 1)
            b = round(visits[j][1] + min(_COUNT_PAD_S, (gap_after - visits[j][1]) / 2), 1)
            if not (a < visits[i][0] and b > visits[j][1]) or b - a < lo / 2:
                continue
            if any(abs(x["query"]["start"] - a) < 1 for x in (s.extra for s in out)):
                continue
            count = j - i + 1
            q = (
                f"How many separate times does the {tool_label(tool)} come into view between "
                f"{format_seconds(a)} s and {format_seconds(b)} s? Count only visits of "
                f"{format_seconds(cfg.min_visit_s)} s or more."
            )
            values = self._options(d, count)
            if values is None:
                continue
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    q,
                    None,
                    [(a, b)],
                    {"tool": tool, "start": a, "end": b, "min_visit": cfg.min_visit_s},
                    options=[str(v) for v in values],
                )
            )
        return out

    @staticmethod
    def _visits(tl, tool, min_s):
        return [r for r in tl.tool_runs(tool) if r[1] - r[0] >= min_s]

    @staticmethod
    def _options(d: _Draw, count: int) -> list[int] | None:
        """The true count first, then the other three of four consecutive values around it (0 allowed).
        Its rank among them is drawn uniformly, and a draw that cannot be met (rank 3 for a count of 2)
        drops the question, so that no rank ("never the largest") gives the answer away."""
        rank = int(d.rng.integers(0, NUM_OPTIONS))
        if rank > count:
            return None
        return [count, *(count - rank + k for k in range(NUM_OPTIONS) if k != rank)]

    def derive(self, tl, sample):
        q = sample.extra["query"]
        inside = [
            r for r in self._visits(tl, q["tool"], q["min_visit"]) if r[0] >= q["start"] and r[1] <= q["end"]
        ]
        crossing = [r for r in tl.tool_runs(q["tool"]) if r[0] < q["start"] < r[1] or r[0] < q["end"] < r[1]]
        return None if crossing else str(len(inside))

    def from_preview(self, tl, sample, preview):
        q = sample.extra["query"]
        times = preview[(preview >= q["start"]) & (preview <= q["end"])]
        j = tl.tools.index(q["tool"])
        seen = np.array([tl.presence[min(int(t), tl.num_seconds - 1), j] for t in times], dtype=np.int8)
        visits = int(np.sum(np.diff(np.concatenate([[0], seen])) == 1)) if len(seen) else 0
        return str(visits) == correct_text(sample)


class Describe(Template):
    """Open-ended description of a short window around an event (free-text answer)."""

    name, task = "describe", "description"

    def generate(self, d):
        tl, pad = d.tl, d.cfg.describe_pad_s
        out = []
        for i in d.pick(list(range(len(tl.events))), d.cfg.per_video):
            ev = tl.events[i]
            a = max(0.0, math.floor(ev.start - pad))
            b = min(tl.duration, math.ceil(ev.end + pad))
            q = f"Describe what happens between {format_seconds(a)} s and {format_seconds(b)} s."
            out.append(
                d.sample(
                    self.name,
                    self.task,
                    q,
                    describe_window(tl, a, b),
                    [(a, b)],
                    {"start": a, "end": b},
                    answer_type="text",
                )
            )
        return out

    def derive(self, tl, sample):
        q = sample.extra["query"]
        return describe_window(tl, q["start"], q["end"])

    def from_preview(self, tl, sample, preview):
        q = sample.extra["query"]
        events = [e for e in tl.events if e.start < q["end"] and e.end > q["start"]]
        return (
            all(len(_hits(preview, e.start, e.end)) > 0 for e in events)
            and len(_hits(preview, q["start"], q["end"])) > 0
        )


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        InstrumentAt(),
        EventInstrument(),
        EventPhase(),
        PhaseAt(),
        PhaseGrounding(),
        EventGrounding(),
        InstrumentGrounding(),
        ActionAt(),
        EventOrder(),
        InstrumentCount(),
        Describe(),
    )
}
DEFAULT_TEMPLATES: tuple[str, ...] = tuple(TEMPLATES)


def generate_questions(
    timeline: Timeline,
    video: str,
    *,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    cfg: TemplateConfig | None = None,
    seed: int = 0,
) -> list[Sample]:
    """Candidate questions about one video (before filtering); ``video`` is the path stored in them."""
    cfg = cfg or TemplateConfig()
    unknown = [t for t in templates if t not in TEMPLATES]
    if unknown:
        raise ValueError(f"unknown template(s) {', '.join(unknown)}; known: {', '.join(TEMPLATES)}")
    digest = sum(ord(c) * (i + 1) for i, c in enumerate(timeline.video_id))
    rng = np.random.default_rng([int(seed), digest])
    draw = _Draw(timeline, video, rng, cfg)
    out: list[Sample] = []
    for name in templates:
        out += TEMPLATES[name].generate(draw)
    return out


def balance_answer_positions(samples: Sequence[Sample], rng: np.random.Generator) -> list[Sample]:
    """Place each choice question's correct option by shuffled blocks of all positions, so every letter
    is the answer equally often (±1 per option count); distractors are shuffled too."""
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
        out[k] = dataclasses.replace(
            s, options=tuple(rest[:target] + [correct] + rest[target:]), answer=option_letter(target)
        )
    return out
