"""The synthetic suite the numeric env trains on by default, built once into the cache folder.

The built-in suites are sized for tests and demos (a handful of videos at 25 fps). Classic RL
needs many questions and cheap frame decoding instead, so this suite has many short videos
(60–90 s) at 1 fps, asks only about brief events (which instrument is in use, which phase it
happens in, when it happens), and holds out whole videos (the "test" split) for evaluation. It
is built with the public :func:`~medscope_gym.synthetic.build_synthetic_suite` into
``$MEDSCOPE_CACHE`` (or ``~/.cache/medscope_gym``), under a folder name that hashes the
parameters and the generator and question-pipeline sources, and renamed into place so
concurrent first uses are safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from medscope_gym.suite.builder import BuildConfig
from medscope_gym.suite.filters import FilterConfig
from medscope_gym.suite.suite import SUITE_FILE
from medscope_gym.suite.templates import TemplateConfig
from medscope_gym.synthetic import GENERATOR_VERSION, build_synthetic_suite, default_cache_dir

__all__ = ["NUMERIC_SUITE", "NumericSuiteParams", "numeric_suite_path"]


@dataclass(frozen=True)
class NumericSuiteParams:
    """Generator parameters of the numeric-env suite."""

    n_videos: int = 120
    """Videos: 84 for training and 36 held out with the default splits (about 1.6 choice questions each)."""
    min_duration_s: float = 60.0
    max_duration_s: float = 90.0
    """Short videos: 60 time bins of at most 1.5 s each still resolve a 2 s event (IoU >= 0.5)."""
    seed: int = 2026
    fps: float = 1.0
    """1 fps, like CholecT50's frames and Cholec80's tool labels: the tools sample at 1 fps anyway, so
    every frame an episode asks for (preview, crop, get_frame's neighbours) sits in the env's frame
    store and decoding stops being the env's main cost."""
    width: int = 160
    height: int = 120
    splits: tuple[float, float, float] = (0.7, 0.0, 0.3)
    """Train / val / test shares, drawn by video, so test questions are about unseen videos."""
    templates: tuple[str, ...] = ("event_instrument", "event_phase", "event_grounding")
    """Question templates: the numeric env answers the two choice ones and skips event_grounding."""
    per_video: int = 6
    """Questions per template and video, at most."""

    def questions(self) -> BuildConfig:
        """The question pipeline: every filter except the preview one (a 60–90 s preview at 1 fps
        shows every event, so that filter would drop every question; the agent still has to find it)."""
        return BuildConfig(
            templates=self.templates,
            template=TemplateConfig(per_video=self.per_video),
            filters=FilterConfig(preview=False),
            trajectories=None,
        )


NUMERIC_SUITE = NumericSuiteParams()


def numeric_suite_path(
    params: NumericSuiteParams = NUMERIC_SUITE, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Folder of the suite built with ``params``, building it on first use (about a minute on 2 cores)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    h = hashlib.sha256(
        json.dumps({"version": GENERATOR_VERSION, **asdict(params)}, sort_keys=True, default=list).encode()
    )
    package = Path(__file__).resolve().parent.parent / "medscope_gym"
    for src in [*sorted((package / "synthetic").glob("*.py")), *sorted((package / "suite").rglob("*.py"))]:
        h.update(src.relative_to(package).as_posix().encode())
        h.update(src.read_bytes())
    key = h.hexdigest()[:12]
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
            questions=params.questions(),
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
