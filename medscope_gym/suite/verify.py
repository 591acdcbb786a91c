"""Open a suite's video the way ``ClinVideoEnv.reset`` does, and check it against its samples.

``reset`` is where a broken video used to surface: the decoder's verified frame count (a
truncated file decodes fewer frames than its container lists), the duration each sample
declares, and the preview decode. :func:`open_checked` is that one code path; the env calls it
at reset (and, with ``verify_videos=True``, for every video at construction), and
``medscope suite validate`` calls it through :func:`verify_suite_videos`, so a suite that
validates cannot fail at its first reset hours into training (docs/suites.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from medscope_gym.errors import VideoError
from medscope_gym.store import open_tool_video, store_settings
from medscope_gym.suite.schema import Sample
from medscope_gym.suite.suite import Suite
from medscope_gym.tools import ToolConfig, ToolOutput, preview
from medscope_gym.video import DEFAULT_BACKEND, Video, open_video

__all__ = ["check_duration", "duration_slack", "open_checked", "verify_suite_videos"]


def duration_slack(sample: Sample) -> float:
    """How far (seconds) the decoded duration may stray from the sample's: a second or two frames."""
    return max(1.0, 2.0 / max(sample.fps, 1e-6))


def check_duration(sample: Sample, video: Video, path: str | os.PathLike[str]) -> None:
    """Raise :class:`VideoError` when ``video`` does not decode to the duration ``sample`` declares.

    ``video.duration`` comes from the decoder's verified frame index, so a truncated file (fewer
    decodable frames than the suite expects) fails here too.
    """
    if abs(video.duration - sample.duration) > duration_slack(sample):
        raise VideoError(
            f"sample {sample.id!r}: the suite gives duration {sample.duration:g} s but video "
            f"{str(path)!r} decodes to {video.duration:.2f} s"
        )


def open_checked(
    path: str | os.PathLike[str],
    samples: Iterable[Sample],
    *,
    backend: str = DEFAULT_BACKEND,
    store_root: Path | None = None,
    tools: ToolConfig | None = None,
) -> tuple[Video, ToolOutput]:
    """Open ``path`` as reset does, check it against every sample in ``samples``, decode its preview.

    ``store_root`` None decodes directly; a folder serves the video from its frame store there
    (built on first use: one sequential decode). ``tools`` is the env's
    :class:`~medscope_gym.tools.ToolConfig` (default settings when None). Returns ``(video,
    preview)``; raises :class:`VideoError` naming the file (the video is closed first).
    """
    cfg = ToolConfig.from_any(tools)
    path = str(path)
    if store_root is None:
        video = open_video(path, backend=backend)
    else:
        video = open_tool_video(path, backend=backend, frame_store=store_root, settings=store_settings(cfg))
    try:
        for sample in samples:
            check_duration(sample, video, path)
        look = preview(video, cfg)
    except BaseException:
        video.close()
        raise
    return video, look


def verify_suite_videos(
    suite: Suite,
    *,
    backend: str = DEFAULT_BACKEND,
    store_root: Path | None = None,
    tools: ToolConfig | None = None,
    on_video: Callable[[str, VideoError | None], None] | None = None,
) -> list[VideoError]:
    """Decode-check every video of ``suite`` as reset would; return the errors (empty: all good).

    Each distinct video is opened once through :func:`open_checked` and checked against every
    sample that uses it. ``on_video(relative_path, error_or_None)`` is called after each video.
    """
    by_video: dict[str, list[Sample]] = {}
    for sample in suite:
        by_video.setdefault(sample.video, []).append(sample)
    errors: list[VideoError] = []
    for rel, samples in by_video.items():
        error: VideoError | None = None
        try:
            video, _ = open_checked(
                suite.video_path(samples[0]), samples, backend=backend, store_root=store_root, tools=tools
            )
            video.close()
        except VideoError as exc:
            error = exc
            errors.append(exc)
        if on_video is not None:
            on_video(rel, error)
    return errors
