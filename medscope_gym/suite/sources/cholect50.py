"""CholecT50 per-video JSON: 1 fps frames, each with instrument–verb–target triplets and the phase.

Layout read (the CholecT50 release): ``{"video": id, "fps": 1, "num_frames": n,
"categories": {"instrument"|"verb"|"target"|"triplet"|"phase": {id: name}},
"annotations": {frame: [[triplet, instrument, conf, x, y, w, h, verb, target, conf, x, y, w, h, phase],
...]}}``. Ids are turned into names through the file's own ``categories`` (never by position in
a list), −1 means "none", and the phase is the last value of a vector.
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
    ActionSpan,
    PhaseSpan,
    Timeline,
    canonical_label,
    runs,
)

__all__ = ["INSTRUMENT_INDEX", "TARGET_INDEX", "VERB_INDEX", "is_cholect50", "load_cholect50"]

INSTRUMENT_INDEX, VERB_INDEX, TARGET_INDEX = 1, 7, 8
_TOLERANCE_S = 2.0


def _is_t50(raw: object) -> bool:
    return isinstance(raw, dict) and isinstance(raw.get("categories"), dict) and "annotations" in raw


def is_cholect50(root: str | os.PathLike[str]) -> bool:
    for path in Path(root).rglob("*.json"):
        try:
            return _is_t50(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue
    return False


def load_cholect50(root: str | os.PathLike[str]) -> LoadedSource:
    """Every CholecT50 JSON under ``root`` matched to a video named like it (``VID01`` or ``video01``)."""
    out = LoadedSource(kind="cholect50")
    root = Path(root)
    videos = find_videos(root)
    for path in sorted(root.rglob("*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            out.error(str(path), f"cannot read JSON ({exc})")
            continue
        if not _is_t50(raw):
            continue
        name = path.stem
        video = videos.get(name) or videos.get(_cholec80_name(name))
        if video is None:
            out.error(str(path), f"no video named {name}.* (or {_cholec80_name(name)}.*) under {root}")
            continue
        try:
            duration, fps, _ = probe_video(video)
        except MedScopeError as exc:
            out.error(str(video), f"cannot open the video: {exc}")
            continue
        timeline = _timeline(name, raw, duration, fps, str(path), out)
        if timeline is not None:
            out.videos.append(SourceVideo(name, video, timeline))
    return out


def _cholec80_name(name: str) -> str:
    digits = "".join(c for c in name if c.isdigit())
    return f"video{int(digits):02d}" if digits else name


def _categories(raw: dict, key: str, where: str, report: LoadedSource) -> dict[int, str] | None:
    table = raw["categories"].get(key)
    if not isinstance(table, dict):
        report.error(where, f"categories has no {key!r} table")
        return None
    try:
        return {int(k): str(v) for k, v in table.items()}
    except (TypeError, ValueError):
        report.error(where, f"categories[{key!r}] keys must be integer ids")
        return None


def _timeline(name: str, raw: dict, duration: float, fps: float, where: str, report: LoadedSource):
    cats = {k: _categories(raw, k, where, report) for k in ("instrument", "verb", "target", "phase")}
    if any(v is None for v in cats.values()):
        return None
    rate = float(raw.get("fps", 1) or 1)
    ann = raw["annotations"]
    if not isinstance(ann, dict):
        report.error(where, "'annotations' must map frame numbers to lists of vectors")
        return None
    frames = sorted(int(k) for k in ann)
    declared = raw.get("num_frames")
    expected = int(math.ceil(duration * rate - 1e-9))
    count = (frames[-1] + 1) if frames else 0
    if isinstance(declared, int) and declared != count and declared != len(frames):
        report.warning(where, f"num_frames says {declared} but annotations hold {len(frames)} frames")
    if abs(count - expected) > _TOLERANCE_S * rate:
        report.error(
            where,
            f"annotations cover {count} frames at {rate:g} fps ({count / rate:.1f} s) but the "
            f"video lasts {duration:.1f} s",
        )
        return None
    tool_of: dict[int, str] = {}
    phase_of: dict[int, str] = {}
    for table, allowed, mapping, label in (
        (cats["instrument"], CHOLEC80_TOOLS, tool_of, "instrument"),
        (cats["phase"], CHOLEC80_PHASES, phase_of, "phase"),
    ):
        for i, text in table.items():
            canon = canonical_label(text, allowed)
            if canon is None and text.casefold() not in ("null_instrument", "null"):
                report.error(
                    where,
                    f"unknown {label} label {text!r} (id {i}); expected names like {', '.join(allowed)}",
                )
                return None
            if canon is not None:
                mapping[i] = canon
    seconds = expected
    presence = np.zeros((seconds, len(CHOLEC80_TOOLS)), dtype=np.uint8)
    phase_idx = np.full(seconds, -1, dtype=np.int64)
    triplets: dict[tuple[str, str, str], np.ndarray] = {}
    for f in frames:
        k = int(math.floor(f / rate + 1e-9))
        if k >= seconds:
            continue
        vectors = ann[str(f)] if str(f) in ann else ann[f]
        for vec in vectors:
            if not isinstance(vec, list) or len(vec) < TARGET_INDEX + 2:
                report.error(where, f"frame {f}: expected vectors of 15 values, got {vec!r}")
                return None
            ph = int(vec[-1])
            if ph >= 0:
                if ph not in phase_of:
                    report.error(where, f"frame {f}: phase id {ph} is not in categories")
                    return None
                phase_idx[k] = CHOLEC80_PHASES.index(phase_of[ph])
            tool, verb, target = int(vec[INSTRUMENT_INDEX]), int(vec[VERB_INDEX]), int(vec[TARGET_INDEX])
            if tool < 0 or tool not in tool_of:
                continue
            presence[k, CHOLEC80_TOOLS.index(tool_of[tool])] = 1
            vname, tname = cats["verb"].get(verb, "null_verb"), cats["target"].get(target, "null_target")
            if verb < 0 or target < 0 or vname.startswith("null") or tname.startswith("null"):
                continue
            key = (tool_of[tool], vname, tname)
            triplets.setdefault(key, np.zeros(seconds, dtype=bool))[k] = True
    if (phase_idx < 0).all():
        report.error(where, "no frame has a phase")
        return None
    # Unannotated seconds take the previous phase (the first ones the next), so spans tile the video.
    filled = phase_idx.copy()
    for k in range(1, seconds):
        if filled[k] < 0:
            filled[k] = filled[k - 1]
    first = int(filled[filled >= 0][0])
    filled[filled < 0] = first
    cuts = np.flatnonzero(filled[1:] != filled[:-1]) + 1
    starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [seconds]])
    phases = tuple(
        PhaseSpan(CHOLEC80_PHASES[filled[s]], float(s), float(min(e, duration))) for s, e in zip(starts, ends)
    )
    actions = sorted(
        (
            ActionSpan(tool, verb, target, float(a), float(min(b, duration)))
            for (tool, verb, target), mask in triplets.items()
            for a, b in runs(mask)
        ),
        key=lambda a: (a.start, a.label),
    )
    return Timeline(
        video_id=name,
        duration=duration,
        fps=fps,
        phases=phases,
        presence=presence,
        actions=tuple(actions),
        source="cholect50",
    )
