"""Deterministic synthetic cholecystectomy timelines with exact ground truth (see docs/suites.md).

A :class:`Procedure` is the single source of truth that the renderer, the annotation
writers and the question builder all read, so video pixels, Cholec80 files and answers
can never disagree. Everything is drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medscope_gym.errors import ConfigError
from medscope_gym.suite.timeline import CHOLEC80_PHASES, CHOLEC80_TOOLS  # one list of names for all sources

__all__ = [
    "FrameSpan",
    "CHOLEC80_PHASES",
    "CHOLEC80_TOOLS",
    "EVENT_KINDS",
    "EVENT_INSTRUMENTS",
    "EVENT_PHASES",
    "Event",
    "PhaseSegment",
    "Procedure",
    "generate_procedure",
]

EVENT_KINDS: tuple[str, ...] = (
    "bleeding",
    "clip_applied",
    "duct_cut",
    "gallbladder_perforation",
    "irrigation_flush",
    "coagulation",
    "specimen_bagged",
)

# Which instrument is in use during each event kind (weights); a kind with one candidate
# is answerable from its name alone, which the question builder takes into account.
EVENT_INSTRUMENTS: dict[str, dict[str, float]] = {
    "bleeding": {"Hook": 0.4, "Grasper": 0.2, "Scissors": 0.2, "Bipolar": 0.2},
    "clip_applied": {"Clipper": 1.0},
    "duct_cut": {"Scissors": 1.0},
    "gallbladder_perforation": {"Hook": 0.5, "Grasper": 0.3, "Scissors": 0.2},
    "irrigation_flush": {"Irrigator": 1.0},
    "coagulation": {"Bipolar": 0.6, "Hook": 0.4},
    "specimen_bagged": {"SpecimenBag": 1.0},
}
# Event kinds plausible in each phase (weights).
EVENT_PHASES: dict[str, dict[str, float]] = {
    "Preparation": {"bleeding": 0.6, "coagulation": 0.4},
    "CalotTriangleDissection": {
        "bleeding": 0.4,
        "coagulation": 0.3,
        "gallbladder_perforation": 0.15,
        "irrigation_flush": 0.15,
    },
    "ClippingCutting": {"clip_applied": 0.5, "duct_cut": 0.3, "bleeding": 0.2},
    "GallbladderDissection": {
        "bleeding": 0.3,
        "gallbladder_perforation": 0.3,
        "coagulation": 0.2,
        "irrigation_flush": 0.2,
    },
    "GallbladderPackaging": {"specimen_bagged": 0.7, "gallbladder_perforation": 0.3},
    "CleaningCoagulation": {"irrigation_flush": 0.4, "coagulation": 0.4, "bleeding": 0.2},
    "GallbladderRetraction": {"bleeding": 0.5, "irrigation_flush": 0.5},
}

# Relative phase lengths (roughly the Cholec80 mean durations in seconds).
_PHASE_WEIGHTS = np.array([125.0, 954.0, 168.0, 857.0, 98.0, 178.0, 83.0])
# Per phase, the share of seconds each tool is visible (CHOLEC80_TOOLS order).
_TOOL_OCCUPANCY = np.array(
    [
        [0.60, 0.05, 0.30, 0.02, 0.00, 0.05, 0.00],  # Preparation
        [0.85, 0.10, 0.85, 0.03, 0.02, 0.05, 0.00],  # CalotTriangleDissection
        [0.80, 0.05, 0.10, 0.40, 0.60, 0.03, 0.00],  # ClippingCutting
        [0.85, 0.10, 0.80, 0.03, 0.01, 0.08, 0.00],  # GallbladderDissection
        [0.70, 0.02, 0.05, 0.02, 0.00, 0.05, 0.80],  # GallbladderPackaging
        [0.60, 0.50, 0.10, 0.02, 0.00, 0.60, 0.02],  # CleaningCoagulation
        [0.80, 0.05, 0.05, 0.02, 0.00, 0.10, 0.60],  # GallbladderRetraction
    ]
)
_MEAN_DWELL_S = 12.0  # mean visit length of a tool, seconds
_EVENT_MIN_S, _EVENT_MAX_S = 2.0, 5.0
_EVENT_GAP_MIN_S, _EVENT_GAP_MAX_S = 20.0, 60.0
_MIN_PHASE_S = 8.0  # shortest phase of a full video; shorter videos keep a prefix of the phases


class FrameSpan:
    """Seconds of a half-open frame range ``[start_frame, end_frame)`` at ``fps`` (a dataclass mixin)."""

    start_frame: int
    end_frame: int
    fps: float

    @property
    def start(self) -> float:
        return self.start_frame / self.fps

    @property
    def end(self) -> float:
        return self.end_frame / self.fps


@dataclass(frozen=True)
class PhaseSegment(FrameSpan):
    """One phase as the half-open frame range ``[start_frame, end_frame)``."""

    name: str
    start_frame: int
    end_frame: int
    fps: float


@dataclass(frozen=True)
class Event(FrameSpan):
    """A brief decisive moment, visible in frames ``[start_frame, end_frame)`` only."""

    kind: str
    start_frame: int
    end_frame: int
    fps: float
    instrument: str
    phase: str

    def to_dict(self) -> dict[str, object]:
        return {
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "kind": self.kind,
            "instrument": self.instrument,
            "phase": self.phase,
        }


@dataclass(frozen=True)
class Procedure:
    """A whole synthetic video's ground truth: phases, per-second instruments and events.

    ``presence[k]`` holds the 0/1 visibility of each of :data:`CHOLEC80_TOOLS` during
    second ``k``, i.e. frames ``f`` with ``floor(f / fps) == k`` (Cholec80 annotates tools at 1 fps).
    """

    seed: int
    fps: float
    num_frames: int
    phases: tuple[PhaseSegment, ...]
    presence: tuple[tuple[int, ...], ...]
    events: tuple[Event, ...]

    @property
    def duration(self) -> float:
        """Length in seconds, ``num_frames / fps``."""
        return self.num_frames / self.fps

    @property
    def num_seconds(self) -> int:
        return len(self.presence)

    def frame_at(self, t: float) -> int:
        """Index of the frame shown at time ``t`` (clamped to the video)."""
        return min(max(int(math.floor(t * self.fps + 1e-9)), 0), self.num_frames - 1)

    def second_of_frame(self, frame: int) -> int:
        return min(int(math.floor(frame / self.fps + 1e-9)), self.num_seconds - 1)

    def phase_at_frame(self, frame: int) -> str:
        for seg in self.phases:
            if frame < seg.end_frame:
                return seg.name
        return self.phases[-1].name

    def phase_at(self, t: float) -> str:
        """Phase name at time ``t`` seconds."""
        return self.phase_at_frame(self.frame_at(t))

    def instruments_at(self, t: float) -> tuple[str, ...]:
        """Instruments visible at time ``t`` seconds, in :data:`CHOLEC80_TOOLS` order."""
        row = self.presence[self.second_of_frame(self.frame_at(t))]
        return tuple(name for name, on in zip(CHOLEC80_TOOLS, row) if on)

    def phase_index_per_frame(self) -> np.ndarray:
        """``(num_frames,)`` int array of indices into :data:`CHOLEC80_PHASES`."""
        out = np.empty(self.num_frames, dtype=np.int64)
        for seg in self.phases:
            out[seg.start_frame : seg.end_frame] = CHOLEC80_PHASES.index(seg.name)
        return out

    def presence_array(self) -> np.ndarray:
        """``(num_seconds, 7)`` uint8 array of :attr:`presence`."""
        return np.asarray(self.presence, dtype=np.uint8).reshape(self.num_seconds, len(CHOLEC80_TOOLS))

    def second_start_frames(self) -> np.ndarray:
        """First frame of every second: the ``Frame`` column of a Cholec80 tool file (0, 25, 50, ...)."""
        return np.ceil(np.arange(self.num_seconds) * self.fps - 1e-9).astype(np.int64)

    def events_of_kind(self, kind: str) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.kind == kind)


def generate_procedure(seed: int, duration_s: float, fps: float = 25.0) -> Procedure:
    """Draw a procedure timeline of ``duration_s`` seconds; the same seed gives the same timeline."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    num_frames = int(round(duration_s * fps))
    if num_frames < 2 * fps:
        raise ConfigError(f"duration_s must be at least 2 s, got {duration_s!r}")
    rng = np.random.default_rng(seed)
    phases = _draw_phases(rng, num_frames, float(fps))
    num_seconds = int(math.ceil(num_frames / fps - 1e-9))
    phase_of_second = _phase_of_seconds(phases, num_seconds, float(fps))
    presence = _draw_presence(rng, phase_of_second)
    events = _draw_events(rng, phases, num_frames, float(fps))
    for ev in events:  # the event's instrument is on screen for every second the event touches
        first = int(math.floor(ev.start_frame / fps + 1e-9))
        last = int(math.floor((ev.end_frame - 1) / fps + 1e-9))
        presence[first : last + 1, CHOLEC80_TOOLS.index(ev.instrument)] = 1
    return Procedure(
        seed=int(seed),
        fps=float(fps),
        num_frames=num_frames,
        phases=phases,
        presence=tuple(tuple(int(v) for v in row) for row in presence),
        events=events,
    )


def _draw_phases(rng: np.random.Generator, num_frames: int, fps: float) -> tuple[PhaseSegment, ...]:
    duration = num_frames / fps
    n = 7 if duration >= 60.0 else max(1, min(7, int(duration // _MIN_PHASE_S)))
    min_s = min(_MIN_PHASE_S, 0.5 * duration / n)
    weights = _PHASE_WEIGHTS[:n] / _PHASE_WEIGHTS[:n].sum()
    shares = rng.dirichlet(weights * 12.0 + 0.5)
    lengths = min_s + shares * (duration - n * min_s)
    bounds = np.round(np.concatenate([[0.0], np.cumsum(lengths)]) * fps).astype(np.int64)
    bounds[-1] = num_frames
    for i in range(1, n):  # keep every phase at least one frame long after rounding
        bounds[i] = max(bounds[i], bounds[i - 1] + 1)
    return tuple(PhaseSegment(CHOLEC80_PHASES[i], int(bounds[i]), int(bounds[i + 1]), fps) for i in range(n))


def _phase_of_seconds(phases: tuple[PhaseSegment, ...], num_seconds: int, fps: float) -> np.ndarray:
    """Phase index of each second, taken at the second's middle frame."""
    num_frames = phases[-1].end_frame
    mids = np.minimum(((np.arange(num_seconds) + 0.5) * fps).astype(np.int64), num_frames - 1)
    ends = np.array([p.end_frame for p in phases])
    return np.searchsorted(ends, mids, side="right")


def _draw_presence(rng: np.random.Generator, phase_of_second: np.ndarray) -> np.ndarray:
    """Two-state Markov chain per tool whose stationary occupancy follows the current phase."""
    n = len(phase_of_second)
    occupancy = _TOOL_OCCUPANCY[phase_of_second]  # (n, 7)
    p_leave = 1.0 / _MEAN_DWELL_S
    p_enter = np.minimum(1.0, occupancy / np.maximum(1e-6, 1.0 - occupancy) * p_leave)
    draws = rng.random((n, len(CHOLEC80_TOOLS)))
    out = np.zeros((n, len(CHOLEC80_TOOLS)), dtype=np.uint8)
    state = draws[0] < occupancy[0]
    out[0] = state
    for k in range(1, n):
        state = np.where(state, draws[k] >= p_leave, draws[k] < p_enter[k])
        state &= occupancy[k] > 0  # a tool never seen in this phase leaves at once
        out[k] = state
    return out


def _draw_events(
    rng: np.random.Generator, phases: tuple[PhaseSegment, ...], num_frames: int, fps: float
) -> tuple[Event, ...]:
    """One event per slot of 20–60 s, placed wholly inside one phase; slots never overlap."""
    duration = num_frames / fps
    mean_gap = rng.uniform(_EVENT_GAP_MIN_S, _EVENT_GAP_MAX_S)
    n_slots = max(1, int(round(duration / mean_gap)))
    slot_frames = num_frames / n_slots
    margin = int(round(fps))  # keep one second between an event and its slot's edges
    events: list[Event] = []
    for s in range(n_slots):
        lo, hi = int(round(s * slot_frames)) + margin, int(round((s + 1) * slot_frames)) - margin
        for _ in range(20):
            length = int(round(rng.uniform(_EVENT_MIN_S, _EVENT_MAX_S) * fps))
            if hi - lo < length:
                break
            start = int(rng.integers(lo, hi - length + 1))
            seg = next(p for p in phases if start < p.end_frame)
            if start + length > seg.end_frame:
                continue  # straddles a phase boundary: draw again
            kinds = EVENT_PHASES[seg.name]
            kind = str(rng.choice(list(kinds), p=_normalised(kinds.values())))
            tools = EVENT_INSTRUMENTS[kind]
            instrument = str(rng.choice(list(tools), p=_normalised(tools.values())))
            events.append(Event(kind, start, start + length, fps, instrument, seg.name))
            break
    return tuple(events)


def _normalised(values) -> np.ndarray:
    arr = np.asarray(list(values), dtype=np.float64)
    return arr / arr.sum()
