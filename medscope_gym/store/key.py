"""What identifies a frame store: the source video's content and the sampling settings.

Hashing a multi-GB video fully would cost seconds per open, so the key hashes the file size,
its first and last MiB and 16 evenly spaced 4 KiB samples. An H.264 re-encode or an edit
changes the container index (at the head or the tail of an mp4) and thus the key; the
modification time is left out on purpose, so a copied suite keeps its stores valid.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass

from medscope_gym.errors import ConfigError

__all__ = ["STORE_FORMAT", "StoreSettings", "content_fingerprint", "store_key"]

STORE_FORMAT = 1
"""Bumped whenever the on-disk layout or the way frames are sampled or resized changes."""

_EDGE = 1 << 20
_SAMPLE = 4096
_SAMPLES = 16


@dataclass(frozen=True)
class StoreSettings:
    """The grid a store holds: frames at times ``(k + 0.5) / fps``, resized to at most ``max_pixels``.

    The defaults match :class:`~medscope_gym.tools.ToolConfig`'s crop and preview defaults
    (1 fps, 224² pixels), so one store serves every crop and the preview.
    """

    fps: float = 1.0
    """Grid rate in frames per second (the tools' ``crop_fps``)."""
    max_pixels: int = 224 * 224
    """Pixel cap of the stored frames, aspect kept (the tools' ``crop_max_pixels``)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"StoreSettings.fps must be a finite number > 0, got {self.fps!r}")
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ConfigError(f"StoreSettings.max_pixels must be an integer >= 1, got {self.max_pixels!r}")


def content_fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 over the file size, its first and last MiB and 16 spread 4 KiB samples."""
    h = hashlib.sha256()
    size = os.path.getsize(path)
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= 2 * _EDGE + _SAMPLES * _SAMPLE:
            h.update(fh.read())
        else:
            h.update(fh.read(_EDGE))
            for k in range(_SAMPLES):
                fh.seek(_EDGE + (size - 2 * _EDGE - _SAMPLE) * k // (_SAMPLES - 1))
                h.update(fh.read(_SAMPLE))
            fh.seek(size - _EDGE)
            h.update(fh.read(_EDGE))
    return h.hexdigest()


def store_key(path: str | os.PathLike[str], settings: StoreSettings) -> str:
    """Folder name of the store of ``path`` sampled with ``settings`` (hex, 20 characters)."""
    payload = {"format": STORE_FORMAT, "content": content_fingerprint(path), "settings": asdict(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
