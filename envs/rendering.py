"""The ``rgb_array`` picture of an episode: where the evidence is, and where the agent looked.

Top: the video's timeline with the ground-truth windows (green), the preview samples (grey
ticks), each crop_video interval on its own row (blue) and each get_frame time (orange).
Bottom: thumbnails of the most recent frames the agent saw, with their timestamps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["render_timeline"]

WIDTH = 960
_MARGIN = 48
_ROW = 16
_THUMB_H = 72
_MAX_THUMBS = 10
_GREEN, _BLUE, _ORANGE, _GREY, _RED = (
    (46, 160, 67),
    (49, 110, 220),
    (240, 140, 30),
    (150, 150, 150),
    (210, 50, 50),
)


def _nice_step(duration: float) -> float:
    raw = duration / 8
    mag = 10 ** math.floor(math.log10(max(raw, 1e-6)))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def render_timeline(
    duration: float,
    evidence: Sequence[Sequence[float]],
    tool_log: Sequence[dict[str, Any]],
    inspected: Sequence[dict[str, Any]],
) -> np.ndarray:
    """Draw the episode; returns an ``(H, 960, 3)`` uint8 image."""
    crops = [e for e in tool_log if e.get("ok") and "interval" in e]
    frames = [e for e in tool_log if e.get("ok") and "timestamp" in e]
    errors = [e for e in tool_log if not e.get("ok")]
    timeline_h = 70 + _ROW * (len(crops) + 2)
    height = timeline_h + _THUMB_H + 34
    img = Image.new("RGB", (WIDTH, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, x1 = _MARGIN, WIDTH - 16
    duration = max(float(duration), 1e-6)

    def x(t: float) -> float:
        return x0 + (x1 - x0) * min(max(t, 0.0), duration) / duration

    axis_y = 30
    draw.line([(x0, axis_y), (x1, axis_y)], fill=(0, 0, 0), width=2)
    step = _nice_step(duration)
    t = 0.0
    while t <= duration + 1e-9:
        draw.line([(x(t), axis_y - 4), (x(t), axis_y + 4)], fill=(0, 0, 0))
        draw.text((x(t) - 8, axis_y - 18), f"{t:g}s", fill=(0, 0, 0), font=font)
        t += step
    preview = next((i for i in inspected if i.get("name") == "preview"), None)
    if preview is not None:
        for ts in np.asarray(preview["timestamps"]):
            draw.line([(x(float(ts)), axis_y + 5), (x(float(ts)), axis_y + 9)], fill=_GREY)

    gt_y = axis_y + 14
    draw.text((4, gt_y), "truth", fill=_GREEN, font=font)
    for s, e in evidence:
        if e > s:
            draw.rectangle([x(s), gt_y, max(x(e), x(s) + 2), gt_y + _ROW - 4], fill=_GREEN)
        else:
            draw.line([(x(s), gt_y - 2), (x(s), gt_y + _ROW)], fill=_GREEN, width=3)
    for k, entry in enumerate(crops):
        y = gt_y + _ROW * (k + 1)
        s, e = entry["interval"]
        draw.text((4, y), f"crop{k + 1}", fill=_BLUE, font=font)
        draw.rectangle([x(s), y, max(x(e), x(s) + 2), y + _ROW - 4], fill=_BLUE)
    y = gt_y + _ROW * (len(crops) + 1)
    draw.text((4, y), "frame", fill=_ORANGE, font=font)
    for entry in frames:
        tx = x(entry["timestamp"])
        draw.polygon([(tx, y), (tx - 5, y + _ROW - 4), (tx + 5, y + _ROW - 4)], fill=_ORANGE)
    if errors:
        draw.text((x0, timeline_h - 16), f"{len(errors)} failed tool call(s)", fill=_RED, font=font)

    thumbs = [(f, float(ts)) for item in inspected[1:] for f, ts in zip(item["frames"], item["timestamps"])]
    if not thumbs and preview is not None:
        thumbs = list(zip(preview["frames"], (float(t) for t in preview["timestamps"])))
    thumbs = thumbs[-_MAX_THUMBS:]
    tx, ty = x0, timeline_h
    for frame, ts in thumbs:
        fh, fw = frame.shape[:2]
        w = max(1, round(fw * _THUMB_H / fh))
        if tx + w > WIDTH:
            break
        img.paste(Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize((w, _THUMB_H)), (int(tx), ty))
        draw.text((tx + 2, ty + _THUMB_H + 2), f"{ts:.1f}s", fill=(0, 0, 0), font=font)
        tx += w + 4
    return np.asarray(img, dtype=np.uint8)
