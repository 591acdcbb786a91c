"""Training curves of a GA-GRPO run, drawn from its metrics.jsonl (needs matplotlib; skipped without)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medscope_gym.agents.training.metrics import read_metrics
from medscope_gym.atomic import atomic_write_figure

__all__ = ["plot_training"]

#: Panels: title -> metric keys drawn in it.
PANELS: dict[str, tuple[str, ...]] = {
    "train reward (per rollout)": (
        "train/reward",
        "train/reward_accuracy",
        "train/reward_format",
        "train/reward_evidence",
    ),
    "held-out": ("eval/reward", "eval/accuracy", "eval/mIoU", "eval/evidence_mIoU", "eval/well_formed"),
    "behaviour": ("train/tool_call_rate", "train/well_formed", "train/zero_variance_share"),
    "update": ("train/clip_fraction", "train/kl", "train/kl_behaviour", "train/advantage_abs"),
}


def plot_training(run: str | Path, png: str | Path | None = None, smooth: int = 5) -> Path | None:
    """Write the curves of ``run`` (a run folder or metrics.jsonl) to ``png`` (default: run/curves.png)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    run = Path(run)
    rows = read_metrics(run)
    png = Path(png) if png is not None else (run if run.is_dir() else run.parent) / "curves.png"
    if not rows:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (title, keys) in zip(axes.ravel(), PANELS.items()):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if not points:
                continue
            steps, values = (np.asarray(v, dtype=float) for v in zip(*points))
            label = key.split("/", 1)[1]
            if key.startswith("train/") and len(values) >= smooth > 1:
                ax.plot(steps, values, alpha=0.25)
                kernel = np.ones(smooth) / smooth
                ax.plot(
                    steps[smooth - 1 :],
                    np.convolve(values, kernel, mode="valid"),
                    label=label,
                    color=ax.lines[-1].get_color(),
                )
            else:
                ax.plot(steps, values, marker="o" if key.startswith("eval/") else None, label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        atomic_write_figure(png, fig, dpi=90)
    finally:
        plt.close(fig)
    return png
