"""Filters that keep only questions which truly need the short, localised evidence (see docs/suites.md).

Run in order, each recording how many samples it removed and why:

1. ``inconsistent``: evidence outside the video, duplicate options, or an answer the timeline
   does not give (re-derived through the template's query).
2. ``long_evidence``: evidence covering more than ``max_evidence_share`` (70%) of the video.
3. ``near_duplicate``: the same question (words only, numbers rounded to whole seconds) with the
   same answer on the same video.
4. ``preview``: the annotations at the coarse preview's frame times give the answer away.
5. ``text_only``: a question-only baseline, cross-validated by video, beats chance: for choice
   templates the excess of questions it answers is pruned until it is back at chance; interval
   and text questions it answers on its own (IoU ≥ ``text_only_iou``, full text match) go.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from medscope_gym.judges import score_answer
from medscope_gym.suite.schema import Sample, option_letter
from medscope_gym.suite.templates import TEMPLATES, correct_text
from medscope_gym.suite.timeline import Timeline
from medscope_gym.tools import sample_times

__all__ = [
    "FILTER_NAMES",
    "FilterConfig",
    "FilterReport",
    "QuestionOnlyBaseline",
    "apply_filters",
    "preview_times",
    "question_skeleton",
]

FILTER_NAMES: tuple[str, ...] = ("inconsistent", "long_evidence", "near_duplicate", "preview", "text_only")


@dataclass(frozen=True)
class FilterConfig:
    """Which filters run and their thresholds (defaults: every filter, the paper's 70% rule)."""

    inconsistent: bool = True
    long_evidence: bool = True
    near_duplicate: bool = True
    preview: bool = True
    text_only: bool = True
    max_evidence_share: float = 0.7
    """Evidence covering more than this share of the video is not localised (ref-code: 0.7)."""
    preview_fps: float = 1.0
    """The env's preview sampling (ToolConfig.preview_fps / preview_max_frames)."""
    preview_max_frames: int = 512
    text_only_folds: int = 5
    """Cross-validation folds (by video) of the question-only baseline."""
    text_only_margin: float = 0.05
    """A choice template is biased when the baseline beats chance by more than this."""
    text_only_min_group: int = 6
    """Templates with fewer questions are not judged for bias (too few to tell)."""
    text_only_iou: float = 0.3
    """An interval question whose question-only guess reaches this IoU is answerable from text."""
    seed: int = 0


@dataclass
class FilterReport:
    """What the filters did: removed counts per filter, per reason and per task."""

    candidates: int = 0
    kept: int = 0
    removed: dict[str, dict[str, int]] = field(default_factory=dict)
    removed_by_task: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, name: str, sample: Sample, reason: str) -> None:
        self.removed.setdefault(name, {})
        self.removed[name][reason] = self.removed[name].get(reason, 0) + 1
        by_task = self.removed_by_task.setdefault(name, {})
        by_task[sample.task] = by_task.get(sample.task, 0) + 1

    def total(self, name: str) -> int:
        return sum(self.removed.get(name, {}).values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FilterReport:
        return cls(**{k: raw[k] for k in ("candidates", "kept", "removed", "removed_by_task") if k in raw})

    def merge(self, other: FilterReport) -> None:
        self.candidates += other.candidates
        self.kept += other.kept
        for name, reasons in other.removed.items():
            for reason, n in reasons.items():
                self.removed.setdefault(name, {})[reason] = self.removed.get(name, {}).get(reason, 0) + n
        for name, tasks in other.removed_by_task.items():
            for task, n in tasks.items():
                self.removed_by_task.setdefault(name, {})[task] = (
                    self.removed_by_task.get(name, {}).get(task, 0) + n
                )

    def format(self) -> str:
        lines = [f"filters: {self.candidates} candidates -> {self.kept} kept"]
        for name in FILTER_NAMES:
            if name not in self.removed:
                continue
            tasks = ", ".join(f"{t}={n}" for t, n in sorted(self.removed_by_task.get(name, {}).items()))
            lines.append(f"  {name}: removed {self.total(name)} ({tasks})")
            top = sorted(self.removed[name].items(), key=lambda kv: -kv[1])
            lines += [f"      {n:5d}  {reason}" for reason, n in top[:6]]
            if len(top) > 6:
                lines.append(f"      ... and {len(top) - 6} more reasons")
        return "\n".join(lines)


def preview_times(timeline: Timeline, fps: float = 1.0, max_frames: int = 512) -> np.ndarray:
    """Start times of the frames the env's preview shows (its grid, snapped to the video's frames)."""
    times = sample_times(0.0, timeline.duration, fps, max_frames)
    return np.unique(np.array([timeline.frame_time(t) for t in times]))


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ORDINAL = re.compile(
    r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\d+(?:st|nd|rd|th))\b"
)


def question_skeleton(sample: Sample) -> str:
    """The question with its numbers and ordinals blanked: the template a text-only model can see."""
    text = _ORDINAL.sub("#ord", sample.question.casefold())
    return f"{sample.task}|{_NUMBER.sub('#', text)}"


def _stable(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "little")


class QuestionOnlyBaseline:
    """Answers from the question text (and options) alone, never the video.

    Choice: the option whose text was most often correct when offered under the same question
    skeleton (Laplace-smoothed towards chance, ties broken by a hash). Interval: the mean relative
    window of the skeleton, scaled to the video. Text: the skeleton's most common answer.
    """

    def __init__(self, smoothing: float = 1.0) -> None:
        self.smoothing = smoothing
        self.option_stats: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.texts: dict[str, Counter[str]] = defaultdict(Counter)

    def fit(self, samples: Sequence[Sample]) -> QuestionOnlyBaseline:
        for s in samples:
            key = question_skeleton(s)
            if s.answer_type == "choice" and s.options:
                for i, opt in enumerate(s.options):
                    st = self.option_stats[(key, opt.casefold())]
                    st[0] += int(i == s.answer_index)
                    st[1] += 1
            elif s.answer_type == "interval" and s.answer_interval is not None:
                a, b = s.answer_interval
                self.windows[key].append((a / s.duration, b / s.duration))
            else:
                self.texts[key][s.answer] += 1
        return self

    def predict(self, sample: Sample) -> str:
        key = question_skeleton(sample)
        if sample.answer_type == "choice" and sample.options:
            prior = 1.0 / len(sample.options)
            scores = []
            for i, opt in enumerate(sample.options):
                hit, seen = self.option_stats.get((key, opt.casefold()), (0, 0))
                p = (hit + self.smoothing * prior) / (seen + self.smoothing)
                scores.append((p, _stable(sample.id, opt) / 2**64, i))
            return option_letter(max(scores)[2])
        if sample.answer_type == "interval":
            rel = self.windows.get(key) or [(0.45, 0.55)]
            a, b = np.mean(np.asarray(rel), axis=0)
            return f"[{a * sample.duration:.1f}, {b * sample.duration:.1f}]"
        common = self.texts.get(key)
        return common.most_common(1)[0][0] if common else "unknown"

    @staticmethod
    def cross_validated(samples: Sequence[Sample], folds: int = 5) -> list[float]:
        """Score of the baseline on each sample, trained on the other folds (folds are whole videos)."""
        fold_of = [_stable(s.video) % folds for s in samples]
        scores = [0.0] * len(samples)
        for f in range(folds):
            model = QuestionOnlyBaseline().fit([s for s, k in zip(samples, fold_of) if k != f])
            for i, (s, k) in enumerate(zip(samples, fold_of)):
                if k == f:
                    scores[i] = score_answer(s, model.predict(s)).score
        return scores


def apply_filters(
    samples: Sequence[Sample],
    timelines: Mapping[str, Timeline],
    cfg: FilterConfig | None = None,
    *,
    stages: Sequence[str] = FILTER_NAMES,
    report: FilterReport | None = None,
) -> tuple[list[Sample], FilterReport]:
    """Run the enabled filters of ``stages`` in order; ``timelines`` maps ``sample.video`` to its timeline.

    Samples without a timeline or template (imported rows) skip the filters that need one.
    """
    cfg = cfg or FilterConfig()
    report = report or FilterReport()
    report.candidates += len(samples) if stages and stages[0] == FILTER_NAMES[0] else 0
    kept = list(samples)
    for name in stages:
        if not getattr(cfg, name):
            continue
        kept = _STAGES[name](kept, timelines, cfg, report)
    if stages and stages[-1] == FILTER_NAMES[-1]:
        report.kept = len(kept)
    return kept, report


def _template(sample: Sample):
    return TEMPLATES.get(str(sample.extra.get("template")))


def _inconsistent(samples, timelines, cfg, report):
    out = []
    for s in samples:
        reason = _inconsistency(s, timelines.get(s.video))
        if reason:
            report.add("inconsistent", s, reason)
        else:
            out.append(s)
    return out


def _inconsistency(s: Sample, tl: Timeline | None) -> str | None:
    if any(a < 0 or b > s.duration + 1e-6 or b < a for a, b in s.evidence):
        return "evidence outside the video"
    if s.options and len({o.strip().casefold() for o in s.options}) != len(s.options):
        return "duplicate options"
    template = _template(s)
    if tl is None or template is None:
        return None
    if abs(tl.duration - s.duration) > 1e-6:
        return "duration differs from the annotations"
    derived = template.derive(tl, s)
    if derived is None:
        return f"{template.name}: the annotations give no unique answer"
    if isinstance(derived, tuple):
        got = s.answer_interval
        if got is None or max(abs(got[0] - derived[0]), abs(got[1] - derived[1])) > 1e-3:
            return f"{template.name}: answer contradicts the annotations"
        return None
    if str(derived).casefold() != correct_text(s).casefold():
        return f"{template.name}: answer contradicts the annotations"
    return None


def _long_evidence(samples, timelines, cfg, report):
    out = []
    for s in samples:
        covered = _union_length(s.evidence)
        if covered > cfg.max_evidence_share * s.duration:
            report.add(
                "long_evidence", s, f"evidence covers more than {cfg.max_evidence_share:.0%} of the video"
            )
        else:
            out.append(s)
    return out


def _union_length(windows) -> float:
    total, end = 0.0, -1.0
    for a, b in sorted(windows):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _near_duplicate(samples, timelines, cfg, report):
    out, seen = [], set()
    for s in samples:
        rounded = _NUMBER.sub(lambda m: str(round(float(m.group()))), s.question.casefold())
        key = (s.video, " ".join(re.findall(r"\w+", rounded)), correct_text(s).casefold())
        if key in seen:
            report.add("near_duplicate", s, "same question and answer on the same video")
            continue
        seen.add(key)
        out.append(s)
    return out


def _preview(samples, timelines, cfg, report):
    out = []
    cache: dict[str, np.ndarray] = {}
    for s in samples:
        tl, template = timelines.get(s.video), _template(s)
        if tl is None or template is None:
            out.append(s)
            continue
        if s.video not in cache:
            cache[s.video] = preview_times(tl, cfg.preview_fps, cfg.preview_max_frames)
        if template.from_preview(tl, s, cache[s.video]):
            report.add("preview", s, f"{template.name}: the preview frames' annotations give the answer")
        else:
            out.append(s)
    return out


def _text_only(samples, timelines, cfg, report, rounds: int = 4):
    """Repeat until the refitted baseline finds no more bias (pruning one template shifts the others)."""
    kept = list(samples)
    for r in range(rounds):
        before = len(kept)
        kept = _text_only_round(kept, cfg, report, np.random.default_rng([cfg.seed, r]))
        if len(kept) == before:
            break
    return kept


def _text_only_round(samples, cfg, report, rng):
    if len({s.video for s in samples}) < 2:
        return list(samples)  # no held-out video to cross-validate on
    scores = QuestionOnlyBaseline.cross_validated(samples, cfg.text_only_folds)
    drop: dict[int, str] = {}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        if s.answer_type == "choice":
            groups[question_skeleton(s)].append(i)
        elif s.answer_type == "interval" and scores[i] >= cfg.text_only_iou:
            drop[i] = f"{s.task}: a question-only guess reaches IoU >= {cfg.text_only_iou:g}"
        elif s.answer_type == "text" and scores[i] >= 1.0:
            drop[i] = f"{s.task}: a question-only guess is judged fully correct"
    for key, idx in groups.items():
        if len(idx) < cfg.text_only_min_group:
            continue
        acc = float(np.mean([scores[i] for i in idx]))
        chance = float(np.mean([1.0 / len(samples[i].options) for i in idx]))
        if acc <= chance + cfg.text_only_margin:
            continue
        # Keep just enough of the baseline's hits that it is back at chance on this template.
        keep_share = chance * (1 - acc) / (acc * (1 - chance))
        hits = [i for i in idx if scores[i] >= 1.0]
        n_keep = int(round(keep_share * len(hits)))
        template = key.split("|", 1)[1][:60]
        for j in rng.permutation(len(hits))[n_keep:]:
            drop[hits[j]] = f"question-only baseline beats chance ({acc:.0%} vs {chance:.0%}) on '{template}'"
    out = []
    for i, s in enumerate(samples):
        if i in drop:
            report.add("text_only", s, drop[i])
        else:
            out.append(s)
    return out


_STAGES = {
    "inconsistent": _inconsistent,
    "long_evidence": _long_evidence,
    "near_duplicate": _near_duplicate,
    "preview": _preview,
    "text_only": _text_only,
}
