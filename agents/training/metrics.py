"""The metrics log of a training run (SFT and GA-GRPO alike) and its progress bar.

``metrics.jsonl`` is the record of truth: one JSON object per logged step,
``{"step": N, "train/loss": ..., "eval/mIoU": ...}`` (non-finite values written as null). On resume, rows
after the checkpoint's step (written by a run that crashed later) are dropped, so the file always
describes the run that produced the current weights. TensorBoard (``tb/``) mirrors it when asked for and
installed; without the ``tensorboard`` package only the JSONL is written (and said so once).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from medscope_gym.atomic import atomic_write_text

__all__ = ["METRICS_FILE", "MetricsLog", "progress_bar", "quiet_transformers", "read_metrics"]

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Append-only JSONL of scalar metrics, mirrored to TensorBoard when available.

    ``name`` prefixes the one note printed when TensorBoard is asked for but not installed.
    """

    def __init__(
        self, out: str | Path, *, resume_step: int = 0, tensorboard: bool = True, name: str = "train"
    ) -> None:
        out = Path(out)
        self.path = out / METRICS_FILE
        if resume_step == 0 or not self.path.exists():
            atomic_write_text(self.path, "")
        else:
            kept = [row for row in read_metrics(self.path) if row["step"] <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print(f"{name}: tensorboard is not installed; metrics go to {METRICS_FILE} only")
            else:
                self.writer = SummaryWriter(
                    str(out / "tb"), purge_step=resume_step + 1 if resume_step else None
                )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one row; None values are left out, non-finite ones written as null."""
        row = {"step": int(step)}
        for key, value in metrics.items():
            if value is None:
                continue
            value = float(value)
            row[key] = value if math.isfinite(value) else None
            if self.writer is not None and math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not a JSON line ({exc})") from exc
    return rows


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars ("Loading weights", "Writing model shards") in this
    process: our commands draw their own bars. Called when a command runs, never at import."""
    try:
        from transformers.utils import logging
    except ImportError:
        return
    logging.disable_progress_bar()


def progress_bar(enabled: bool, total: int, initial: int, desc: str):
    """A tqdm bar over optimizer steps (None when ``enabled`` is false)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step")
