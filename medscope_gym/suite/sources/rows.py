"""Question rows users already have, imported directly as samples (no timeline needed).

- MedVidQA: ``sample_id, question, answer_start_second, answer_end_second, video_length,
  video_id`` (a JSON list, JSON lines or CSV) → temporal-grounding samples.
- The paper's RL rows: ``prompt`` + ``extra_info.video_segment`` ``[s, e]`` or ``frame_time`` ``t``
  (JSON lines; what ``medscope suite export --format rl`` writes) → samples of any answer type.

Videos are matched by id/path under the source folder; their duration and frame rate come from
the file, and a row whose stated length disagrees with the file is reported.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medscope_gym.errors import MedScopeError, SuiteError
from medscope_gym.intervals import parse_interval
from medscope_gym.suite.schema import Sample, option_letter
from medscope_gym.suite.sources.base import LoadedSource, find_videos, probe_video

__all__ = ["is_medvidqa", "is_paper_rows", "load_medvidqa", "load_paper_rows", "read_rows"]

_MEDVIDQA_FIELDS = ("question", "answer_start_second", "answer_end_second", "video_id")
_LENGTH_TOLERANCE_S = 2.0
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.)]\s+(.+?)\s*$", re.MULTILINE)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.json`` list, a ``.jsonl`` file or a ``.csv`` with a header."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None  # JSON lines
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        return []  # one JSON object (a report, a manifest): not rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _row_files(root: Path) -> list[Path]:
    return sorted(
        p for ext in ("*.json", "*.jsonl", "*.csv") for p in root.rglob(ext) if not p.name.startswith(".")
    )


def _first_rows(root: Path) -> list[dict[str, Any]]:
    for path in _row_files(root):
        try:
            rows = read_rows(path)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if rows:
            return rows
    return []


def is_medvidqa(root: str | os.PathLike[str]) -> bool:
    rows = _first_rows(Path(root))
    return bool(rows) and all(k in rows[0] for k in _MEDVIDQA_FIELDS)


def is_paper_rows(root: str | os.PathLike[str]) -> bool:
    rows = _first_rows(Path(root))
    return bool(rows) and isinstance(rows[0].get("extra_info"), dict) and "prompt" in rows[0]


def _readable_row_files(root: Path, out: LoadedSource) -> Iterator[tuple[Path, list[dict]]]:
    """Each row file under ``root`` with its rows; an unreadable file is reported and skipped."""
    for path in _row_files(root):
        try:
            rows = read_rows(path)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            out.error(str(path), f"cannot read rows ({exc})")
            continue
        yield path, rows


class _Probe:
    """Duration and fps per video file, probed once."""

    def __init__(self) -> None:
        self.cache: dict[Path, tuple[float, float] | None] = {}

    def __call__(self, path: Path, where: str, report: LoadedSource) -> tuple[float, float] | None:
        if path not in self.cache:
            try:
                duration, fps, _ = probe_video(path)
                self.cache[path] = (duration, fps)
            except MedScopeError as exc:
                report.error(where, f"cannot open video {path}: {exc}")
                self.cache[path] = None
        return self.cache[path]


def load_medvidqa(root: str | os.PathLike[str]) -> LoadedSource:
    out = LoadedSource(kind="medvidqa")
    root = Path(root)
    videos = find_videos(root)
    probe = _Probe()
    for path, rows in _readable_row_files(root, out):
        for i, row in enumerate(rows):
            where = f"{path} row {i + 1}"
            if not all(k in row for k in _MEDVIDQA_FIELDS):
                out.error(where, f"missing field(s) {', '.join(k for k in _MEDVIDQA_FIELDS if k not in row)}")
                continue
            vid = str(row["video_id"])
            if vid not in videos:
                out.error(where, f"no video file {vid}.* under {root}")
                continue
            probed = probe(videos[vid], where, out)
            if probed is None:
                continue
            duration, fps = probed
            try:
                s, e = float(row["answer_start_second"]), float(row["answer_end_second"])
            except (TypeError, ValueError):
                out.error(where, "answer_start_second/answer_end_second must be numbers")
                continue
            stated = row.get("video_length")
            if stated not in (None, "") and abs(float(stated) - duration) > _LENGTH_TOLERANCE_S:
                out.warning(where, f"video_length {float(stated):g} s but {vid} lasts {duration:.1f} s")
            raw = {
                "id": str(row.get("sample_id", f"{vid}-{i + 1}")),
                "video": str(videos[vid]),
                "duration": duration,
                "fps": fps,
                "question": str(row["question"]).strip(),
                "answer": f"[{s:g}, {e:g}]",
                "answer_type": "interval",
                "task": "temporal_grounding",
                "evidence": [[s, e]],
                "source": "medvidqa",
                "options": None,
            }
            _append(out, raw, where)
    return out


def load_paper_rows(root: str | os.PathLike[str]) -> LoadedSource:
    out = LoadedSource(kind="paper_rows")
    root = Path(root)
    videos = find_videos(root)
    probe = _Probe()
    for path, rows in _readable_row_files(root, out):
        if rows and not isinstance(rows[0].get("extra_info"), dict):
            continue  # another kind of JSON (a suite.jsonl, a report) beside the rows
        for i, row in enumerate(rows):
            where = f"{path} row {i + 1}"
            extra = row.get("extra_info")
            if not isinstance(extra, dict):
                out.error(where, "no 'extra_info' object")
                continue
            video = _row_video(row, extra, path.parent, root, videos)
            if video is None:
                out.error(where, "cannot find the row's video (extra_info.video_path or videos[0])")
                continue
            probed = probe(video, where, out)
            if probed is None:
                continue
            duration, fps = probed
            if "video_segment" in extra:
                seg = extra["video_segment"]
                evidence = [[float(seg[0]), float(seg[1])]]
            elif "frame_time" in extra:
                evidence = [[float(extra["frame_time"])] * 2]
            else:
                out.error(where, "extra_info has neither 'video_segment' nor 'frame_time'")
                continue
            question = extra.get("question") or _prompt_text(row.get("prompt"))
            options = extra.get("options") or _parse_options(question)
            if options and not extra.get("question"):
                question = _OPTION_LINE.sub("", question).strip()
            answer = str((row.get("reward_model") or {}).get("ground_truth", extra.get("answer", "")))
            answer_type = extra.get("answer_type") or (
                "choice" if options else "interval" if parse_interval(answer) else "text"
            )
            raw = {
                "id": str(extra.get("id", extra.get("index", f"{path.stem}-{i + 1}"))),
                "video": str(video),
                "duration": float(extra.get("duration", duration)),
                "fps": fps,
                "question": question,
                "options": list(options) if answer_type == "choice" else None,
                "answer": answer,
                "answer_type": answer_type,
                "task": str(extra.get("task", row.get("ability", "grounded_vqa"))),
                "evidence": evidence,
                "source": str(row.get("data_source", "paper_rows")),
            }
            if abs(raw["duration"] - duration) > _LENGTH_TOLERANCE_S:
                out.warning(where, f"duration {raw['duration']:g} s but the video lasts {duration:.1f} s")
                raw["duration"] = duration
            _append(out, raw, where)
    return out


def _append(out: LoadedSource, raw: dict[str, Any], where: str) -> None:
    try:
        out.samples.append(Sample.from_dict(raw, where=where))
    except SuiteError as exc:
        out.error(where, str(exc).removeprefix(where).lstrip(": ,"))


def _row_video(row: dict, extra: dict, folder: Path, root: Path, videos: dict[str, Path]) -> Path | None:
    candidates = [extra.get("video_path")]
    vids = row.get("videos")
    if isinstance(vids, list) and vids:
        first = vids[0]
        candidates.append(first.get("video") if isinstance(first, dict) else first)
    for cand in candidates:
        if not isinstance(cand, str) or not cand:
            continue
        for base in (folder, root):
            p = (base / cand).resolve()
            if p.is_file() and p.is_relative_to(root.resolve()):
                return p
        if Path(cand).stem in videos:
            return videos[Path(cand).stem]
    return None


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, list):
        parts = []
        for msg in prompt:
            if isinstance(msg, dict) and msg.get("role") == "user":
                content = msg.get("content")
                if isinstance(content, str):
                    parts.append(content)
                elif isinstance(content, list):
                    parts += [
                        c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"
                    ]
        text = "\n".join(parts)
    else:
        text = ""
    return text.replace("<video>", "").replace("<image>", "").strip()


def _parse_options(question: str) -> list[str] | None:
    found = _OPTION_LINE.findall(question)
    if len(found) >= 2 and [f[0] for f in found] == [option_letter(i) for i in range(len(found))]:
        return [f[1] for f in found]
    return None
