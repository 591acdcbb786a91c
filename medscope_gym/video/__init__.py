"""Video access: exact frames at timestamps, resized to a pixel budget, from files or arrays."""

from __future__ import annotations

import os

from medscope_gym.errors import ConfigError
from medscope_gym.video.array import ArrayVideo
from medscope_gym.video.base import Video
from medscope_gym.video.decord_backend import DecordVideo
from medscope_gym.video.guard import DecodeGuard, DecodeTimeout
from medscope_gym.video.pyav_backend import FrameIndex, PyAVVideo
from medscope_gym.video.resize import fit_pixels, resize_frames

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "ArrayVideo",
    "DecodeGuard",
    "DecodeTimeout",
    "DecordVideo",
    "FrameIndex",
    "PyAVVideo",
    "Video",
    "fit_pixels",
    "open_video",
    "resize_frames",
]

BACKENDS = {"decord": DecordVideo, "pyav": PyAVVideo}
DEFAULT_BACKEND = "pyav"
"""Exact backend used when none is named (docs/retrieval.md explains the choice)."""


def open_video(path: str | os.PathLike[str], backend: str = DEFAULT_BACKEND) -> Video:
    """Open a video file with the named backend; raises :class:`~medscope_gym.errors.VideoError`."""
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise ConfigError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}") from None
    return cls(path)
