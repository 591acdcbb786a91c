"""Annotation sources → timelines or samples: Cholec80, CholecT50, MedVidQA rows, the paper's RL rows.

``load_source(folder)`` detects the format (or takes ``kind``) and returns a
:class:`LoadedSource` with every problem found listed in ``issues``.
"""

from __future__ import annotations

import os
from pathlib import Path

from medscope_gym.errors import SuiteError
from medscope_gym.suite.sources.base import LoadedSource, SourceIssue, SourceVideo, find_videos, probe_video
from medscope_gym.suite.sources.cholec80 import is_cholec80, load_cholec80
from medscope_gym.suite.sources.cholect50 import is_cholect50, load_cholect50
from medscope_gym.suite.sources.rows import is_medvidqa, is_paper_rows, load_medvidqa, load_paper_rows

__all__ = [
    "SOURCE_KINDS",
    "LoadedSource",
    "SourceIssue",
    "SourceVideo",
    "detect_source",
    "find_videos",
    "load_source",
    "probe_video",
]

# Detection order: Cholec80 files (also the synthetic suites' annotations) first.
SOURCE_KINDS = {
    "cholec80": (is_cholec80, load_cholec80),
    "cholect50": (is_cholect50, load_cholect50),
    "medvidqa": (is_medvidqa, load_medvidqa),
    "paper_rows": (is_paper_rows, load_paper_rows),
}


def detect_source(root: str | os.PathLike[str]) -> str:
    """Name of the annotation format found under ``root``."""
    if not Path(root).is_dir():
        raise SuiteError(f"source folder {str(root)!r} does not exist")
    for kind, (detect, _) in SOURCE_KINDS.items():
        if detect(root):
            return kind
    raise SuiteError(
        f"no known annotations under {str(root)!r}: expected Cholec80 *-phase.txt/*-tool.txt, "
        "CholecT50 JSON, MedVidQA rows or the paper's RL rows"
    )


def load_source(root: str | os.PathLike[str], kind: str = "auto") -> LoadedSource:
    """Load a source folder; ``kind`` is one of :data:`SOURCE_KINDS` or "auto"."""
    if kind == "auto":
        kind = detect_source(root)
    if kind not in SOURCE_KINDS:
        raise SuiteError(f"unknown source kind {kind!r}; choose auto or one of {', '.join(SOURCE_KINDS)}")
    return SOURCE_KINDS[kind][1](root)
