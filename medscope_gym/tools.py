"""The agent's tools (docs/environment.md): ``crop_video``, ``get_frame`` and the coarse global preview.

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
    "crop_text",
    "preview_text",
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
    text = preview_text(video.duration, stamps)
    return ToolOutput("preview", frames, stamps, interval=(0.0, video.duration), text=text)


def preview_text(duration: float, stamps: np.ndarray) -> str:
    """The line the preview's observation ends with (also what Stage I's episode-layout examples show)."""
    return (
        f"Preview of the whole video ({duration:.1f} s): {len(stamps)} frames from "
        f"{stamps[0]:.1f} s to {stamps[-1]:.1f} s."
    )


_CLOCK_RE = re.compile(r"^(?:(\d{1,6}):)?(\d{1,2}):(\d{1,2}(?:\.\d{1,9})?)$", re.ASCII)
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:\s*s)?$", re.ASCII)
_MAX_NUMBER_CHARS = 40
"""Longest numeric string accepted as a time (a JSON number of more digits is beyond any video)."""


def _show(value: Any, limit: int = 40) -> str:
    """A short, never-raising rendering of an agent-given value for an error message.

    ``str`` of an agent's value can be huge, recurse deeply, or (for an integer beyond Python's
    int-string limit) raise; this looks only at bounded parts of it.
    """
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, int):
        if value.bit_length() > 128:
            return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + "...")
    if isinstance(value, Mapping):
        return "a JSON object"
    if isinstance(value, (list, tuple)):
        return "a JSON list"
    return f"a {type(value).__name__}"


def _seconds(arguments: Mapping[str, Any], name: str) -> float:
    """A time argument in seconds: a JSON number, a numeric string, or "[HH:]MM:SS(.f)".

    Any value the agent can write gives a finite float or a :class:`ToolError`, never another
    exception: integers beyond the float range, strings past Python's int-string limit, NaN and
    infinities, booleans and nested containers are all refused with a message. ``-0`` is ``0``.
    """
    if name not in arguments:
        raise ToolError(f"missing argument {name!r} (seconds, a number)")
    value = arguments[name]
    seconds: float | None = None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)  # OverflowError for ints beyond the float range
        elif isinstance(value, str) and len(value) <= _MAX_NUMBER_CHARS:
            text = value.strip()
            clock = _CLOCK_RE.match(text)
            number = _NUMBER_RE.match(text)
            if clock:
                h, m, s = clock.groups()
                if float(s) >= 60 or (h is not None and int(m) >= 60):
                    raise ToolError(
                        f"argument {name!r}: {value!r} is not a valid [HH:]MM:SS time (minutes and "
                        "seconds run from 00 to 59)"
                    )
                seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
            elif number:
                seconds = float(text.removesuffix("s").strip())
    except (OverflowError, ValueError):
        raise ToolError(
            f"argument {name!r} is too large: got {_show(value)}; times are seconds within the video"
        ) from None
    if seconds is None or not math.isfinite(seconds):
        raise ToolError(f"argument {name!r} must be a finite number of seconds, got {_show(value)}")
    return seconds + 0.0  # -0.0 becomes 0.0


def _check_arguments(
    name: str, arguments: Mapping[str, Any], allowed: tuple[str, ...], video_names: Collection[str]
) -> None:
    unknown = [k for k in arguments if k not in allowed]
    if unknown:
        shown = ", ".join(_show(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise ToolError(f"{name} got unknown argument(s) {shown}; it takes {', '.join(allowed)}")
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
    return ToolOutput("crop_video", frames, stamps, interval=(start, end), text=crop_text(start, end, stamps))


def crop_text(start: float, end: float, stamps: np.ndarray) -> str:
    """The line a crop's observation opens with (also what Stage I's episode-layout examples show)."""
    return (
        f"crop_video [{start:.1f} s, {end:.1f} s]: {len(stamps)} frames at "
        f"{', '.join(f'{t:.1f}' for t in stamps[:3])}{' …' if len(stamps) > 3 else ''} s."
    )


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
    tool = TOOLS.get(name) if isinstance(name, str) else None
    if tool is None:
        raise ToolError(f"unknown tool {_show(name)}; the tools are {', '.join(TOOLS)}")
    if not isinstance(arguments, Mapping):
        raise ToolError(f"{name} arguments must be a JSON object")
    return tool(video, arguments, cfg, video_names)
