"""The synthetic suite the numeric env trains on by default, built once into the cache folder.

The built-in suites are sized for tests and demos (a handful of videos at 25 fps). Classic RL
needs many questions and cheap frame decoding instead, so this suite has many short videos
(60–90 s) at 5 fps, and holds out whole videos (the "test" split) for evaluation. It is built
with the public :func:`~medscope_gym.synthetic.build_synthetic_suite` into
``$MEDSCOPE_CACHE`` (or ``~/.cache/medscope_gym``), under a folder name that hashes the
parameters and the generator version, and renamed into place so concurrent first uses are safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from medscope_gym.suite.suite import SUITE_FILE
from medscope_gym.synthetic import GENERATOR_VERSION, build_synthetic_suite, default_cache_dir

__all__ = ["NUMERIC_SUITE", "NumericSuiteParams", "numeric_suite_path"]


@dataclass(frozen=True)
class NumericSuiteParams:
    """Generator parameters of the numeric-env suite."""

    n_videos: int = 160
    """Videos; about 2.3 multiple-choice questions each at these durations."""
    min_duration_s: float = 60.0
    max_duration_s: float = 90.0
    """Short videos: 60 time bins of at most 1.5 s each still resolve a 2 s event (IoU >= 0.5)."""
    seed: int = 2026
    fps: float = 5.0
    """Low frame rate: the tools sample at 1 fps anyway, and decoding is the env's main cost."""
    width: int = 160
    height: int = 120
    splits: tuple[float, float, float] = (0.8, 0.0, 0.2)
    """Train / val / test shares, drawn by video, so test questions are about unseen videos."""


NUMERIC_SUITE = NumericSuiteParams()


def numeric_suite_path(
    params: NumericSuiteParams = NUMERIC_SUITE, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Folder of the suite built with ``params``, building it on first use (about a minute on 2 cores)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(
        json.dumps({"version": GENERATOR_VERSION, **asdict(params)}, sort_keys=True, default=list).encode()
    ).hexdigest()[:12]
    final = root / f"synthsurg-numeric-{key}"
    if (final / SUITE_FILE).is_file():
        return final
    private = root / f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.build"
    try:
        build_synthetic_suite(
            private,
            n_videos=params.n_videos,
            min_duration_s=params.min_duration_s,
            max_duration_s=params.max_duration_s,
            seed=params.seed,
            width=params.width,
            height=params.height,
            fps=params.fps,
            splits=params.splits,
        )
        try:
            os.rename(private, final)
        except OSError:
            if not (final / SUITE_FILE).is_file():
                raise  # a real failure, not a lost race with another process
    finally:
        if private.exists():
            shutil.rmtree(private, ignore_errors=True)
    return final
