"""Cheap container probing (header only, no decoding) so a broken video fails at env construction."""

from __future__ import annotations

import os

from medscope_gym.errors import VideoError

__all__ = ["probe_size"]


def probe_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` of the first video stream of a file; raises VideoError naming the file."""
    import av

    path = str(path)
    if not os.path.isfile(path):
        raise VideoError(f"video {path!r} not found")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"video {path!r} has no video stream")
            ctx = container.streams.video[0].codec_context
            height, width = int(ctx.height), int(ctx.width)
    except VideoError:
        raise
    except Exception as exc:  # PyAV raises several error types for unreadable containers
        raise VideoError(f"video {path!r} cannot be read: {exc}") from exc
    if height <= 0 or width <= 0:
        raise VideoError(f"video {path!r} reports no frame size")
    return height, width
