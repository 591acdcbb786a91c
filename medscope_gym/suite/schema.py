"""ClinVideoSuite sample schema (see docs/suites.md): one JSON object per line of ``suite.jsonl``.

Every field is validated on load so that a broken suite fails before training starts,
with the line and the field named in the message.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from medscope_gym.errors import SuiteError
from medscope_gym.intervals import Interval, parse_interval

__all__ = ["ANSWER_TYPES", "SPLITS", "Caption", "Sample", "option_letter"]

AnswerType = Literal["choice", "interval", "text"]
ANSWER_TYPES: tuple[str, ...] = ("choice", "interval", "text")
SPLITS: tuple[str, ...] = ("train", "val", "test")
_LETTERS = string.ascii_uppercase
# Evidence may end a hair past the duration (container rounding); more than this is an error.
_DURATION_SLACK_S = 0.5


def _finite(x: Any) -> bool:
    """A real number (not a bool) that is finite as a float; integers past the float range are not."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # math.isfinite converts ints to float
        return False


def option_letter(index: int) -> str:
    """Letter of the option at ``index`` (0 → "A")."""
    return _LETTERS[index]


@dataclass(frozen=True)
class Caption:
    """One timestamped dense caption."""

    start: float
    end: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True)
class Sample:
    """One question about one video, bound to the evidence window(s) that answer it.

    ``answer`` is the option letter for ``choice`` questions, ``"[s, e]"`` for ``interval``
    questions and free text for ``text`` questions. ``evidence`` holds ``(start, end)``
    windows in seconds; a single moment is ``(t, t)``. ``trajectory`` is an optional
    reference tool-use trajectory: a list of dicts, each with at least ``action`` (the raw
    assistant text of one turn).
    """

    id: str
    video: str
    duration: float
    fps: float
    question: str
    answer: str
    answer_type: str
    task: str
    evidence: tuple[Interval, ...]
    source: str = "unknown"
    split: str = "test"
    options: tuple[str, ...] | None = None
    captions: tuple[Caption, ...] | None = None
    trajectory: tuple[dict[str, Any], ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def answer_index(self) -> int | None:
        """Index of the correct option for choice questions, else None."""
        if self.answer_type != "choice":
            return None
        return _LETTERS.index(self.answer)

    @property
    def answer_interval(self) -> Interval | None:
        """The parsed ``[s, e]`` answer of interval questions, else None."""
        return parse_interval(self.answer) if self.answer_type == "interval" else None

    def caption_at(self, t: float) -> str | None:
        """The dense caption whose ``[start, end)`` holds ``t`` seconds (None: no caption there)."""
        for caption in self.captions or ():
            if caption.start <= t < caption.end:
                return caption.text
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; round-trips through :meth:`from_dict`."""
        out: dict[str, Any] = {
            "id": self.id,
            "video": self.video,
            "duration": self.duration,
            "fps": self.fps,
            "question": self.question,
            "options": list(self.options) if self.options is not None else None,
            "answer": self.answer,
            "answer_type": self.answer_type,
            "task": self.task,
            "evidence": [[s, e] for s, e in self.evidence],
            "source": self.source,
            "split": self.split,
        }
        if self.captions is not None:
            out["captions"] = [c.to_dict() for c in self.captions]
        if self.trajectory is not None:
            out["trajectory"] = [dict(t) for t in self.trajectory]
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str = "sample") -> Sample:
        """Validate and build a sample; ``where`` (e.g. ``"suite.jsonl line 12"``) prefixes errors."""
        if not isinstance(raw, dict):
            raise SuiteError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        v = _Validator(raw, where)
        sid = v.string("id")
        where = f"{where} (id {sid!r})"
        v.where = where
        duration = v.number("duration", positive=True)
        fps = v.number("fps", positive=True)
        answer_type = v.string("answer_type")
        if answer_type not in ANSWER_TYPES:
            v.fail("answer_type", f"must be one of {', '.join(ANSWER_TYPES)}, got {answer_type!r}")
        options = v.options(answer_type)
        answer = v.answer(answer_type, options)
        evidence = v.evidence(duration)
        split = v.string("split", default="test")
        if split not in SPLITS:
            v.fail("split", f"must be one of {', '.join(SPLITS)}, got {split!r}")
        known = {
            "id",
            "video",
            "duration",
            "fps",
            "question",
            "options",
            "answer",
            "answer_type",
            "task",
            "evidence",
            "source",
            "split",
            "captions",
            "trajectory",
        }
        return cls(
            id=sid,
            video=v.string("video"),
            duration=duration,
            fps=fps,
            question=v.string("question"),
            options=options,
            answer=answer,
            answer_type=answer_type,
            task=v.string("task"),
            evidence=evidence,
            source=v.string("source", default="unknown"),
            split=split,
            captions=v.captions(duration),
            trajectory=v.trajectory(),
            extra={k: val for k, val in raw.items() if k not in known},
        )


class _Validator:
    """Field readers that raise :class:`SuiteError` naming the sample and the field."""

    def __init__(self, raw: dict[str, Any], where: str) -> None:
        self.raw = raw
        self.where = where

    def fail(self, name: str, problem: str) -> None:
        raise SuiteError(f"{self.where}, field {name!r}: {problem}")

    def string(self, name: str, default: str | None = None) -> str:
        value = self.raw.get(name, default)
        if value is None:
            self.fail(name, "missing")
        if not isinstance(value, str) or not value.strip():
            self.fail(name, f"must be a non-empty string, got {value!r}")
        return value

    def number(self, name: str, positive: bool = False) -> float:
        value = self.raw.get(name)
        if value is None:
            self.fail(name, "missing")
        if not _finite(value):
            self.fail(name, f"must be a finite number, got {value!r}")
        if positive and value <= 0:
            self.fail(name, f"must be > 0, got {value!r}")
        return float(value)

    def options(self, answer_type: str) -> tuple[str, ...] | None:
        value = self.raw.get("options")
        if answer_type != "choice":
            if value not in (None, []):
                self.fail("options", f"only choice questions have options (answer_type is {answer_type!r})")
            return None
        if not isinstance(value, list) or len(value) < 2 or len(value) > len(_LETTERS):
            self.fail("options", f"a choice question needs a list of 2 to 26 options, got {value!r}")
        if not all(isinstance(o, str) and o.strip() for o in value):
            self.fail("options", "every option must be a non-empty string")
        folded = [o.strip().casefold() for o in value]
        if len(set(folded)) != len(folded):
            self.fail("options", f"duplicate options: {value!r}")
        return tuple(value)

    def answer(self, answer_type: str, options: tuple[str, ...] | None) -> str:
        value = self.string("answer")
        if answer_type == "choice":
            assert options is not None
            letters = _LETTERS[: len(options)]
            if value.strip().upper() in letters and len(value.strip()) == 1:
                return value.strip().upper()
            # Accept the option's text and store its letter.
            matches = [i for i, o in enumerate(options) if o.strip().casefold() == value.strip().casefold()]
            if len(matches) == 1:
                return letters[matches[0]]
            self.fail(
                "answer",
                f"must be an option letter {letters[0]}-{letters[-1]} or an option's text, got {value!r}",
            )
        if answer_type == "interval" and parse_interval(value) is None:
            self.fail("answer", f"an interval answer must read like '[start, end]' in seconds, got {value!r}")
        return value

    def evidence(self, duration: float) -> tuple[Interval, ...]:
        value = self.raw.get("evidence")
        if not isinstance(value, list) or not value:
            self.fail("evidence", f"must be a non-empty list of [start, end] windows, got {value!r}")
        windows: list[Interval] = []
        for i, w in enumerate(value):
            ok = isinstance(w, (list, tuple)) and len(w) == 2 and all(_finite(x) for x in w)
            if not ok:
                self.fail("evidence", f"window {i} must be [start, end] with finite numbers, got {w!r}")
            s, e = float(w[0]), float(w[1])
            if s < 0 or e < s:
                self.fail("evidence", f"window {i} {w!r} needs 0 <= start <= end")
            if e > duration + _DURATION_SLACK_S:
                self.fail("evidence", f"window {i} {w!r} ends after the video's duration {duration:g} s")
            windows.append((s, min(e, duration)))
        return tuple(windows)

    def captions(self, duration: float) -> tuple[Caption, ...] | None:
        value = self.raw.get("captions")
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail("captions", "must be a list of {start, end, text}")
        out = []
        for i, c in enumerate(value):
            if not (
                isinstance(c, dict)
                and isinstance(c.get("text"), str)
                and all(_finite(c.get(k)) for k in ("start", "end"))
            ):
                self.fail("captions", f"caption {i} must be {{start, end, text}}, got {c!r}")
            s, e = float(c["start"]), float(c["end"])
            if not (0 <= s <= e <= duration + _DURATION_SLACK_S):
                self.fail("captions", f"caption {i} [{s:g}, {e:g}] is outside [0, {duration:g}] or reversed")
            out.append(Caption(s, min(e, duration), c["text"]))
        return tuple(out)

    def trajectory(self) -> tuple[dict[str, Any], ...] | None:
        value = self.raw.get("trajectory")
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            self.fail("trajectory", "must be a non-empty list of turns")
        for i, t in enumerate(value):
            if not isinstance(t, dict) or not isinstance(t.get("action"), str):
                self.fail("trajectory", f"turn {i} must be an object with a string 'action'")
        return tuple(dict(t) for t in value)
