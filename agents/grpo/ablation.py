"""The paper's reward ablation (its Figure 5) as one command: same start point, several reward variants.

Every variant trains a copy of the base :class:`~medscope_gym.agents.grpo.config.GRPOConfig` from the same
start
checkpoint, once per seed, and is scored on the held-out questions by the trainer's final evaluation
(``eval.json``). The start checkpoint's own scores (the first run's step-0 evaluation; the start point
is the same for every run, so the others skip it) are the first row. The table reports only
preset-independent metrics (accuracy, R@0.3/0.5/0.7, mIoU, evidence mIoU, evidence R@0.5,
well-formed): each variant's
reward differs by construction, so its value would not compare.

Finished runs (a ``final/`` and an ``eval.json``) are reused, so an interrupted ablation resumes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.evaluate import TABLE_COLUMNS
from medscope_gym.agents.grpo.config import GRPOConfig
from medscope_gym.agents.training.metrics import read_metrics
from medscope_gym.atomic import atomic_write_text
from medscope_gym.errors import ConfigError

__all__ = ["ABLATION_METRICS", "VARIANTS", "format_ablation", "run_ablation"]

#: Variant name -> GRPOConfig fields it changes.
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"reward": "paper"},
    "no_evidence": {"reward": "no_evidence"},
    "conditional_evidence": {"reward": "conditional_evidence"},
    "no_iou_bonus": {"reward": "no_iou_bonus"},
    "no_modulation": {"reward": "paper", "modulation": "off"},
}

#: ``medscope eval``'s columns less the bookkeeping and the reward-dependent ones (each variant's reward
#: differs by construction): accuracy, R@0.3/0.5/0.7, mIoU, evidence mIoU, evidence R@0.5, well-formed.
ABLATION_METRICS = tuple(
    c
    for c in TABLE_COLUMNS
    if c not in ("episodes", "tool_calls", "frames_seen", "turns", "reward", "format_rate")
)


def _run(cfg: GRPOConfig) -> dict[str, float | None]:
    from medscope_gym.agents.grpo.trainer import train_grpo

    out = Path(cfg.out)
    if not ((out / "final").is_dir() and (out / "eval.json").exists()):
        train_grpo(cfg)
    return json.loads((out / "eval.json").read_text())["summary"]


def _start_scores(run_dir: Path) -> dict[str, float | None]:
    rows = [r for r in read_metrics(run_dir) if r["step"] == 0 and "eval/accuracy" in r]
    return {k: rows[0].get(f"eval/{k}") for k in ABLATION_METRICS} if rows else {}


def run_ablation(
    base: GRPOConfig, out: str | Path, variants: Sequence[str] = tuple(VARIANTS), seeds: Sequence[int] = (0,)
) -> dict[str, Any]:
    """Train every variant × seed; write and return ``{"runs": ..., "table": ...}`` (ablation.json/.md)."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants or not seeds:
        raise ConfigError(f"unknown or no variants {unknown or list(variants)}; known: {', '.join(VARIANTS)}")
    out = Path(out)
    runs: dict[str, dict[int, dict[str, float | None]]] = {}
    start: dict[str, float | None] = {}
    for k, (variant, seed) in enumerate((v, s) for v in variants for s in seeds):
        cfg = dataclasses.replace(
            base,
            out=str(out / variant / f"seed-{seed}"),
            seed=int(seed),
            eval_at_start=k == 0,  # the start checkpoint is the same for every run: score it once
            **VARIANTS[variant],
        )
        runs.setdefault(variant, {})[int(seed)] = _run(cfg)
        start = start or _start_scores(Path(cfg.out))
    table = {"start": {k: (start.get(k), 0.0) for k in ABLATION_METRICS}} if start else {}
    for variant, by_seed in runs.items():
        table[variant] = {}
        for key in ABLATION_METRICS:
            values = [s.get(key) for s in by_seed.values() if s.get(key) is not None]
            table[variant][key] = (float(np.mean(values)), float(np.std(values))) if values else (None, None)
    result = {"base": base.to_dict(), "seeds": list(seeds), "runs": runs, "table": table}
    atomic_write_text(out / "ablation.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "ablation.md", format_ablation(table, len(seeds)) + "\n")
    return result


def format_ablation(table: dict[str, dict[str, tuple[float | None, float | None]]], n_seeds: int) -> str:
    """A Markdown table: one row per variant, mean ± std over seeds per metric."""
    header = "| variant | " + " | ".join(ABLATION_METRICS) + " |"
    lines = [header, "|" + "---|" * (len(ABLATION_METRICS) + 1)]
    for name, row in table.items():
        cells = []
        for key in ABLATION_METRICS:
            mean, std = row.get(key, (None, None))
            if mean is None:
                cells.append("-")
            elif name == "start" or n_seeds == 1:
                cells.append(f"{mean:.3f}")
            else:
                cells.append(f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
