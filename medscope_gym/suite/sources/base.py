"""What every annotation loader returns: timelines (or ready samples) plus a report of problems.

Loaders never stop at the first bad file: a video whose annotations cannot be trusted is left
out and the reason recorded, so one broken file in a folder of eighty does not block a build,
and the user sees every problem at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from medscope_gym.suite.schema import Sample
from medscope_gym.suite.timeline import Timeline
from medscope_gym.video import open_video

__all__ = ["VIDEO_EXTENSIONS", "LoadedSource", "SourceIssue", "SourceVideo", "find_videos", "probe_video"]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".avi", ".mov", ".webm")


@dataclass(frozen=True)
class SourceIssue:
    """One problem found while loading: ``error`` drops the video or row, ``warning`` keeps it."""

    level: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


@dataclass(frozen=True)
class SourceVideo:
    """An annotated video: its file and its timeline."""

    video_id: str
    path: Path
    timeline: Timeline


@dataclass
class LoadedSource:
    """A loaded source folder: annotated videos (for the question builder) and/or ready samples.

    Ready samples (MedVidQA rows, the paper's RL rows) carry ``video`` as an absolute path that
    the builder replaces by the path inside the suite.
    """

    kind: str
    videos: list[SourceVideo] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    issues: list[SourceIssue] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.issues.append(SourceIssue("error", where, message))

    def warning(self, where: str, message: str) -> None:
        self.issues.append(SourceIssue("warning", where, message))


def find_videos(root: str | os.PathLike[str]) -> dict[str, Path]:
    """Video files under ``root`` by stem (``video01`` → ``.../videos/video01.mp4``)."""
    out: dict[str, Path] = {}
    for path in sorted(Path(root).rglob("*")):
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file() and not path.name.startswith("."):
            out.setdefault(path.stem, path)
    return out


def probe_video(path: Path) -> tuple[float, float, int]:
    """``(duration, fps, num_frames)`` of a video file, read from its container index."""
    video = open_video(path)
    try:
        # The average rate is frames / duration; snap float noise (5.000000000000001) to the nominal rate.
        fps = round(float(video.fps), 6)
        return float(video.duration), fps, int(video.num_frames)
    finally:
        video.close()
