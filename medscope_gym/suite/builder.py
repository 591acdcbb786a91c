"""Source folder → ClinVideoSuite folder: questions, filters, captions, reference trajectories, splits.

``build_suite(source, out)`` is what ``medscope suite build`` runs. Per-video work (questions
and the per-video filters) is cached in a work folder beside ``out`` keyed by the settings and
the annotation files, so an interrupted build resumes where it stopped; the suite folder itself
is written atomically (readers see the old suite or the new one). ``build_samples`` is the same
pipeline on in-memory timelines, which the built-in synthetic suites use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.atomic import atomic_directory, atomic_write_text
from medscope_gym.errors import ConfigError, SuiteError
from medscope_gym.suite.captions import captions_in_window, dense_captions
from medscope_gym.suite.filters import FILTER_NAMES, FilterConfig, FilterReport, apply_filters, preview_times
from medscope_gym.suite.schema import SPLITS, Caption, Sample
from medscope_gym.suite.sources import LoadedSource, load_source
from medscope_gym.suite.suite import write_suite
from medscope_gym.suite.templates import (
    DEFAULT_TEMPLATES,
    TemplateConfig,
    balance_answer_positions,
    generate_questions,
)
from medscope_gym.suite.timeline import Timeline
from medscope_gym.suite.trajectories import TrajectoryConfig, reference_trajectory

__all__ = [
    "BUILD_REPORT_FILE",
    "CAPTIONS_FILE",
    "BuildConfig",
    "BuildResult",
    "VideoEntry",
    "assign_splits",
    "build_samples",
    "build_suite",
]

BUILD_REPORT_FILE = "build_report.json"
CAPTIONS_FILE = "captions.jsonl"
_PER_VIDEO_STAGES = FILTER_NAMES[:-1]  # text_only needs every video at once


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on; its hash keys the resume cache."""

    source_kind: str = "auto"
    """cholec80, cholect50, medvidqa, paper_rows, or auto (detected)."""
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    template: TemplateConfig = field(default_factory=TemplateConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    trajectories: TrajectoryConfig | None = field(default_factory=TrajectoryConfig)
    """None: no reference trajectories."""
    captions: bool = True
    """Attach the dense captions overlapping each sample's evidence, and write captions.jsonl."""
    caption_pad_s: float = 5.0
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)
    """Train/val/test shares of the videos (never of the questions: no video is in two splits)."""
    seed: int = 0
    link_videos: str = "hardlink"
    """How videos enter the suite folder: hardlink (copy across file systems), symlink or copy."""

    def key(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VideoEntry:
    """A video the pipeline asks questions about: its id, its path inside the suite, its timeline."""

    video_id: str
    video: str
    timeline: Timeline


@dataclass
class BuildResult:
    path: Path | None
    samples: list[Sample]
    report: FilterReport
    captions: dict[str, tuple[Caption, ...]]
    issues: list[str] = field(default_factory=list)
    splits: dict[str, str] = field(default_factory=dict)


def assign_splits(video_ids: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, str]:
    """Split of every video: largest-remainder counts; at least one train and one test video when n >= 2."""
    valid = len(fractions) == len(SPLITS) and all(f >= 0 and math.isfinite(f) for f in fractions)
    if not valid or sum(fractions) <= 0:
        raise ConfigError(
            f"splits must be three non-negative (train, val, test) shares, got {tuple(fractions)!r}"
        )
    ids = sorted(set(video_ids))
    n = len(ids)
    share = np.asarray(fractions, dtype=np.float64) / sum(fractions)
    counts = np.floor(share * n).astype(int)
    for j in np.argsort(-(share * n - counts), kind="stable")[: n - counts.sum()]:
        counts[j] += 1
    if n == 1:
        counts = np.array([0, 0, 1])
    elif n >= 2:
        for need in (2, 0):
            if counts[need] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[need] += 1
    labels = [s for s, c in zip(SPLITS, counts) for _ in range(c)]
    order = np.random.default_rng([int(seed), 7]).permutation(n)
    return {ids[i]: labels[k] for k, i in enumerate(order)}


def _progress(items, desc: str, enabled: bool):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="video", leave=False)


def _per_video(entry: VideoEntry, cfg: BuildConfig) -> tuple[list[Sample], FilterReport]:
    candidates = generate_questions(
        entry.timeline, entry.video, templates=cfg.templates, cfg=cfg.template, seed=cfg.seed
    )
    report = FilterReport()
    kept, _ = apply_filters(
        candidates, {entry.video: entry.timeline}, cfg.filters, stages=_PER_VIDEO_STAGES, report=report
    )
    return kept, report


def build_samples(
    entries: Sequence[VideoEntry],
    cfg: BuildConfig | None = None,
    *,
    imported: Sequence[Sample] = (),
    progress: bool = False,
    cache_dir: Path | None = None,
) -> BuildResult:
    """Questions, filters, splits, captions and trajectories for in-memory timelines (and imported rows).

    ``cache_dir`` keeps each video's filtered candidates (resume after an interruption).
    """
    cfg = cfg or BuildConfig()
    report = FilterReport()
    samples: list[Sample] = []
    for entry in _progress(entries, "questions", progress):
        cached = cache_dir / f"{entry.video_id}.json" if cache_dir is not None else None
        if cached is not None and cached.is_file():
            raw = json.loads(cached.read_text(encoding="utf-8"))
            kept = [Sample.from_dict(r) for r in raw["samples"]]
            part = FilterReport.from_dict(raw["report"])
        else:
            kept, part = _per_video(entry, cfg)
            if cached is not None:
                atomic_write_text(
                    cached, json.dumps({"samples": [s.to_dict() for s in kept], "report": part.to_dict()})
                )
        report.merge(part)
        samples += kept
    timelines = {e.video: e.timeline for e in entries}
    extra, _ = apply_filters(list(imported), timelines, cfg.filters, stages=_PER_VIDEO_STAGES, report=report)
    samples += extra
    samples, _ = apply_filters(samples, timelines, cfg.filters, stages=FILTER_NAMES[-1:], report=report)
    report.candidates = report.candidates or len(samples)
    if not samples:
        raise SuiteError(f"no question survived the filters ({report.format()})")

    split_of = assign_splits([s.video for s in samples], cfg.splits, cfg.seed)
    rng = np.random.default_rng([int(cfg.seed), 11])
    samples = balance_answer_positions(
        [dataclasses.replace(s, split=split_of[s.video]) for s in samples], rng
    )

    captions = {e.video: dense_captions(e.timeline) for e in entries} if cfg.captions else {}
    previews = {
        e.video: preview_times(e.timeline, cfg.filters.preview_fps, cfg.filters.preview_max_frames)
        for e in entries
    }
    out = []
    for s in samples:
        fields: dict[str, Any] = {}
        if cfg.captions and s.video in captions:
            a = max(0.0, min(w[0] for w in s.evidence) - cfg.caption_pad_s)
            b = min(s.duration, max(w[1] for w in s.evidence) + cfg.caption_pad_s)
            fields["captions"] = captions_in_window(captions[s.video], a, b)
        if cfg.trajectories is not None:
            fields["trajectory"] = reference_trajectory(
                s,
                timelines.get(s.video),
                np.random.default_rng([int(cfg.seed), _digest(s.id)]),
                cfg.trajectories,
                previews.get(s.video),
            )
        out.append(dataclasses.replace(s, **fields))
    out.sort(key=lambda s: (SPLITS.index(s.split), s.video, s.id))
    return BuildResult(None, out, report, captions, splits=split_of)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _place_video(src: Path, dst: Path, mode: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(src.resolve(), dst)
        return
    if mode == "hardlink":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def _fingerprint(source: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(source.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(source)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def write_suite_folder(root: Path, result: BuildResult, cfg: BuildConfig, extra: dict[str, Any]) -> None:
    """suite.jsonl, captions.jsonl and build_report.json into ``root`` (videos are placed by the caller)."""
    write_suite(root, result.samples)
    if cfg.captions:
        durations = {s.video: s.duration for s in result.samples}
        lines = [
            json.dumps({"video": v, "duration": durations.get(v), "captions": [c.to_dict() for c in caps]})
            for v, caps in sorted(result.captions.items())
        ]
        atomic_write_text(root / CAPTIONS_FILE, "\n".join(lines) + ("\n" if lines else ""))
    report = {
        "filters": result.report.to_dict(),
        "issues": result.issues,
        "splits": result.splits,
        "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
        **extra,
    }
    atomic_write_text(root / BUILD_REPORT_FILE, json.dumps(report, indent=1) + "\n")


def build_suite(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: BuildConfig | None = None,
    *,
    progress: bool = True,
    resume: bool = True,
) -> BuildResult:
    """Build a suite folder at ``out`` from an annotated source folder (see medscope_gym.suite.sources)."""
    cfg = cfg or BuildConfig()
    if cfg.link_videos not in ("hardlink", "symlink", "copy"):
        raise ConfigError(f"link_videos must be hardlink, symlink or copy, got {cfg.link_videos!r}")
    source, out = Path(source), Path(out)
    loaded: LoadedSource = load_source(source, cfg.source_kind)
    issues = [str(i) for i in loaded.issues]
    if not loaded.videos and not loaded.samples:
        raise SuiteError(
            f"nothing usable in {source} ({loaded.kind}):\n  " + "\n  ".join(issues or ["no files"])
        )
    work = out.parent / f".{out.name}.work" / f"{cfg.key()}-{_fingerprint(source)}"
    if not resume and work.parent.exists():
        shutil.rmtree(work.parent)
    work.mkdir(parents=True, exist_ok=True)

    placed: dict[Path, str] = {}

    def inside(path: Path) -> str:
        """The video's path in the suite; files of the same name from different folders get a suffix."""
        if path not in placed:
            taken = set(placed.values())
            rel, k = f"videos/{path.name}", 1
            while rel in taken:
                k += 1
                rel = f"videos/{path.stem}-{k}{path.suffix}"
            placed[path] = rel
        return placed[path]

    entries = [VideoEntry(v.video_id, inside(v.path), v.timeline) for v in loaded.videos]
    imported = [dataclasses.replace(s, video=inside(Path(s.video))) for s in loaded.samples]
    result = build_samples(entries, cfg, imported=imported, progress=progress, cache_dir=work)
    result.issues = issues
    used = {s.video for s in result.samples}
    with atomic_directory(out) as tmp:
        for src, rel in _progress(list(placed.items()), "videos", progress):
            if rel in used:
                _place_video(src, tmp / rel, cfg.link_videos)
        result.captions = {v: c for v, c in result.captions.items() if v in used}
        write_suite_folder(tmp, result, cfg, {"source": str(source.resolve()), "source_kind": loaded.kind})
    shutil.rmtree(work.parent, ignore_errors=True)
    result.path = out
    return result
