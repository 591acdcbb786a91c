"""Learning-curve picture: episode reward and its parts against environment steps."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from medscope_gym.atomic import atomic_write_bytes

__all__ = ["PARTS", "plot_learning_curves", "rolling_mean"]

#: Reward parts drawn (keys of the base env's ``info["reward_parts"]``).
PARTS: tuple[str, ...] = ("total", "accuracy", "format", "crop", "frame")


def rolling_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (shorter at the start, never NaN)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_learning_curves(
    runs: dict[str, Sequence[dict[str, Any]]],
    path: str | os.PathLike[str],
    *,
    window: int = 200,
    baselines: dict[str, dict[str, float]] | None = None,
    title: str = "PPO on the numeric ClinVideo env",
) -> None:
    """Save a PNG (atomically) with one panel per reward part and one line per run.

    ``runs`` maps a run name to its episode log (dicts with ``timesteps`` and the reward parts);
    ``baselines`` maps a name to mean parts, drawn as dashed horizontal lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PARTS), figsize=(4 * len(PARTS), 3.4), constrained_layout=True)
    for ax, part in zip(axes, PARTS):
        for name, log in runs.items():
            if not log:
                continue
            steps = [e["timesteps"] for e in log]
            ax.plot(steps, rolling_mean([e[part] for e in log], window), label=name, linewidth=1.4)
        for k, (name, means) in enumerate((baselines or {}).items()):
            if part in means and means[part] is not None:
                ax.axhline(means[part], linestyle="--", linewidth=1, color=f"C{7 + k}", label=name)
        ax.set_title(part if part != "total" else "episode reward")
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title} (rolling mean over {window} episodes)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
