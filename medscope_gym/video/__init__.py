"""Video access: exact frames at timestamps, resized to a pixel budget, from files or arrays."""

from __future__ import annotations

import os

from medscope_gym.video.array import ArrayVideo
from medscope_gym.video.base import Video
from medscope_gym.video.decord_backend import DecordVideo
from medscope_gym.video.resize import fit_pixels, resize_frames

__all__ = ["ArrayVideo", "DecordVideo", "Video", "fit_pixels", "open_video", "resize_frames"]

BACKENDS = {"decord": DecordVideo}


def open_video(path: str | os.PathLike[str], backend: str = "decord") -> Video:
    """Open a video file with the named backend; raises :class:`~medscope_gym.errors.VideoError`."""
    try:
        cls = BACKENDS[backend]
    except KeyError:
        from medscope_gym.errors import ConfigError

        raise ConfigError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}") from None
    return cls(path)
