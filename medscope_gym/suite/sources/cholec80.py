"""Cholec80-format folders: ``videoNN-phase.txt`` (per frame), ``videoNN-tool.txt`` (per second).

Columns and labels are matched by name (any column order, CholecT50/Cholec80 spellings of the
phases), so a user's export with reordered columns still loads. The synthetic procedures write
the same files plus ``videoNN-events.json`` (brief events), which this loader also reads.
Files may sit anywhere under the folder (``phase_annotations/``, ``tool_annotations/``,
``videos/`` as in the Cholec80 release, or side by side).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from medscope_gym.errors import MedScopeError
from medscope_gym.suite.sources.base import LoadedSource, SourceVideo, find_videos, probe_video
from medscope_gym.suite.timeline import (
    CHOLEC80_PHASES,
    CHOLEC80_TOOLS,
    PhaseSpan,
    Timeline,
    TimelineEvent,
    canonical_label,
)

__all__ = ["DEFAULT_FPS", "FRAME_TOLERANCE_S", "is_cholec80", "load_cholec80", "read_timeline"]

DEFAULT_FPS = 25.0
# Annotation and video lengths may differ by this much (container rounding); more drops the video.
FRAME_TOLERANCE_S = 1.0


def is_cholec80(root: str | os.PathLike[str]) -> bool:
    return any(Path(root).rglob("*-phase.txt"))


def load_cholec80(root: str | os.PathLike[str], *, fps: float | None = None) -> LoadedSource:
    """Every ``*-phase.txt`` under ``root`` with its tool file, events file and video.

    ``fps`` is the phase files' frame rate when there is no video to read it from (Cholec80: 25).
    """
    out = LoadedSource(kind="cholec80")
    root = Path(root)
    videos = find_videos(root)
    tool_files = {p.name.removesuffix("-tool.txt"): p for p in root.rglob("*-tool.txt")}
    event_files = {p.name.removesuffix("-events.json"): p for p in root.rglob("*-events.json")}
    for phase_file in sorted(root.rglob("*-phase.txt")):
        name = phase_file.name.removesuffix("-phase.txt")
        if name not in videos:
            out.error(str(phase_file), f"no video file {name}.* under {root}")
            continue
        try:
            duration, video_fps, num_frames = probe_video(videos[name])
        except MedScopeError as exc:
            out.error(str(videos[name]), f"cannot open the video: {exc}")
            continue
        timeline = read_timeline(
            name,
            phase_file,
            tool_files.get(name),
            event_files.get(name),
            fps=video_fps or fps or DEFAULT_FPS,
            num_frames=num_frames,
            report=out,
        )
        if timeline is not None:
            out.videos.append(SourceVideo(name, videos[name], timeline))
    return out


def read_timeline(
    name: str,
    phase_file: Path,
    tool_file: Path | None,
    events_file: Path | None,
    *,
    fps: float,
    num_frames: int | None,
    report: LoadedSource,
) -> Timeline | None:
    """One video's timeline; problems go to ``report`` and an unusable video gives None."""
    table = _read_table(phase_file, ("Frame", "Phase"), report)
    if table is None:
        return None
    header, rows = table
    fcol, pcol = header.index("Frame"), header.index("Phase")
    labels: list[str] = []
    unknown: dict[str, int] = {}
    for lineno, cells in rows:
        frame = _int(cells[fcol])
        if frame != len(labels):
            report.error(
                str(phase_file),
                f"line {lineno}, column 'Frame': expected frame {len(labels)}, got {cells[fcol]!r}",
            )
            return None
        label = canonical_label(cells[pcol], CHOLEC80_PHASES)
        if label is None:
            unknown.setdefault(cells[pcol], lineno)
            label = "?"
        labels.append(label)
    if unknown:
        listed = ", ".join(f"{k!r} (first on line {v})" for k, v in unknown.items())
        report.error(
            str(phase_file), f"unknown phase label(s) {listed}; expected {', '.join(CHOLEC80_PHASES)}"
        )
        return None
    if not labels:
        report.error(str(phase_file), "no rows")
        return None
    n = len(labels)
    if num_frames is not None and abs(num_frames - n) > FRAME_TOLERANCE_S * fps:
        report.error(
            str(phase_file),
            f"{n} phase rows ({n / fps:.1f} s at {fps:g} fps) but the video has "
            f"{num_frames} frames ({num_frames / fps:.1f} s)",
        )
        return None
    if num_frames is not None and num_frames != n:
        report.warning(
            str(phase_file),
            f"{n} phase rows but the video has {num_frames} frames; "
            "the last phase is extended/cut to the video",
        )
    total = num_frames if num_frames is not None else n
    duration = total / fps
    phases = _phase_spans(labels, fps, duration)
    seconds = int(math.ceil(duration - 1e-9))
    presence = np.zeros((seconds, len(CHOLEC80_TOOLS)), dtype=np.uint8)
    if tool_file is not None:
        if not _read_tools(tool_file, fps, presence, report):
            return None
    else:
        report.warning(
            str(phase_file), f"no {name}-tool.txt: instrument questions are skipped for this video"
        )
    events = _read_events(events_file, duration, report) if events_file is not None else ()
    if events is None:
        return None
    return Timeline(
        video_id=name,
        duration=duration,
        fps=fps,
        phases=phases,
        presence=presence,
        events=events,
        source="cholec80" if events_file is None else "synthetic",
    )


def _phase_spans(labels: list[str], fps: float, duration: float) -> tuple[PhaseSpan, ...]:
    arr = np.asarray(labels)
    cuts = np.flatnonzero(arr[1:] != arr[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(arr)]])
    spans = [PhaseSpan(str(arr[s]), s / fps, e / fps) for s, e in zip(starts, ends)]
    last = spans[-1]
    spans[-1] = PhaseSpan(last.name, last.start, duration)
    return tuple(spans)


def _read_tools(path: Path, fps: float, presence: np.ndarray, report: LoadedSource) -> bool:
    table = _read_table(path, ("Frame",), report)
    if table is None:
        return False
    header, rows = table
    columns: dict[int, int] = {}
    for i, col in enumerate(header):
        if col == "Frame":
            continue
        tool = canonical_label(col, CHOLEC80_TOOLS)
        if tool is None:
            report.error(
                str(path), f"line 1: unknown tool column {col!r}; expected {', '.join(CHOLEC80_TOOLS)}"
            )
            return False
        columns[i] = CHOLEC80_TOOLS.index(tool)
    missing = set(range(len(CHOLEC80_TOOLS))) - set(columns.values())
    if missing:
        report.warning(
            str(path),
            f"no column for {', '.join(CHOLEC80_TOOLS[j] for j in sorted(missing))}: "
            "treated as never present",
        )
    fcol = header.index("Frame")
    seconds = presence.shape[0]
    if abs(len(rows) - seconds) > FRAME_TOLERANCE_S + 1:
        report.error(str(path), f"{len(rows)} tool rows (one per second) but the video lasts {seconds} s")
        return False
    for lineno, cells in rows:
        frame = _int(cells[fcol])
        if frame is None or frame < 0:
            report.error(
                str(path), f"line {lineno}, column 'Frame': expected a frame number, got {cells[fcol]!r}"
            )
            return False
        k = int(round(frame / fps))
        if k >= seconds:
            continue
        for i, j in columns.items():
            if cells[i] not in ("0", "1"):
                report.error(
                    str(path), f"line {lineno}, column {header[i]!r}: expected 0 or 1, got {cells[i]!r}"
                )
                return False
            presence[k, j] = cells[i] == "1"
    return True


def _read_events(path: Path, duration: float, report: LoadedSource) -> tuple[TimelineEvent, ...] | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        report.error(str(path), f"cannot read events JSON ({exc})")
        return None
    if not isinstance(raw, list):
        report.error(str(path), "expected a JSON list of events")
        return None
    events = []
    for i, ev in enumerate(raw):
        ok = (
            isinstance(ev, dict)
            and isinstance(ev.get("kind"), str)
            and all(
                isinstance(ev.get(k), (int, float)) and not isinstance(ev.get(k), bool)
                for k in ("start", "end")
            )
        )
        if not ok or not 0 <= ev["start"] < ev["end"] <= duration + 1e-6:
            report.error(str(path), f"event {i}: need kind and 0 <= start < end <= {duration:g}, got {ev!r}")
            return None
        instrument = canonical_label(str(ev.get("instrument", "")), CHOLEC80_TOOLS)
        phase = canonical_label(str(ev.get("phase", "")), CHOLEC80_PHASES)
        events.append(TimelineEvent(ev["kind"], float(ev["start"]), float(ev["end"]), instrument, phase))
    return tuple(sorted(events, key=lambda e: e.start))


def _read_table(path: Path, required: tuple[str, ...], report: LoadedSource):
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        report.error(str(path), f"cannot read ({exc.strerror})")
        return None
    if not lines:
        report.error(str(path), "empty file")
        return None
    header = [h.strip() for h in lines[0].split("\t")]
    missing = [c for c in required if c not in header]
    if missing:
        report.error(str(path), f"line 1: missing column(s) {', '.join(missing)}; header is {header!r}")
        return None
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) != len(header):
            report.error(
                str(path), f"line {lineno}: expected {len(header)} tab-separated columns, got {len(cells)}"
            )
            return None
        rows.append((lineno, cells))
    return header, rows


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None
