"""Cholec80-format annotation files (phase per frame, tools per second) plus our events JSON.

Writers take a :class:`Procedure`; readers take files a user may already have, so they map
columns by header name and name the file, line and column of anything they cannot read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medscope_gym.atomic import atomic_write_text
from medscope_gym.errors import SuiteError
from medscope_gym.synthetic.procedure import CHOLEC80_PHASES, CHOLEC80_TOOLS, EVENT_KINDS, Procedure

__all__ = [
    "EventRecord",
    "ToolAnnotation",
    "read_events_file",
    "read_phase_file",
    "read_tool_file",
    "write_annotations",
    "write_events_file",
    "write_phase_file",
    "write_tool_file",
]


@dataclass(frozen=True)
class ToolAnnotation:
    """A tool file: ``frames[k]`` is the frame of row ``k``; ``presence[k, j]`` is tool ``tools[j]``."""

    frames: np.ndarray  # (rows,) int64
    presence: np.ndarray  # (rows, len(tools)) uint8
    tools: tuple[str, ...] = CHOLEC80_TOOLS

    def column(self, tool: str) -> np.ndarray:
        return self.presence[:, self.tools.index(tool)]


@dataclass(frozen=True)
class EventRecord:
    """One row of ``videoNN-events.json`` (times in seconds, end exclusive in frames)."""

    start: float
    end: float
    kind: str
    instrument: str
    phase: str
    start_frame: int | None = None
    end_frame: int | None = None


def write_annotations(procedure: Procedure, out_dir: str | os.PathLike[str], name: str) -> dict[str, Path]:
    """Write ``name-phase.txt``, ``name-tool.txt`` and ``name-events.json`` into ``out_dir``."""
    out = Path(out_dir)
    paths = {
        "phase": out / f"{name}-phase.txt",
        "tool": out / f"{name}-tool.txt",
        "events": out / f"{name}-events.json",
    }
    write_phase_file(procedure, paths["phase"])
    write_tool_file(procedure, paths["tool"])
    write_events_file(procedure, paths["events"])
    return paths


def write_phase_file(procedure: Procedure, path: str | os.PathLike[str]) -> None:
    """``Frame\\tPhase`` with one row per frame (Cholec80 phase files are at the video's 25 fps)."""
    lines = ["Frame\tPhase"]
    for seg in procedure.phases:
        lines.extend(f"{f}\t{seg.name}" for f in range(seg.start_frame, seg.end_frame))
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_tool_file(procedure: Procedure, path: str | os.PathLike[str]) -> None:
    """``Frame`` plus the seven tool columns, one row per second (Frame = 0, 25, 50, … at 25 fps)."""
    lines = ["\t".join(("Frame", *CHOLEC80_TOOLS))]
    for frame, row in zip(procedure.second_start_frames(), procedure.presence):
        lines.append("\t".join([str(int(frame)), *(str(v) for v in row)]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_events_file(procedure: Procedure, path: str | os.PathLike[str]) -> None:
    """A JSON list of events: start/end seconds (and frames), kind, instrument, phase."""
    atomic_write_text(path, json.dumps([e.to_dict() for e in procedure.events], indent=1) + "\n")


def read_phase_file(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Phase name of every frame, indexed by the ``Frame`` column (which must run 0, 1, 2, …)."""
    header, rows = _read_table(path, required=("Frame", "Phase"))
    fcol, pcol = header.index("Frame"), header.index("Phase")
    phases: list[str] = []
    for lineno, cells in rows:
        frame = _int_cell(path, lineno, "Frame", cells[fcol])
        if frame != len(phases):
            raise SuiteError(
                f"{path}: line {lineno}, column 'Frame': expected frame {len(phases)}, got {frame}"
            )
        phase = cells[pcol]
        if phase not in CHOLEC80_PHASES:
            raise SuiteError(
                f"{path}: line {lineno}, column 'Phase': unknown phase {phase!r}; "
                f"expected one of {', '.join(CHOLEC80_PHASES)}"
            )
        phases.append(phase)
    return tuple(phases)


def read_tool_file(path: str | os.PathLike[str]) -> ToolAnnotation:
    """Read a tool file; columns may come in any order but must be ``Frame`` and the seven tools."""
    header, rows = _read_table(path, required=("Frame", *CHOLEC80_TOOLS))
    for name in header:
        if name not in ("Frame", *CHOLEC80_TOOLS):
            raise SuiteError(
                f"{path}: line 1, column {name!r}: unknown tool; "
                f"expected Frame and {', '.join(CHOLEC80_TOOLS)}"
            )
    cols = [header.index(t) for t in CHOLEC80_TOOLS]
    fcol = header.index("Frame")
    frames = np.empty(len(rows), dtype=np.int64)
    presence = np.empty((len(rows), len(CHOLEC80_TOOLS)), dtype=np.uint8)
    for k, (lineno, cells) in enumerate(rows):
        frames[k] = _int_cell(path, lineno, "Frame", cells[fcol])
        for j, c in enumerate(cols):
            value = cells[c]
            if value not in ("0", "1"):
                raise SuiteError(
                    f"{path}: line {lineno}, column {CHOLEC80_TOOLS[j]!r}: expected 0 or 1, got {value!r}"
                )
            presence[k, j] = value == "1"
    if len(frames) > 1 and np.any(np.diff(frames) <= 0):
        bad = int(np.argmax(np.diff(frames) <= 0)) + 1
        raise SuiteError(f"{path}: line {rows[bad][0]}, column 'Frame': frames must increase")
    return ToolAnnotation(frames=frames, presence=presence)


def read_events_file(path: str | os.PathLike[str]) -> tuple[EventRecord, ...]:
    """Read ``videoNN-events.json``; unknown kinds, instruments or phases are errors."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read events JSON ({exc})") from None
    if not isinstance(raw, list):
        raise SuiteError(f"{path}: expected a JSON list of events")
    allowed = {"kind": EVENT_KINDS, "instrument": CHOLEC80_TOOLS, "phase": CHOLEC80_PHASES}
    out = []
    for i, ev in enumerate(raw):
        where = f"{path}: event {i}"
        if not isinstance(ev, dict):
            raise SuiteError(f"{where}: expected an object")
        for key, names in allowed.items():
            if ev.get(key) not in names:
                raise SuiteError(f"{where}, field {key!r}: unknown value {ev.get(key)!r}")
        start, end = ev.get("start"), ev.get("end")
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (start, end))
        if not numeric or end < start:
            raise SuiteError(
                f"{where}, fields 'start'/'end': need numbers with start <= end, got {start!r}, {end!r}"
            )
        out.append(
            EventRecord(
                float(start),
                float(end),
                ev["kind"],
                ev["instrument"],
                ev["phase"],
                ev.get("start_frame"),
                ev.get("end_frame"),
            )
        )
    return tuple(out)


def _read_table(path: str | os.PathLike[str], required: tuple[str, ...]) -> tuple[list[str], list]:
    """Tab-separated header + rows as ``(line number, cells)``; checks the header names the columns."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read annotation file ({exc.strerror})") from None
    lines = text.splitlines()
    if not lines:
        raise SuiteError(f"{path}: empty annotation file")
    header = [h.strip() for h in lines[0].split("\t")]
    missing = [name for name in required if name not in header]
    if missing:
        raise SuiteError(f"{path}: line 1: missing column(s) {', '.join(missing)}; header is {header!r}")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) != len(header):
            raise SuiteError(
                f"{path}: line {lineno}: expected {len(header)} tab-separated columns, got {len(cells)}"
            )
        rows.append((lineno, cells))
    return header, rows


def _int_cell(path, lineno: int, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SuiteError(
            f"{path}: line {lineno}, column {column!r}: expected an integer, got {value!r}"
        ) from None
