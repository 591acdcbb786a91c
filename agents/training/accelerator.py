"""Where a training run computes: the device, ``accelerate`` and seeding.

CPU runs in fp32; CUDA in bf16 autocast. Several GPUs or nodes go through ``accelerate launch`` or
``torchrun`` (DDP), one process per device.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

__all__ = ["seed_everything", "setup_accelerator"]


def setup_accelerator(
    device: str = "auto", *, grad_accum: int = 1, threads: int | None = None
) -> tuple[Any, Any]:
    """``(accelerator, device)`` for a run on ``device`` ("auto": CUDA when available, else CPU).

    ``threads`` (when set) fixes torch's CPU threads first; ``grad_accum`` is the number of micro-batches
    whose gradients ``accelerator.accumulate`` sums before each optimizer step.
    """
    import torch
    from accelerate import Accelerator

    from medscope_gym.agents.vlm.policy import resolve_device

    if threads:
        torch.set_num_threads(threads)
    resolved, _ = resolve_device(device)
    accelerator = Accelerator(
        cpu=resolved.type == "cpu",
        mixed_precision="bf16" if resolved.type == "cuda" else "no",
        gradient_accumulation_steps=grad_accum,
    )
    return accelerator, resolved


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (torch: every device)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
