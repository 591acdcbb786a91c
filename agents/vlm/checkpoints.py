"""Run folders' ``checkpoint-N`` directories: find the latest, prune the oldest (SFT and GA-GRPO alike)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

__all__ = ["checkpoint_dir", "latest_checkpoint", "prune_checkpoints"]

_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(out: str | Path, step: int) -> Path:
    return Path(out) / f"checkpoint-{step}"


def _checkpoints(out: str | Path) -> list[tuple[int, Path]]:
    return sorted(
        (int(m.group(1)), p) for p in Path(out).glob("checkpoint-*") if (m := _CKPT_RE.match(p.name))
    )


def latest_checkpoint(out: str | Path) -> Path | None:
    """The ``checkpoint-N`` folder with the largest N in ``out`` (None when there is none)."""
    found = _checkpoints(out)
    return found[-1][1] if found else None


def prune_checkpoints(out: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints."""
    found = _checkpoints(out)
    for _, old in found[: max(0, len(found) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
