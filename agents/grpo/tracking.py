"""Training logs of a GA-GRPO run: one JSON line per step (the record of truth) and TensorBoard events.

``metrics.jsonl`` holds one object per logged step: ``{"step": N, "train/reward": ..., "eval/mIoU": ...}``.
On resume, rows after the checkpoint's step (written by a run that crashed later) are dropped, so the
file always describes the run that produced the current weights. TensorBoard is optional: without the
``tensorboard`` package only the JSONL is written (and said so once).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from medscope_gym.atomic import atomic_write_text

__all__ = ["MetricsLog", "read_metrics"]


class MetricsLog:
    """Append-only JSONL of scalar metrics, mirrored to TensorBoard when available."""

    def __init__(self, out: str | Path, *, resume_step: int = 0, tensorboard: bool = True) -> None:
        out = Path(out)
        self.path = out / "metrics.jsonl"
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
                print("grpo: tensorboard is not installed; metrics go to metrics.jsonl only")
            else:
                self.writer = SummaryWriter(
                    str(out / "tb"), purge_step=resume_step + 1 if resume_step else None
                )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
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
        path = path / "metrics.jsonl"
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not a JSON line ({exc})") from exc
    return rows
