"""Build synthetic suites on disk, and the built-in ones cached by generator version.

A built-in suite is rebuilt whenever the generator's source or parameters change (the cache
folder name carries their hash), and concurrent first calls are safe: each process builds
in a private folder and renames it into place; a process that loses the race discards its
copy and uses the winner's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.atomic import atomic_directory, atomic_write_text
from medscope_gym.errors import ConfigError
from medscope_gym.suite.schema import SPLITS, Sample
from medscope_gym.suite.suite import SUITE_FILE, write_suite
from medscope_gym.synthetic.annotations import write_annotations
from medscope_gym.synthetic.procedure import generate_procedure
from medscope_gym.synthetic.questions import balance_answer_positions, build_questions
from medscope_gym.synthetic.render import render_video

__all__ = [
    "BUILTIN_SUITES",
    "DEFAULT_SUITE",
    "GENERATOR_VERSION",
    "MANIFEST_FILE",
    "build_synthetic_suite",
    "builtin_suite_path",
    "default_cache_dir",
]

GENERATOR_VERSION = "1"  # bump on any change that alters generated timelines, pixels or questions
MANIFEST_FILE = "synthetic.json"
DEFAULT_SUITE = "synthsurg-small"

BUILTIN_SUITES: dict[str, dict[str, Any]] = {
    # The default and the tests' suite: small and quick to build (seconds).
    "synthsurg-small": {"n_videos": 6, "min_duration_s": 60.0, "max_duration_s": 150.0, "seed": 0},
    # Frame index burned in, for decode-exactness checks of video backends.
    "synthsurg-index": {"n_videos": 3, "min_duration_s": 60.0, "max_duration_s": 90.0, "seed": 1,
                        "burn_index": True},
    # Long procedures (10–30 min) where uniform sampling misses the brief events.
    "synthsurg-long": {"n_videos": 4, "min_duration_s": 600.0, "max_duration_s": 1800.0, "seed": 2},
}
_BUILD_DEFAULTS: dict[str, Any] = {
    "width": 160, "height": 120, "fps": 25.0, "burn_index": False, "splits": (0.6, 0.2, 0.2),
}


def build_synthetic_suite(
    out_dir: str | os.PathLike[str],
    *,
    n_videos: int,
    min_duration_s: float,
    max_duration_s: float,
    seed: int,
    width: int = 160,
    height: int = 120,
    fps: float = 25.0,
    burn_index: bool = False,
    splits: Sequence[float] = (0.6, 0.2, 0.2),
) -> Path:
    """Write a complete suite folder (videos, Cholec80 annotations, ``suite.jsonl``) at ``out_dir``.

    The folder is assembled in a temporary sibling and renamed into place, so ``out_dir`` is
    either absent, the previous suite, or the finished new one. Splits are drawn by video.
    """
    if n_videos < 1 or not 0 < min_duration_s <= max_duration_s:
        raise ConfigError(f"need n_videos >= 1 and 0 < min_duration_s <= max_duration_s, got {n_videos}, "
                          f"{min_duration_s}, {max_duration_s}")
    rng = np.random.default_rng([int(seed), 2024])
    durations = rng.uniform(min_duration_s, max_duration_s, size=n_videos)
    video_seeds = rng.integers(0, 2**31 - 1, size=n_videos)
    split_of = _assign_splits(n_videos, splits, rng)
    digits = max(2, len(str(n_videos)))
    samples: list[Sample] = []
    videos: list[dict[str, Any]] = []
    with atomic_directory(out_dir) as tmp:
        for k in range(n_videos):
            name = f"video{k + 1:0{digits}d}"
            procedure = generate_procedure(int(video_seeds[k]), float(durations[k]), fps)
            rel = f"videos/{name}.mp4"
            render_video(procedure, tmp / rel, width=width, height=height, burn_index=burn_index)
            write_annotations(procedure, tmp / "annotations", name)
            samples += build_questions(procedure, rel, video_id=name, split=split_of[k], seed=seed)
            videos.append({"name": name, "video": rel, "seed": procedure.seed, "fps": procedure.fps,
                           "num_frames": procedure.num_frames, "split": split_of[k]})
        write_suite(tmp, balance_answer_positions(samples, rng))
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "params": {"n_videos": n_videos, "min_duration_s": min_duration_s,
                       "max_duration_s": max_duration_s, "seed": seed, "width": width, "height": height,
                       "fps": fps, "burn_index": burn_index, "splits": list(splits)},
            "videos": videos,
        }
        atomic_write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
    return Path(out_dir)


def default_cache_dir() -> Path:
    """``$MEDSCOPE_CACHE`` if set, else ``~/.cache/medscope_gym``."""
    env = os.environ.get("MEDSCOPE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "medscope_gym"


def builtin_suite_path(name: str = DEFAULT_SUITE, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of built-in suite ``name``, building it into the cache on first use."""
    if name not in BUILTIN_SUITES:
        raise ConfigError(f"unknown built-in suite {name!r}; known: {', '.join(BUILTIN_SUITES)}")
    params = {**_BUILD_DEFAULTS, **BUILTIN_SUITES[name]}
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / f"{name}-{_build_key(name, params)}"
    if (final / SUITE_FILE).is_file():
        return final
    private = root / f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.build"
    try:
        build_synthetic_suite(private, **params)
        try:
            os.rename(private, final)
        except OSError:
            if not (final / SUITE_FILE).is_file():
                raise
            # Another process finished first: keep its folder, drop ours (in the finally below).
    finally:
        if private.exists():
            shutil.rmtree(private, ignore_errors=True)
    return final


def _build_key(name: str, params: dict[str, Any]) -> str:
    """Hash of the generator's version, its source files and the build parameters."""
    h = hashlib.sha256()
    payload = {"name": name, "version": GENERATOR_VERSION, "params": {k: params[k] for k in sorted(params)}}
    h.update(json.dumps(payload, sort_keys=True, default=list).encode())
    for src in sorted(Path(__file__).parent.glob("*.py")):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:12]


def _assign_splits(n: int, fractions: Sequence[float], rng: np.random.Generator) -> list[str]:
    """Split label per video: largest-remainder counts, at least one train and one test video when n >= 2."""
    valid = len(fractions) == len(SPLITS) and all(f >= 0 and math.isfinite(f) for f in fractions)
    if not valid or sum(fractions) <= 0:
        raise ConfigError(f"splits must be three non-negative (train, val, test) shares, "
                          f"got {tuple(fractions)!r}")
    share = np.asarray(fractions, dtype=np.float64) / sum(fractions)
    counts = np.floor(share * n).astype(int)
    for j in np.argsort(-(share * n - counts), kind="stable")[: n - counts.sum()]:
        counts[j] += 1
    if n == 1:
        counts = np.array([0, 0, 1])
    else:
        for need in (2, 0):  # test first, then train
            if counts[need] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[need] += 1
    labels = [s for s, c in zip(SPLITS, counts) for _ in range(c)]
    return [labels[j] for j in rng.permutation(n)]
