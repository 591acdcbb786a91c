"""Resizing frames to a pixel budget with the aspect ratio kept (``*_max_pixels``, see docs/tools.md)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = ["fit_pixels", "resize_frames", "resized_bytes"]


def fit_pixels(height: int, width: int, max_pixels: int | None) -> tuple[int, int]:
    """Largest ``(h, w)`` with ``h * w <= max_pixels`` and the aspect of ``(height, width)``.

    Frames already within the budget keep their size; nothing is ever upscaled.
    """
    if max_pixels is None or height * width <= max_pixels:
        return height, width
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    scale = math.sqrt(max_pixels / (height * width))
    h = max(1, math.floor(height * scale))
    w = max(1, math.floor(width * scale))
    while h * w > max_pixels:  # float rounding can leave one row or column too many
        if w >= h:
            w -= 1
        else:
            h -= 1
    return h, w


def resize_frames(frames: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """Resize ``(n, h, w, 3)`` uint8 frames to fit ``max_pixels`` (bilinear, antialiased)."""
    n, height, width = frames.shape[:3]
    h, w = fit_pixels(height, width, max_pixels)
    if (h, w) == (height, width):
        return frames
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = np.asarray(_resized(Image.fromarray(frames[i]), h, w))
    return out


def resized_bytes(image: Image.Image, max_pixels: int | None) -> bytes:
    """A PIL RGB image resized exactly as :func:`resize_frames` resizes frames, as packed RGB bytes.

    For writers (the frame store): no array is built around the source or the result.
    """
    width, height = image.size
    h, w = fit_pixels(height, width, max_pixels)
    return (image if (h, w) == (height, width) else _resized(image, h, w)).tobytes()


def _resized(image: Image.Image, h: int, w: int) -> Image.Image:
    return image.resize((w, h), Image.Resampling.BILINEAR)
