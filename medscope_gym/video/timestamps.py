"""Exact float64 frame start times shared by every backend, so their timestamps agree to the bit."""

from __future__ import annotations

import numpy as np

__all__ = ["exact_timestamps"]


def exact_timestamps(starts: np.ndarray, fps: float, ends: float | None = None) -> tuple[np.ndarray, float]:
    """Frame start times and the end of the last frame, both in seconds.

    Containers store times in integer ticks and decoders may report them in float32 (decord:
    102.88 s reads as 102.8799972): enough to move a clamped crop end and cost an IoU bonus step.
    When every time is within rounding (1 % of a frame, or float32 precision) of
    ``t0 + i / fps`` the file is constant-rate and those ideal times are returned; a
    variable-rate file keeps the container's times, its last frame lasting ``ends - start``
    (or the average frame).
    """
    starts = np.asarray(starts, dtype=np.float64)
    if fps > 0:
        ideal = starts[0] + np.arange(len(starts), dtype=np.float64) / fps
        tolerance = max(0.01 / fps, 2.0**-22 * float(np.max(np.abs(starts))))
        if np.max(np.abs(starts - ideal)) <= tolerance:
            return ideal, float(ideal[-1] + 1.0 / fps)
    if ends is None:
        if len(starts) > 1:
            ends = float(starts[-1] + (starts[-1] - starts[0]) / (len(starts) - 1))
        else:
            ends = float(starts[-1] + (1.0 / fps if fps > 0 else 1.0))
    return starts, float(ends)
