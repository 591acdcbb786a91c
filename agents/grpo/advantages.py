"""Group-relative advantages and their evidence modulation (see docs/ga-grpo.md), on plain numpy arrays.

For G rollouts of one question with rewards R_1..R_G, the advantage of rollout i is
A_i = R_i − mean(R) (optionally divided by the group's std). GA-GRPO then rescales A_i by how well
the rollout grounded its answer: only rollouts that called a tool and have a valid (≥ 0) evidence
score f_i are touched, so a rollout that answered without looking is judged by its reward alone.

- binary: A ≥ 0 → ×up if f > 0 else ×down; A < 0 → ×down if f > 0 else ×up
  (well-grounded successes are pushed up harder, well-grounded failures are punished less);
- continuous: A ≥ 0 → ×max(floor, 1 + scale·clip(f, −1, 1)); A < 0 → ×max(floor, 1 − scale·clip(f, −1, 1)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["GroupStats", "evidence_factors", "group_advantages", "modulate"]


@dataclass(frozen=True)
class GroupStats:
    """What the advantage step reports about a batch of groups."""

    groups: int
    zero_variance_groups: int
    """Groups whose rewards are all equal: their advantages are exactly 0."""
    modulated: int
    """Trajectories whose advantage the evidence modulation rescaled."""


def group_advantages(
    rewards: Sequence[float], groups: Sequence[int], *, normalise_std: bool = False, std_eps: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """A_i = R_i − mean of R over i's group (÷ (std + eps) if ``normalise_std``).

    Returns (advantages, zero_variance) where ``zero_variance[i]`` says i's group had no reward spread.
    A zero-variance group gets advantages of exactly 0 (never NaN, with or without normalisation).
    """
    r = np.asarray(rewards, dtype=np.float64)
    g = np.asarray(groups)
    if r.shape != g.shape or r.ndim != 1:
        raise ValueError(
            f"rewards and groups must be equal-length 1-D sequences, got {r.shape} and {g.shape}"
        )
    if not np.all(np.isfinite(r)):
        bad = np.flatnonzero(~np.isfinite(r))
        raise ValueError(f"non-finite rewards at positions {bad.tolist()}")
    adv = np.zeros_like(r)
    flat = np.zeros(r.shape, dtype=bool)
    for key in np.unique(g):
        idx = np.flatnonzero(g == key)
        centred = r[idx] - r[idx].mean()
        spread = r[idx].max() - r[idx].min()
        if spread == 0.0:
            flat[idx] = True
            continue  # stays exactly 0
        if normalise_std:
            centred = centred / (r[idx].std() + std_eps)
        adv[idx] = centred
    return adv, flat


def evidence_factors(
    advantages: Sequence[float],
    evidence: Sequence[float | None],
    *,
    mode: str = "binary",
    up: float = 1.2,
    down: float = 0.8,
    scale: float = 0.2,
    floor: float = 0.1,
) -> np.ndarray:
    """The factor each advantage is multiplied by; 1 where f is None (no tool call) or invalid (< 0)."""
    a = np.asarray(advantages, dtype=np.float64)
    if len(evidence) != len(a):
        raise ValueError(f"{len(a)} advantages but {len(evidence)} evidence scores")
    out = np.ones_like(a)
    if mode == "off":
        return out
    if mode not in ("binary", "continuous"):
        raise ValueError(f"modulation mode must be 'binary', 'continuous' or 'off', got {mode!r}")
    for i, f in enumerate(evidence):
        if f is None or not np.isfinite(f) or f < 0:
            continue
        if mode == "binary":
            grounded = f > 0
            out[i] = (up if grounded else down) if a[i] >= 0 else (down if grounded else up)
        else:
            c = float(np.clip(f, -1.0, 1.0))
            out[i] = max(floor, 1.0 + scale * c) if a[i] >= 0 else max(floor, 1.0 - scale * c)
    return out


def modulate(
    advantages: Sequence[float], evidence: Sequence[float | None], mode: str = "binary", **factors: float
) -> tuple[np.ndarray, int]:
    """(modulated advantages, number of trajectories whose factor is not 1)."""
    f = evidence_factors(advantages, evidence, mode=mode, **factors)
    return np.asarray(advantages, dtype=np.float64) * f, int(np.sum(f != 1.0))
