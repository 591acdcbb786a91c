"""The order in which a trainer visits its examples: an endless stream of seeded per-epoch shuffles.

Example ``k`` of the stream is position ``k mod n`` of the permutation of epoch ``k // n``, drawn from
``numpy.random.default_rng([seed, epoch])``: it depends on ``(n, seed, k)`` only, so a run that resumes at
stream position ``k`` (saved in its checkpoint) visits exactly the examples an uninterrupted run would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IndexStream", "stream_indices"]


def stream_indices(n: int, seed: int, start: int, count: int) -> list[int]:
    """Examples ``start .. start+count`` of an endless stream of per-epoch shuffles (resume-exact)."""
    if n <= 0:
        raise ValueError(f"cannot stream from {n} examples")
    out: list[int] = []
    permutations: dict[int, np.ndarray] = {}
    for k in range(start, start + count):
        epoch, pos = divmod(k, n)
        if epoch not in permutations:
            permutations[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(int(permutations[epoch][pos]))
    return out


@dataclass
class IndexStream:
    """A cursor on :func:`stream_indices`: ``take`` returns the next examples and advances ``position``."""

    n: int
    seed: int
    position: int = 0

    def take(self, count: int) -> list[int]:
        chosen = stream_indices(self.n, self.seed, self.position, count)
        self.position += count
        return chosen
