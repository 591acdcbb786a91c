"""The agent's tools (SPEC §3): ``crop_video``, ``get_frame`` and the coarse global preview.

Tools take the agent's already-parsed JSON arguments, validate them, and return frames
with their exact timestamps. Invalid arguments raise :class:`ToolError`, whose message is
shown to the agent; the env turns it into an error observation and never crashes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np

from medscope_gym.config import config_from
from medscope_gym.errors import ConfigError
from medscope_gym.intervals import Interval
from medscope_gym.video import Video

__all__ = [
    "ToolConfig",
    "ToolError",
    "ToolOutput",
    "crop_video",
    "get_frame",
    "preview",
    "run_tool",
    "sample_times",
]


@dataclass(frozen=True)
class ToolConfig:
    """Tool settings; defaults follow the paper's reference code."""

    crop_fps: float = 1.0
    """Frames per second sampled inside a crop."""
    crop_max_frames: int = 128
    """At most this many frames per crop; longer intervals are sampled evenly."""
    crop_max_pixels: int = 224 * 224
    """Each crop frame is resized to at most this many pixels, aspect kept."""
    frame_count: int = 3
    """get_frame returns the target frame and its neighbours: this many frames in all."""
    frame_max_pixels: int | None = None
    """Cap on get_frame frames; None keeps the native resolution."""
    preview_fps: float = 1.0
    """Sampling rate of the coarse global preview shown at reset."""
    preview_max_frames: int = 512
    """At most this many preview frames; longer videos are sampled evenly."""
    preview_max_pixels: int = 224 * 224
    """Each preview frame is resized to at most this many pixels, aspect kept."""

    def __post_init__(self) -> None:
        for name in ("crop_fps", "preview_fps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"ToolConfig.{name} must be a finite number > 0, got {value!r}")
        for name in (
            "crop_max_frames",
            "crop_max_pixels",
            "frame_count",
            "preview_max_frames",
            "preview_max_pixels",
            "frame_max_pixels",
        ):
            value = getattr(self, name)
            if value is None and name == "frame_max_pixels":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ToolConfig.{name} must be an integer >= 1, got {value!r}")

    @classmethod
    def from_any(cls, value: ToolConfig | Mapping[str, Any] | None) -> ToolConfig:
        """Accept a ToolConfig, a dict of overrides, or None (defaults)."""
        return config_from(cls, value, "tools")


class ToolError(Exception):
    """The agent called a tool wrongly; the message tells it how to fix the call."""


@dataclass(frozen=True)
class ToolOutput:
    """What one tool call returned."""

    name: str
    frames: np.ndarray
    """``(n, h, w, 3)`` uint8."""
    timestamps: np.ndarray
    """``(n,)`` float64: the true start time of each returned frame, in seconds."""
    interval: Interval | None = None
    """crop_video / preview: the interval actually sampled (after clamping)."""
    timestamp: float | None = None
    """get_frame: the requested time."""
    text: str = ""


def sample_times(start: float, end: float, fps: float, max_frames: int) -> np.ndarray:
    """Times on the global grid ``(k + 0.5) / fps`` that fall in ``[start, end]``.

    Every interval samples the same instants, so a store prepared once at ``fps`` serves
    any crop, and crops of overlapping intervals agree frame for frame. More than
    ``max_frames`` grid times are thinned evenly; an interval too short to hold a grid time
    yields its midpoint.
    """
    first = math.ceil(start * fps - 0.5 - 1e-9)
    last = math.floor(end * fps - 0.5 + 1e-9)
    if last < first:
        return np.array([(start + end) / 2.0])
    ks = np.arange(first, last + 1, dtype=np.float64)
    if len(ks) > max_frames:
        ks = ks[np.round(np.linspace(0, len(ks) - 1, max_frames)).astype(np.int64)]
    return (ks + 0.5) / fps


def _frames_at(video: Video, times: np.ndarray, max_pixels: int | None) -> tuple[np.ndarray, np.ndarray]:
    indices = np.unique(video.index_at(times))
    return video.frames(indices, max_pixels)


def preview(video: Video, cfg: ToolConfig) -> ToolOutput:
    """The coarse global look at reset: frames at ``preview_fps`` over the whole video."""
    times = sample_times(0.0, video.duration, cfg.preview_fps, cfg.preview_max_frames)
    frames, stamps = _frames_at(video, times, cfg.preview_max_pixels)
    text = (
        f"Preview of the whole video ({video.duration:.1f} s): {len(stamps)} frames from "
        f"{stamps[0]:.1f} s to {stamps[-1]:.1f} s."
    )
    return ToolOutput("preview", frames, stamps, interval=(0.0, video.duration), text=text)


_CLOCK_RE = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$")


def _seconds(arguments: Mapping[str, Any], name: str) -> float:
    """A time argument in seconds: a JSON number, a numeric string, or "[HH:]MM:SS(.f)"."""
    if name not in arguments:
        raise ToolError(f"missing argument {name!r} (seconds, a number)")
    value = arguments[name]
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and len(value) < 40:
        clock = _CLOCK_RE.match(value)
        if clock:
            h, m, s = clock.groups()
            seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
        else:
            try:
                seconds = float(value.strip().removesuffix("s").strip())
            except ValueError:
                seconds = None
    if seconds is None:
        raise ToolError(f"argument {name!r} must be a number of seconds, got {str(value)[:40]!r}")
    if not math.isfinite(seconds):
        raise ToolError(f"argument {name!r} must be finite, got {seconds!r}")
    return seconds


def _check_arguments(
    name: str, arguments: Mapping[str, Any], allowed: tuple[str, ...], video_names: Collection[str]
) -> None:
    unknown = [k for k in arguments if k not in allowed]
    if unknown:
        raise ToolError(
            f"{name} got unknown argument(s) {', '.join(map(repr, unknown))}; it takes {', '.join(allowed)}"
        )
    if "video_path" in arguments:
        given = arguments["video_path"]
        accepted = set(video_names) | {PurePath(v).name for v in video_names}
        if not isinstance(given, str) or given not in accepted:
            own = PurePath(next(iter(video_names), "?")).name
            raise ToolError(
                f"video_path may only name this episode's video ({own!r}); "
                "leave it out to use the current video"
            )


def crop_video(
    video: Video, arguments: Mapping[str, Any], cfg: ToolConfig, video_names: Collection[str] = ()
) -> ToolOutput:
    """Frames sampled at ``crop_fps`` in ``[start_time, end_time]`` (end clamped to the duration)."""
    _check_arguments("crop_video", arguments, ("start_time", "end_time", "video_path"), video_names)
    start, end = _seconds(arguments, "start_time"), _seconds(arguments, "end_time")
    duration = video.duration
    if start < 0:
        raise ToolError(f"start_time must be >= 0, got {start:g}")
    if start >= end:
        raise ToolError(f"start_time ({start:g}) must be smaller than end_time ({end:g})")
    if start >= duration:
        raise ToolError(f"start_time {start:g} s is past the end of the video ({duration:.1f} s)")
    end = min(end, duration)
    times = sample_times(start, end, cfg.crop_fps, cfg.crop_max_frames)
    frames, stamps = _frames_at(video, times, cfg.crop_max_pixels)
    text = (
        f"crop_video [{start:.1f} s, {end:.1f} s]: {len(stamps)} frames at "
        f"{', '.join(f'{t:.1f}' for t in stamps[:3])}{' …' if len(stamps) > 3 else ''} s."
    )
    return ToolOutput("crop_video", frames, stamps, interval=(start, end), text=text)


def get_frame(
    video: Video, arguments: Mapping[str, Any], cfg: ToolConfig, video_names: Collection[str] = ()
) -> ToolOutput:
    """The frame on screen at ``timestamp`` and its neighbours, at native resolution."""
    _check_arguments("get_frame", arguments, ("timestamp", "video_path"), video_names)
    t = _seconds(arguments, "timestamp")
    duration = video.duration
    if t < 0:
        raise ToolError(f"timestamp must be >= 0, got {t:g}")
    if t > duration:
        raise ToolError(f"timestamp {t:g} s is past the end of the video ({duration:.1f} s)")
    centre = int(video.index_at(t)[0])
    count = min(cfg.frame_count, video.num_frames)
    first = min(max(0, centre - (count - 1) // 2), video.num_frames - count)
    frames, stamps = video.frames(np.arange(first, first + count), cfg.frame_max_pixels)
    text = (
        f"get_frame {t:.2f} s: {count} frames at {', '.join(f'{s:.2f}' for s in stamps)} s "
        f"({frames.shape[2]}x{frames.shape[1]})."
    )
    return ToolOutput("get_frame", frames, stamps, timestamp=t, text=text)


TOOLS = {"crop_video": crop_video, "get_frame": get_frame}


def run_tool(
    name: str, arguments: Mapping[str, Any], video: Video, cfg: ToolConfig, video_names: Collection[str] = ()
) -> ToolOutput:
    """Dispatch a parsed tool call; raises :class:`ToolError` on a bad name or bad arguments.

    ``video_names`` are the only values a ``video_path`` argument may take (the episode's own
    video); the tools never open a path the agent gives.
    """
    try:
        tool = TOOLS[name]
    except KeyError:
        raise ToolError(f"unknown tool {name!r}; the tools are {', '.join(TOOLS)}") from None
    if not isinstance(arguments, Mapping):
        raise ToolError(f"{name} arguments must be a JSON object")
    return tool(video, arguments, cfg, video_names)
