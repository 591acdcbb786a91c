"""Export a suite for trainers: the paper's RL rows and Hugging Face chat SFT records.

- RL rows (``rl_{split}.jsonl``): ``data_source``, ``prompt`` (the env's reset text as a user
  message), ``videos``, ``ability`` (task), ``reward_model.ground_truth`` and ``extra_info`` with
  ``video_segment`` [s, e] (or ``frame_time`` t for a moment) — the shape the paper's GRPO code
  reads, and what :func:`medscope_gym.suite.sources.load_paper_rows` imports back.
- SFT records (``sft_{split}.jsonl``): ``messages`` in HF content-block form, one assistant
  message per reference-trajectory turn; frames are placeholders (``{"type": "video", "video":
  path, "timestamps": [...]}`` / ``{"type": "image", "image": path, "timestamp": t}``) naming the
  exact frames the env returns, so a loader decodes them with any backend.
Video paths are written relative to the export folder.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from medscope_gym.atomic import atomic_write_text
from medscope_gym.chat import tool_response
from medscope_gym.errors import SuiteError
from medscope_gym.intervals import is_moment
from medscope_gym.prompts import question_text
from medscope_gym.protocol import SYSTEM_PROMPT
from medscope_gym.suite.schema import SPLITS, Sample
from medscope_gym.suite.suite import Suite
from medscope_gym.tools import ToolConfig, sample_times

__all__ = ["EXPORT_FORMATS", "export_suite", "rl_row", "sft_record"]

EXPORT_FORMATS: tuple[str, ...] = ("rl", "sft")


def _question_text(sample: Sample) -> str:
    """The exact reset text of the env for this sample."""
    return question_text(sample, sample.duration)


def rl_row(sample: Sample, video_path: str) -> dict[str, Any]:
    """One RL row in the paper's layout."""
    extra: dict[str, Any] = {
        "id": sample.id,
        "question": sample.question,
        "options": list(sample.options) if sample.options else None,
        "answer": sample.answer,
        "answer_type": sample.answer_type,
        "task": sample.task,
        "video_path": video_path,
        "duration": sample.duration,
        "split": sample.split,
        "evidence": [list(w) for w in sample.evidence],
    }
    first = sample.evidence[0]
    if len(sample.evidence) == 1 and is_moment(first):
        extra["frame_time"] = first[0]
    else:
        extra["video_segment"] = [min(w[0] for w in sample.evidence), max(w[1] for w in sample.evidence)]
    return {
        "data_source": sample.source,
        "prompt": [{"role": "user", "content": "<video>\n" + _question_text(sample)}],
        "videos": [{"video": video_path}],
        "ability": sample.task,
        "reward_model": {"style": "rule", "ground_truth": sample.answer},
        "extra_info": extra,
    }


def sft_record(sample: Sample, video_path: str, tools: ToolConfig | None = None) -> dict[str, Any] | None:
    """Chat messages of the sample's reference trajectory (None when it has none)."""
    if not sample.trajectory:
        return None
    tools = tools or ToolConfig()
    n = max(1, int(round(sample.duration * sample.fps)))
    grid = sample_times(0.0, sample.duration, tools.preview_fps, tools.preview_max_frames)
    preview = sorted({min(int(t * sample.fps + 1e-9), n - 1) / sample.fps for t in grid})
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "video",
                    "video": video_path,
                    "video_start": 0.0,
                    "video_end": sample.duration,
                    "timestamps": preview,
                },
                {"type": "text", "text": _question_text(sample)},
            ],
        },
    ]
    for turn in sample.trajectory:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": turn["action"]}]})
        stamps = turn.get("timestamps")
        if not stamps:
            continue
        args = turn.get("arguments", {})
        if turn.get("tool") == "crop_video":
            end = min(float(args["end_time"]), sample.duration)
            block = {
                "type": "video",
                "video": video_path,
                "video_start": float(args["start_time"]),
                "video_end": end,
                "timestamps": stamps,
            }
            text = (
                f"crop_video [{float(args['start_time']):.1f} s, {end:.1f} s]: {len(stamps)} frames at "
                f"{', '.join(f'{t:.1f}' for t in stamps[:3])}{' …' if len(stamps) > 3 else ''} s."
            )
            content = [block]
        else:
            content = [{"type": "image", "image": video_path, "timestamp": t} for t in stamps]
            text = (
                f"get_frame {float(args['timestamp']):.2f} s: {len(stamps)} frames at "
                f"{', '.join(f'{t:.2f}' for t in stamps)} s."
            )
        content.append({"type": "text", "text": tool_response(text)})
        messages.append({"role": "user", "content": content})
    return {
        "id": sample.id,
        "split": sample.split,
        "task": sample.task,
        "messages": messages,
        "reward": sample.trajectory[-1].get("reward"),
    }


def export_suite(
    suite: Suite,
    out: str | os.PathLike[str],
    formats: tuple[str, ...] = EXPORT_FORMATS,
    splits: tuple[str, ...] = SPLITS,
) -> dict[str, int]:
    """Write one JSONL per format and split into ``out``; returns the row count per file name."""
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise SuiteError(
            f"unknown export format(s) {', '.join(unknown)}; choose from {', '.join(EXPORT_FORMATS)}"
        )
    out = Path(out)
    counts: Counter[str] = Counter()
    rows: dict[str, list[str]] = {}
    for s in suite:
        if s.split not in splits:
            continue
        video = os.path.relpath(suite.video_path(s), out.resolve())
        if "rl" in formats:
            rows.setdefault(f"rl_{s.split}.jsonl", []).append(
                json.dumps(rl_row(s, video), ensure_ascii=False)
            )
        if "sft" in formats:
            record = sft_record(s, video)
            if record is not None:
                rows.setdefault(f"sft_{s.split}.jsonl", []).append(json.dumps(record, ensure_ascii=False))
    for name, lines in rows.items():
        atomic_write_text(out / name, "\n".join(lines) + "\n")
        counts[name] = len(lines)
    return dict(counts)
