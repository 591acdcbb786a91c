"""Suite statistics: counts, evidence histograms, the filter report and the baselines that show
whether the questions really need the evidence (question-only baseline vs chance; the scripted
policies' scores, played through the env, are :func:`medscope_gym.agents.baselines.policy_scores`).
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.atomic import atomic_write_bytes
from medscope_gym.suite.filters import FilterReport, QuestionOnlyBaseline
from medscope_gym.suite.schema import Sample
from medscope_gym.suite.suite import Suite

__all__ = ["chance_score", "format_stats", "plot_histograms", "score_by_task", "suite_stats"]


def chance_score(sample: Sample) -> float:
    """Expected accuracy of a blind guess: 1/options for choice; 0 for interval and text answers."""
    return 1.0 / len(sample.options) if sample.answer_type == "choice" and sample.options else 0.0


def _evidence_arrays(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([sum(b - a for a, b in s.evidence) for s in samples])
    centres = np.array([np.mean([(a + b) / 2 for a, b in s.evidence]) / s.duration for s in samples])
    return lengths, centres


def suite_stats(suite: Suite, question_only: bool = True) -> dict[str, Any]:
    """Counts per task/split/answer type, evidence length and position summaries, the build's filter
    report, and the cross-validated question-only baseline per task against chance."""
    samples = list(suite)
    lengths, centres = _evidence_arrays(samples)
    share = np.array([sum(b - a for a, b in s.evidence) / s.duration for s in samples])
    out: dict[str, Any] = {
        "samples": len(samples),
        "videos": len(suite.videos()),
        "by_split": dict(suite.counts("split")),
        "by_task": dict(suite.counts("task")),
        "by_answer_type": dict(suite.counts("answer_type")),
        "by_split_task": {
            f"{s}/{t}": n for (s, t), n in sorted(Counter((x.split, x.task) for x in samples).items())
        },
        "answer_letters": dict(
            sorted(Counter(s.answer for s in samples if s.answer_type == "choice").items())
        ),
        "evidence_seconds": {
            q: float(np.quantile(lengths, p))
            for q, p in (("min", 0), ("median", 0.5), ("p90", 0.9), ("max", 1))
        },
        "evidence_share_max": float(share.max()),
        "evidence_position_deciles": np.histogram(centres, bins=10, range=(0, 1))[0].tolist(),
        "video_minutes": {
            q: float(np.quantile([s.duration / 60 for s in samples], p))
            for q, p in (("min", 0), ("median", 0.5), ("max", 1))
        },
        "with_trajectory": sum(s.trajectory is not None for s in samples),
        "with_captions": sum(s.captions is not None for s in samples),
    }
    report = suite.root / "build_report.json"
    if report.is_file():
        raw = json.loads(report.read_text(encoding="utf-8"))
        out["filters"] = raw.get("filters")
        out["source_issues"] = raw.get("issues", [])
    if question_only and len({s.video for s in samples}) >= 2:
        scores = QuestionOnlyBaseline.cross_validated(samples)
        out["question_only"] = score_by_task(samples, scores)
    return out


def score_by_task(samples: Sequence[Sample], scores: Sequence[float]) -> dict[str, dict[str, float]]:
    """Mean score and chance (:func:`chance_score`) per task and over ``"all"``, with the sample count."""
    acc: dict[str, list[float]] = defaultdict(list)
    chance: dict[str, list[float]] = defaultdict(list)
    for s, x in zip(samples, scores):
        for key in (s.task, "all"):
            acc[key].append(x)
            chance[key].append(chance_score(s))
    return {
        k: {"n": len(v), "score": float(np.mean(v)), "chance": float(np.mean(chance[k]))}
        for k, v in sorted(acc.items())
    }


def format_stats(stats: dict[str, Any], policies: dict[str, Any] | None = None) -> str:
    lines = [
        f"{stats['samples']} samples over {stats['videos']} videos "
        f"({stats['video_minutes']['min']:.1f}-{stats['video_minutes']['max']:.1f} min)"
    ]
    for key in ("by_split", "by_answer_type", "by_task", "by_split_task", "answer_letters"):
        lines.append(f"  {key}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats[key].items())))
    ev = stats["evidence_seconds"]
    lines.append(
        f"  evidence seconds: min {ev['min']:.1f}, median {ev['median']:.1f}, p90 {ev['p90']:.1f}, "
        f"max {ev['max']:.1f}; largest share of a video {stats['evidence_share_max']:.0%}"
    )
    lines.append(f"  evidence position (deciles of the video): {stats['evidence_position_deciles']}")
    lines.append(f"  reference trajectories: {stats['with_trajectory']}, captions: {stats['with_captions']}")
    if stats.get("filters"):
        lines.append(FilterReport.from_dict(stats["filters"]).format())
    if stats.get("source_issues"):
        lines.append(f"source issues ({len(stats['source_issues'])}):")
        lines += [f"  {i}" for i in stats["source_issues"][:20]]
    tables = {"question_only": stats.get("question_only")} if stats.get("question_only") else {}
    tables.update(policies or {})
    for name, table in tables.items():
        lines.append(f"{name}: score vs chance per task")
        for task, row in table.items():
            lines.append(f"  {task:26s} n={row['n']:5d}  {row['score']:.3f}  (chance {row['chance']:.3f})")
    return "\n".join(lines)


def plot_histograms(suite: Suite, out_dir: str | os.PathLike[str]) -> list[Path]:
    """evidence_length.png and evidence_position.png (per answer type) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    samples = list(suite)
    lengths, centres = _evidence_arrays(samples)
    kinds = sorted({s.answer_type for s in samples})
    paths = []
    for name, values, xlabel, bins in (
        (
            "evidence_length",
            np.maximum(lengths, 0.1),
            "evidence length (s, log scale)",
            np.logspace(-1, np.log10(max(1.0, float(lengths.max())) * 1.1), 30),
        ),
        ("evidence_position", centres, "evidence centre / video duration", np.linspace(0, 1, 21)),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(
            [values[[s.answer_type == k for s in samples]] for k in kinds],
            bins=bins,
            stacked=True,
            label=kinds,
        )
        if name == "evidence_length":
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("samples")
        ax.legend()
        ax.set_title(f"{suite.root.name}: {len(samples)} samples")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        path = out / f"{name}.png"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths
