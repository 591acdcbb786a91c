"""Temporal intervals in seconds: the one place IoU and containment are defined.

Rewards, answer judges and metrics all compare a predicted interval with ground-truth
evidence windows; they share these functions so the three can never disagree.
A "moment" ground truth is stored as a zero-length window ``(t, t)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

Interval = tuple[float, float]

__all__ = [
    "Interval",
    "is_moment",
    "temporal_iou",
    "best_iou",
    "contains",
    "parse_interval",
]


def is_moment(window: Interval) -> bool:
    """True when a ground-truth window is a single instant ``(t, t)``."""
    return window[0] == window[1]


def temporal_iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two closed intervals; 0.0 when either is degenerate and disjoint.

    Two identical zero-length intervals have IoU 1.0; a zero-length interval against a
    non-empty one has IoU 0.0 (use :func:`contains` for moments).
    """
    a0, a1 = float(a[0]), float(a[1])
    b0, b1 = float(b[0]), float(b[1])
    if a1 < a0 or b1 < b0:
        raise ValueError(f"reversed interval: {a!r} or {b!r}")
    inter = min(a1, b1) - max(a0, b0)
    union = max(a1, b1) - min(a0, b0)
    if union <= 0.0:
        return 1.0 if (a0 == b0 and a1 == b1) else 0.0
    return max(0.0, inter) / union


def best_iou(pred: Interval, windows: Iterable[Interval]) -> float:
    """Largest IoU between ``pred`` and any non-moment window (0.0 when there is none)."""
    return max((temporal_iou(pred, w) for w in windows if not is_moment(w)), default=0.0)


def contains(window: Interval, t: float) -> bool:
    """True when ``window[0] <= t <= window[1]``."""
    return float(window[0]) <= float(t) <= float(window[1])


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_INTERVAL_RE = re.compile(
    rf"^\s*[\[(]?\s*({_NUMBER})\s*(?:s|sec|seconds)?\s*(?:,|-|–|to)\s*({_NUMBER})\s*(?:s|sec|seconds)?\s*[\])]?\s*$",
    re.IGNORECASE,
)


def parse_interval(text: str) -> Interval | None:
    """Parse an interval answer such as ``"[12.5, 20]"``, ``"12.5-20"`` or ``"12 s to 20 s"``.

    Returns None when the text is not an interval, when a bound is not finite, or when
    start > end; never raises.
    """
    if not isinstance(text, str) or len(text) > 200:
        return None
    m = _INTERVAL_RE.match(text)
    if m is None:
        return None
    start, end = float(m.group(1)), float(m.group(2))
    if not (math.isfinite(start) and math.isfinite(end)) or start > end:
        return None
    return (start, end)


def as_windows(raw: Sequence[Sequence[float]]) -> tuple[Interval, ...]:
    """Normalise a list of ``[start, end]`` pairs to a tuple of float tuples."""
    return tuple((float(s), float(e)) for s, e in raw)
