"""Evaluation metrics over finished episodes (the paper's grounding and grounded-VQA tables).

Grounding: R@0.3 / R@0.5 / R@0.7 and mIoU of predicted intervals. Grounded VQA: accuracy and the mIoU of
what the agent inspected. Plus cost: tool calls, frames seen and turns per episode. All values are
fractions in [0, 1] (not percentages) or means; a metric with no episode to average over is None, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from medscope_gym.intervals import Interval, best_iou, contains, is_moment

__all__ = [
    "RECALL_THRESHOLDS",
    "EpisodeRecord",
    "evidence_recall",
    "format_table",
    "summarise",
    "summarise_by_task",
]

RECALL_THRESHOLDS = (0.3, 0.5, 0.7)
_EPS = 1e-12  # IoU a rounding error below a threshold still counts, as in the rewards


@dataclass
class EpisodeRecord:
    """What evaluation keeps of one finished episode."""

    sample_id: str
    task: str
    accuracy: float
    predicted_interval: Interval | None  # the parsed answer, for interval questions
    inspected_interval: Interval | None  # the last crop: the evidence its reward scores
    evidence: tuple[Interval, ...]
    tool_calls: int
    frames_seen: int
    turns: int
    reward: float
    format_ok: bool


def _mean(values: Sequence[float]) -> float | None:
    return float(math.fsum(values) / len(values)) if values else None


def _inspected_iou(record: EpisodeRecord) -> float:
    """IoU of the inspected hull vs the evidence windows; containment (1/0) when all evidence is moments."""
    inspected = record.inspected_interval
    if inspected is None or not record.evidence:
        return 0.0
    if any(not is_moment(w) for w in record.evidence):
        return best_iou(inspected, record.evidence)
    return 1.0 if any(contains(inspected, m[0]) for m in record.evidence) else 0.0


def evidence_recall(records: Sequence[EpisodeRecord], threshold: float) -> float | None:
    """Share of episodes whose last crop reaches IoU >= ``threshold`` with the evidence (for evidence
    that is all moments: the crop contains one); an episode without a crop is a miss."""
    if not records:
        return None
    return _mean([1.0 if _inspected_hit(r, threshold) else 0.0 for r in records])


def _inspected_hit(record: EpisodeRecord, threshold: float) -> bool:
    crop = record.inspected_interval
    if crop is None or not record.evidence:
        return False
    if best_iou(crop, record.evidence) >= threshold - _EPS:
        return True
    return any(is_moment(w) and contains(crop, w[0]) for w in record.evidence)


def summarise(records: Sequence[EpisodeRecord]) -> dict[str, float | None]:
    """Means over episodes; grounding metrics over the episodes that predicted an interval.

    Keys: episodes, accuracy, grounded (episodes with a predicted interval), R@0.3, R@0.5, R@0.7, mIoU,
    evidence_mIoU, evidence_R@0.3/0.5/0.7 (over all episodes), tool_calls, frames_seen, turns, reward,
    format_rate.
    """
    n = len(records)
    ious = [best_iou(r.predicted_interval, r.evidence) for r in records if r.predicted_interval is not None]
    out: dict[str, float | None] = {
        "episodes": n,
        "accuracy": _mean([float(r.accuracy) for r in records]),
        "grounded": len(ious),
    }
    for k in RECALL_THRESHOLDS:
        out[f"R@{k}"] = _mean([1.0 if iou >= k - _EPS else 0.0 for iou in ious])
    out["mIoU"] = _mean(ious)
    out["evidence_mIoU"] = _mean([_inspected_iou(r) for r in records])
    for k in RECALL_THRESHOLDS:
        out[f"evidence_R@{k}"] = evidence_recall(records, k)
    out["tool_calls"] = _mean([float(r.tool_calls) for r in records])
    out["frames_seen"] = _mean([float(r.frames_seen) for r in records])
    out["turns"] = _mean([float(r.turns) for r in records])
    out["reward"] = _mean([float(r.reward) for r in records])
    out["format_rate"] = _mean([1.0 if r.format_ok else 0.0 for r in records])
    return out


def summarise_by_task(records: Sequence[EpisodeRecord]) -> dict[str, dict[str, float | None]]:
    """``{"overall": summarise(all), <task>: summarise(that task), ...}`` with tasks sorted by name."""
    tasks = sorted({r.task for r in records})
    if "overall" in tasks:
        raise ValueError("a task may not be named 'overall' (reserved for the summary over all tasks)")
    result = {"overall": summarise(records)}
    for task in tasks:
        result[task] = summarise([r for r in records if r.task == task])
    return result


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else str(value)
    return str(value)


def format_table(
    summary_by_name: Mapping[str, Mapping[str, float | None]],
    columns: Sequence[str] | None = None,
) -> str:
    """Fixed-width plain-text table: one row per name, one column per metric (None shows as "-").

    Columns default to every metric in order of first appearance; a metric a row lacks shows as "-".
    """
    if columns is None:
        seen: dict[str, None] = {}
        for summary in summary_by_name.values():
            seen.update(dict.fromkeys(summary))
        columns = list(seen)
    header = ["name", *columns]
    rows = [
        [str(name), *(_cell(summary.get(col)) for col in columns)]
        for name, summary in summary_by_name.items()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)])
