"""One internal model of what happens in a video, whatever annotation format it came from.

Every loader (Cholec80, CholecT50, the synthetic procedures) produces a :class:`Timeline`;
question templates, filters, captions and reference trajectories read only this model, so a
new annotation format needs a loader and nothing else. Phases are exact spans (frame precision
when the source has it); instruments are per second (second ``k`` covers ``[k, k + 1)``, the
Cholec80/CholecT50 rate); events and action triplets are spans in seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CHOLEC80_PHASES",
    "CHOLEC80_TOOLS",
    "ActionSpan",
    "PhaseSpan",
    "Timeline",
    "TimelineEvent",
    "canonical_label",
    "runs",
]

CHOLEC80_PHASES: tuple[str, ...] = (
    "Preparation",
    "CalotTriangleDissection",
    "ClippingCutting",
    "GallbladderDissection",
    "GallbladderPackaging",
    "CleaningCoagulation",
    "GallbladderRetraction",
)
CHOLEC80_TOOLS: tuple[str, ...] = (
    "Grasper",
    "Bipolar",
    "Hook",
    "Scissors",
    "Clipper",
    "Irrigator",
    "SpecimenBag",
)


def _key(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", label.casefold())


# Spellings other datasets use for the Cholec80 names (CholecT50 writes "carlot-triangle-dissection",
# "gallbladder-extraction", "specimen_bag"); compared after dropping case and punctuation.
_ALIASES: dict[str, str] = {
    **{_key(p): p for p in CHOLEC80_PHASES},
    **{_key(t): t for t in CHOLEC80_TOOLS},
    "carlottriangledissection": "CalotTriangleDissection",
    "clippingandcutting": "ClippingCutting",
    "cleaningandcoagulation": "CleaningCoagulation",
    "gallbladderextraction": "GallbladderRetraction",
}


def canonical_label(label: str, allowed: tuple[str, ...]) -> str | None:
    """The name in ``allowed`` that ``label`` spells (case, spaces, dashes and known aliases ignored)."""
    name = _ALIASES.get(_key(label))
    if name in allowed:
        return name
    for a in allowed:
        if _key(a) == _key(label):
            return a
    return None


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D mask as half-open index ranges ``[start, end)``."""
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    if m.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], m, [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


@dataclass(frozen=True)
class PhaseSpan:
    """A phase over ``[start, end)`` seconds."""

    name: str
    start: float
    end: float


@dataclass(frozen=True)
class TimelineEvent:
    """A brief decisive moment over ``[start, end)`` seconds, with the instrument in use and the phase."""

    kind: str
    start: float
    end: float
    instrument: str | None = None
    phase: str | None = None


@dataclass(frozen=True)
class ActionSpan:
    """An instrument–verb–target triplet performed over ``[start, end)`` seconds (CholecT50)."""

    instrument: str
    verb: str
    target: str
    start: float
    end: float

    @property
    def label(self) -> str:
        return f"{self.instrument} {self.verb} {self.target}".replace("_", " ")


@dataclass(frozen=True, eq=False)
class Timeline:
    """Ground truth of one video: phases, per-second instruments, events and action triplets."""

    video_id: str
    duration: float
    fps: float
    """The video's frame rate (frame ``i`` starts at ``i / fps``)."""
    phases: tuple[PhaseSpan, ...]
    tools: tuple[str, ...] = CHOLEC80_TOOLS
    presence: np.ndarray = field(default_factory=lambda: np.zeros((0, len(CHOLEC80_TOOLS)), np.uint8))
    """``(seconds, len(tools))`` 0/1: tool ``j`` visible during second ``k``."""
    events: tuple[TimelineEvent, ...] = ()
    actions: tuple[ActionSpan, ...] = ()
    source: str = "unknown"

    @property
    def num_frames(self) -> int:
        return int(round(self.duration * self.fps))

    @property
    def num_seconds(self) -> int:
        return int(self.presence.shape[0])

    def frame_time(self, t: float) -> float:
        """Start time of the frame on screen at ``t`` (what a decoder returns for a request at ``t``)."""
        idx = min(max(int(math.floor(t * self.fps + 1e-9)), 0), self.num_frames - 1)
        return idx / self.fps

    def phase_at(self, t: float) -> str | None:
        for p in self.phases:
            if p.start <= t < p.end:
                return p.name
        if self.phases and t >= self.phases[-1].end - 1e-9:
            return self.phases[-1].name
        return None

    def instruments_at(self, t: float) -> tuple[str, ...]:
        """Tools visible during the second that holds ``t``."""
        if self.num_seconds == 0:
            return ()
        k = min(max(int(math.floor(t + 1e-9)), 0), self.num_seconds - 1)
        return tuple(name for name, on in zip(self.tools, self.presence[k]) if on)

    def tool_runs(self, tool: str) -> list[tuple[float, float]]:
        """Visits of ``tool`` as ``(start, end)`` seconds, clipped to the duration."""
        if tool not in self.tools or self.num_seconds == 0:
            return []
        col = self.presence[:, self.tools.index(tool)]
        return [(float(a), float(min(b, self.duration))) for a, b in runs(col)]

    def events_at(self, t: float) -> tuple[TimelineEvent, ...]:
        return tuple(e for e in self.events if e.start <= t < e.end)

    def actions_at(self, t: float) -> tuple[ActionSpan, ...]:
        return tuple(a for a in self.actions if a.start <= t < a.end)

    def event_index_label(self, index: int) -> tuple[str, int, int]:
        """``(kind, k, n)``: event ``index`` is the ``k``-th (0-based) of ``n`` events of its kind."""
        kind = self.events[index].kind
        same = [i for i, e in enumerate(self.events) if e.kind == kind]
        return kind, same.index(index), len(same)
