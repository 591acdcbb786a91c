"""The testbed suite family: small, cheap videos where coarse-to-fine evidence seeking is necessary.

Designed for a small model trained on a CPU in minutes (docs/suites.md, "Testbed"):

- 64×64 px frames at 2 fps, H.264 with a 2 s GOP: a 2-minute video is ~240 frames and a few kB.
- Each video shows a handful of brief *symbols* (shape × colour, 16×16 px at the centre, 2–3.5 s
  on screen), each inside a longer *highlighted interval* (a white bar along the top of the frame).
- The suite ships its tool budget (``tools.json``, read by ``ClinVideoEnv``): a 16-frame preview at
  32×32 px, crops at 2 fps and 64×64 px. Every symbol is placed strictly between two consecutive
  preview frames while its highlighted interval covers both: the preview shows *where* something
  happens (the bar) but never *what* (no preview frame holds a symbol) nor exactly *when*. A crop
  between the two highlighted preview frames shows the symbol and its first and last frame.

Questions (choice ones balanced over A–D, distractors first from the same video's other symbols):

- ``symbol_in_highlight`` (symbol_recognition, choice): which symbol appears in the k-th highlighted
  interval; evidence: the symbol's span.
- ``symbol_grounding`` (temporal_grounding, ``[s, e]``): when the named symbol is on screen.
- ``symbol_at`` (perception, choice): which symbol is on screen at t (t given); evidence ``[t, t]``.
- ``symbol_span_at`` (perception, ``[s, e]``): when the symbol on screen at t appears and leaves.

The last two are perception questions: the time is given, so they test reading symbols and
timestamps without a search (``medscope recipe`` asks ``symbol_at`` as its reading check). Each sample
carries the video's dense timestamped captions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from medscope_gym.atomic import atomic_directory, atomic_write_text
from medscope_gym.errors import ConfigError
from medscope_gym.suite.labels import format_seconds, ordinal
from medscope_gym.suite.schema import Caption, Sample, option_letter
from medscope_gym.suite.suite import TOOLS_FILE, write_suite
from medscope_gym.suite.templates import balance_answer_positions
from medscope_gym.synthetic.procedure import FrameSpan
from medscope_gym.synthetic.render import h264_writer
from medscope_gym.tools import ToolConfig, sample_times

__all__ = [
    "MAIN_TEMPLATES",
    "NOTHING_HIGHLIGHTED",
    "PERCEPTION_TEMPLATES",
    "SYMBOL_COLORS",
    "SYMBOL_FREE_CAPTIONS",
    "SYMBOL_SHAPES",
    "SYMBOLS",
    "symbol_caption",
    "TESTBED_TOOLS",
    "TestbedConfig",
    "TestbedEvent",
    "TestbedVideo",
    "build_testbed_suite",
    "chance_accuracy",
    "events_range",
    "generate_testbed_video",
    "preview_frames",
    "render_frames",
    "render_testbed_video",
    "symbol_mask",
    "testbed_questions",
]

SYMBOL_SHAPES: tuple[str, ...] = ("square", "triangle", "cross", "ring")
#: Light tints, every channel above the background's (at most ~120): a shape shows in every channel,
#: so one shape detector reads it in any colour. In saturated colours each colour's shape showed in one
#: channel only, and a model from scratch could miss a colour's shapes for thousands of steps, reading
#: every green one as the same (docs/results.md, "Shapes in every channel").
SYMBOL_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 150, 150),
    "green": (150, 255, 150),
    "blue": (150, 170, 255),
}
SYMBOLS: tuple[str, ...] = tuple(f"{c} {s}" for c in SYMBOL_COLORS for s in SYMBOL_SHAPES)


def symbol_caption(symbol: str) -> str:
    """A symbol in the dense captions' words (``"a red ring at the centre"``)."""
    return f"a {symbol} at the centre"


MAIN_TEMPLATES: tuple[str, ...] = ("symbol_in_highlight", "symbol_grounding")
PERCEPTION_TEMPLATES: tuple[str, ...] = ("symbol_at", "symbol_span_at")
_TEMPLATE_TASKS = {
    "symbol_in_highlight": "symbol_recognition",
    "symbol_grounding": "temporal_grounding",
    "symbol_at": "perception",
    "symbol_span_at": "perception",
}
_INTERVAL_HINT = "Answer with [start, end] in seconds."
_HIGHLIGHT = "highlighted interval (white bar at the top)"
#: The dense captions of every stretch without a highlight.
NOTHING_HIGHLIGHTED = "nothing highlighted"
_HIGHLIGHT_BEGINS = "a highlighted interval begins; no symbol yet"
_HIGHLIGHT_ENDS = "the symbol has gone; the highlight ends"
#: Every dense caption that names no symbol: a frame under any other caption shows one.
SYMBOL_FREE_CAPTIONS = (NOTHING_HIGHLIGHTED, _HIGHLIGHT_BEGINS, _HIGHLIGHT_ENDS)
#: The tool budget every testbed suite ships in its tools.json: the preview is coarse in time (16 frames)
#: and in pixels (32×32); crops and frames are at the video's full rate and resolution.
TESTBED_TOOLS = ToolConfig(
    preview_fps=1.0,
    preview_max_frames=16,
    preview_max_pixels=32 * 32,
    crop_fps=2.0,
    crop_max_frames=16,
    crop_max_pixels=64 * 64,
    frame_count=3,
    frame_max_pixels=64 * 64,
)
_SIZE = 64
_SYMBOL = 16  # symbol side, pixels (two 8-px patches)
#: The symbol's top-left pixel, on the 16-px grid: with 8-px patches merged 2x2 (the recipe's tiny model),
#: the whole symbol is one vision token instead of a quarter in each of four. A model from scratch learned
#: the shapes sooner on the grid than off it (docs/results.md, "Reading probe").
_SYMBOL_AT = _SIZE // 2 - _SYMBOL
_BAR = 6  # highlight bar height, pixels


def events_range(value: Any, name: str) -> tuple[int, int]:
    """``value`` as a (least, most) number of symbols per video, or a ConfigError that names ``name``."""
    try:
        least, most = (int(x) for x in value)
    except (TypeError, ValueError):
        least, most = 0, 0
    if not 1 <= least <= most:
        raise ConfigError(f"{name} must be (least, most) with 1 <= least <= most, got {value!r}")
    return least, most


@dataclass(frozen=True)
class TestbedConfig:
    """How many testbed videos of which length to build, and their questions."""

    n_videos: int = 8
    """Videos in the suite (each its own procedure, drawn from ``seed``)."""
    min_duration_s: float = 90.0
    """Shortest video, seconds."""
    max_duration_s: float = 150.0
    """Longest video, seconds."""
    seed: int = 0
    """Seed of the videos and questions; different seeds give different videos."""
    events: tuple[int, int] = (3, 4)
    """Least and most symbols per video (each in its own highlighted interval)."""
    per_video: int = 3
    """At most this many questions of each template per video."""
    templates: tuple[str, ...] = MAIN_TEMPLATES
    """Question templates (``MAIN_TEMPLATES``, ``PERCEPTION_TEMPLATES`` or any mix)."""
    splits: tuple[float, float, float] = (1.0, 0.0, 0.0)
    """Shares of videos in train / val / test (by video)."""
    video_prefix: str = "tb"
    """Prefix of video names and sample ids (keeps ids of suites built with other seeds distinct)."""

    def __post_init__(self) -> None:
        if self.n_videos < 1 or not 0 < self.min_duration_s <= self.max_duration_s:
            raise ConfigError("TestbedConfig needs n_videos >= 1 and 0 < min_duration_s <= max_duration_s")
        object.__setattr__(self, "events", events_range(self.events, "TestbedConfig.events"))
        unknown = [t for t in self.templates if t not in _TEMPLATE_TASKS]
        if unknown:
            raise ConfigError(f"unknown testbed template(s) {unknown}; known: {', '.join(_TEMPLATE_TASKS)}")
        if len(self.splits) != 3 or min(self.splits) < 0 or sum(self.splits) <= 0:
            raise ConfigError(f"TestbedConfig.splits must be 3 non-negative shares, got {self.splits}")


@dataclass(frozen=True)
class TestbedEvent(FrameSpan):
    """One symbol: on screen in frames ``[start_frame, end_frame)``, inside its highlight frames."""

    symbol: str
    start_frame: int
    end_frame: int
    highlight_start_frame: int
    highlight_end_frame: int
    fps: float

    @property
    def highlight(self) -> tuple[float, float]:
        return self.highlight_start_frame / self.fps, self.highlight_end_frame / self.fps


@dataclass(frozen=True)
class TestbedVideo:
    """A testbed video's ground truth."""

    seed: int
    fps: float
    num_frames: int
    events: tuple[TestbedEvent, ...]
    tint: tuple[int, int, int] = field(default=(60, 60, 70))

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def captions(self) -> tuple[Caption, ...]:
        """Dense timestamped captions: what is on screen in every stretch of the video."""
        out: list[Caption] = []
        t = 0.0
        for ev in self.events:
            h0, h1 = ev.highlight
            if h0 > t:
                out.append(Caption(t, h0, NOTHING_HIGHLIGHTED))
            out.append(Caption(h0, ev.start, _HIGHLIGHT_BEGINS))
            out.append(Caption(ev.start, ev.end, symbol_caption(ev.symbol)))
            out.append(Caption(ev.end, h1, _HIGHLIGHT_ENDS))
            t = h1
        if t < self.duration:
            out.append(Caption(t, self.duration, NOTHING_HIGHLIGHTED))
        return tuple(Caption(round(c.start, 3), round(c.end, 3), c.text) for c in out)


def _frames_at(times: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Indices of the frames on screen at ``times`` (each once, in order), as the env's video reads them."""
    return np.unique(np.clip(np.floor(times * fps + 1e-9).astype(np.int64), 0, num_frames - 1))


def preview_frames(num_frames: int, fps: float, tools: ToolConfig = TESTBED_TOOLS) -> np.ndarray:
    """Indices of the frames the env's preview shows (``sample_times`` on the tools' preview grid)."""
    times = sample_times(0.0, num_frames / fps, tools.preview_fps, tools.preview_max_frames)
    return _frames_at(times, num_frames, fps)


def crop_frames(
    num_frames: int, fps: float, start: float, end: float, tools: ToolConfig = TESTBED_TOOLS
) -> np.ndarray:
    """Indices of the frames ``crop_video(start, end)`` shows (``sample_times`` on the tools' crop grid)."""
    return _frames_at(sample_times(start, end, tools.crop_fps, tools.crop_max_frames), num_frames, fps)


def generate_testbed_video(seed: int, duration_s: float, fps: float = 2.0, events: tuple[int, int] = (3, 4)):
    """Draw a testbed video: symbols between preview frames, highlights covering the preview frames."""
    rng = np.random.default_rng([int(seed), 77])
    n = int(round(duration_s * fps))
    shown = preview_frames(n, fps)
    min_len, max_len = int(round(2.0 * fps)), int(round(3.5 * fps))
    # Gaps between consecutive preview frames wide enough for the longest symbol plus a frame each side.
    gaps = [k for k in range(len(shown) - 1) if shown[k + 1] - shown[k] - 3 >= min_len]
    want = int(rng.integers(events[0], events[1] + 1))
    chosen: list[int] = []
    for k in rng.permutation(gaps):
        # a highlight covers the preview frames on both sides of its gap: two gaps apart, so an
        # unmarked preview frame always separates two highlights and the preview can count them
        if all(abs(int(k) - c) >= 3 for c in chosen):
            chosen.append(int(k))
        if len(chosen) == want:
            break
    if not chosen:
        raise ConfigError(f"a {duration_s:.0f} s testbed video has no room for a symbol")
    symbols = [SYMBOLS[i] for i in rng.choice(len(SYMBOLS), size=len(chosen), replace=False)]
    out = []
    for k, symbol in zip(sorted(chosen), symbols):
        lo, hi = int(shown[k]) + 2, int(shown[k + 1]) - 1  # symbol frames in [lo, hi), no preview frame
        length = int(rng.integers(min_len, min(max_len, hi - lo) + 1))
        start = int(rng.integers(lo, hi - length + 1))
        h0 = max(0, int(shown[k]) - int(rng.integers(0, 3)))
        h1 = min(n, int(shown[k + 1]) + 1 + int(rng.integers(0, 3)))
        out.append(TestbedEvent(symbol, start, start + length, h0, h1, float(fps)))
    tint = tuple(int(x) for x in rng.integers(40, 90, size=3))
    return TestbedVideo(int(seed), float(fps), n, tuple(out), tint)  # type: ignore[arg-type]


def symbol_mask(shape: str, s: int = _SYMBOL) -> np.ndarray:
    """Boolean ``(s, s)`` mask of a symbol shape."""
    c = (np.arange(s) + 0.5) / s - 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    rr = np.hypot(xx, yy)
    shapes = {
        "square": (np.abs(xx) <= 0.42) & (np.abs(yy) <= 0.42),
        "triangle": (yy >= -0.42) & (yy <= 0.42) & (np.abs(xx) <= (yy + 0.42) * 0.55),
        "cross": ((np.abs(xx) <= 0.14) | (np.abs(yy) <= 0.14)) & (rr <= 0.6),
        "ring": (rr <= 0.48) & (rr >= 0.26),
    }
    if shape not in shapes:
        raise ConfigError(f"unknown symbol shape {shape!r}; known: {', '.join(SYMBOL_SHAPES)}")
    return shapes[shape]


def render_frames(video: TestbedVideo, indices=None) -> np.ndarray:
    """Frames ``indices`` (default: all) as ``(len, 64, 64, 3)`` uint8; a frame is the same whichever
    others are rendered with it (a few MB for a whole video)."""
    rng = np.random.default_rng([video.seed, 991])
    n, s = video.num_frames, _SIZE
    which = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    base = np.asarray(video.tint, dtype=np.float32)
    t = which.astype(np.float32) / video.fps
    phase = rng.uniform(0, 2 * np.pi, size=2)
    # each frame's noise from its own stream: the same frame whichever others are rendered, without
    # drawing a whole video's noise to show three of its frames
    noise = [np.random.default_rng([video.seed, 991, int(f)]).normal(0, 3, size=(s, s, 1)) for f in which]
    frames = np.empty((len(which), s, s, 3), dtype=np.uint8)
    for j in range(len(which)):  # a slowly drifting soft gradient plus noise: never a trivially empty frame
        wave = np.sin(2 * np.pi * (xx * 1.3 + yy * 0.7) + t[j] * 0.4 + phase[0]) * 12
        wave += np.cos(2 * np.pi * (yy * 1.1) + t[j] * 0.25 + phase[1]) * 8
        frames[j] = np.clip(base[None, None, :] + wave[..., None] + noise[j], 0, 255).astype(np.uint8)
    c0 = _SYMBOL_AT
    for ev in video.events:
        bar = (which >= ev.highlight_start_frame) & (which < ev.highlight_end_frame)
        frames[bar, :_BAR] = 235
        colour, shape = ev.symbol.split(" ")
        on = np.flatnonzero((which >= ev.start_frame) & (which < ev.end_frame))
        patch = frames[on, c0 : c0 + _SYMBOL, c0 : c0 + _SYMBOL]
        patch[:, symbol_mask(shape)] = SYMBOL_COLORS[colour]
        frames[on, c0 : c0 + _SYMBOL, c0 : c0 + _SYMBOL] = patch
    return frames


def render_testbed_video(video: TestbedVideo, path: str | os.PathLike[str], gop_s: float = 2.0) -> None:
    """Write the video as H.264 (yuv420p, crf 16, one keyframe every ``gop_s`` seconds)."""
    path = Path(path)
    rate = Fraction(video.fps).limit_denominator(1001)
    gop = max(1, int(round(gop_s * video.fps)))
    options = {
        "crf": "16",
        "preset": "veryfast",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:threads=1",
    }
    with h264_writer(path, _SIZE, _SIZE, rate, options) as (container, stream):
        for i, img in enumerate(render_frames(video)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))


def _t(x: float) -> str:
    return format_seconds(round(x, 1))


def _questions(video: TestbedVideo, name: str, rel: str, cfg: TestbedConfig, rng) -> list[Sample]:
    """Candidate questions about one video for the configured templates."""
    d, evs = video.duration, video.events
    captions = video.captions()
    out: list[Sample] = []

    def add(template, question, answer, evidence, query, options=None):
        k = sum(1 for s in out if s.extra["template"] == template) + 1
        kind = "choice" if options is not None else "interval"
        text = option_letter(0) if options is not None else f"[{_t(answer[0])}, {_t(answer[1])}]"
        out.append(
            Sample(
                id=f"{name}-{template}-{k:03d}",
                video=rel,
                duration=d,
                fps=video.fps,
                question=question,
                answer=text,
                answer_type=kind,
                task=_TEMPLATE_TASKS[template],
                evidence=tuple((float(a), float(b)) for a, b in evidence),
                source="testbed",
                options=tuple(options) if options is not None else None,
                captions=captions,
                extra={"template": template, "query": query},
            )
        )

    def options_for(ev: TestbedEvent) -> list[str]:
        same = [e.symbol for e in evs if e.symbol != ev.symbol]
        other = [s for s in SYMBOLS if s != ev.symbol and s not in same]
        pool = [same[j] for j in rng.permutation(len(same))] + [other[j] for j in rng.permutation(len(other))]
        return [ev.symbol, *pool[:3]]

    def pick(k: int) -> list[int]:
        return sorted(int(i) for i in rng.permutation(len(evs))[: min(k, len(evs))])

    for template in cfg.templates:
        for i in pick(cfg.per_video):
            ev = evs[i]
            span = (round(ev.start, 1), round(ev.end, 1))
            if template == "symbol_in_highlight":
                q = f"Which symbol appears in the {ordinal(i)} {_HIGHLIGHT}?"
                add(template, q, None, [span], {"event": i}, options_for(ev))
            elif template == "symbol_grounding":
                q = f"When is the {ev.symbol} on screen? {_INTERVAL_HINT}"
                add(template, q, span, [span], {"event": i})
            else:
                frame = int(rng.integers(ev.start_frame, ev.end_frame))
                at = round((frame + 0.5) / video.fps, 1)
                if template == "symbol_at":
                    q = f"Which symbol is on screen at {_t(at)} s?"
                    add(template, q, None, [(at, at)], {"event": i, "time": at}, options_for(ev))
                else:
                    q = f"A symbol is on screen at {_t(at)} s. When does it appear and leave? "
                    q += _INTERVAL_HINT
                    add(template, q, span, [span], {"event": i, "time": at})
    return out


def testbed_questions(video: TestbedVideo, name: str, cfg: TestbedConfig | None = None, seed: int = 0):
    """The questions of ``cfg.templates`` about ``video`` (named ``name``), without rendering it."""
    cfg = cfg or TestbedConfig()
    return _questions(video, name, f"videos/{name}.mp4", cfg, np.random.default_rng([int(seed), 4711]))


def build_testbed_suite(out_dir: str | os.PathLike[str], cfg: TestbedConfig | None = None) -> Path:
    """Render ``cfg.n_videos`` testbed videos and write their suite (``suite.jsonl``, ``tools.json``,
    ``captions.jsonl``, ``testbed.json``) at ``out_dir``, atomically."""
    cfg = cfg or TestbedConfig()
    rng = np.random.default_rng([int(cfg.seed), 4711])
    durations = rng.uniform(cfg.min_duration_s, cfg.max_duration_s, size=cfg.n_videos)
    seeds = rng.integers(0, 2**31 - 1, size=cfg.n_videos)
    shares = np.asarray(cfg.splits, dtype=np.float64) / sum(cfg.splits)
    counts = np.floor(shares * cfg.n_videos).astype(int)
    for j in np.argsort(-(shares * cfg.n_videos - counts))[: cfg.n_videos - counts.sum()]:
        counts[j] += 1
    split_of = [s for s, c in zip(("train", "val", "test"), counts) for _ in range(c)]
    samples: list[Sample] = []
    manifest = {"config": asdict(cfg), "tools": asdict(TESTBED_TOOLS), "videos": []}
    with atomic_directory(out_dir) as tmp:
        caption_lines = []
        for k in range(cfg.n_videos):
            name = f"{cfg.video_prefix}{cfg.seed}-{k + 1:03d}"
            rel = f"videos/{name}.mp4"
            video = generate_testbed_video(int(seeds[k]), float(durations[k]), events=cfg.events)
            render_testbed_video(video, tmp / rel)
            qs = _questions(video, name, rel, cfg, rng)
            samples += [_with_split(s, split_of[k]) for s in qs]
            caption_lines.append(
                json.dumps({"video": rel, "captions": [c.to_dict() for c in video.captions()]})
            )
            manifest["videos"].append(
                {
                    "name": name,
                    "video": rel,
                    "split": split_of[k],
                    "duration": video.duration,
                    "events": [
                        {"symbol": e.symbol, "span": [e.start, e.end], "highlight": list(e.highlight)}
                        for e in video.events
                    ],
                }
            )
        samples = balance_answer_positions(samples, rng)
        write_suite(tmp, samples)
        atomic_write_text(tmp / TOOLS_FILE, json.dumps(asdict(TESTBED_TOOLS), indent=1) + "\n")
        atomic_write_text(tmp / "captions.jsonl", "\n".join(caption_lines) + "\n")
        atomic_write_text(tmp / "testbed.json", json.dumps(manifest, indent=1) + "\n")
    return Path(out_dir)


def _with_split(sample: Sample, split: str) -> Sample:
    return dataclasses.replace(sample, split=split)


def chance_accuracy(samples) -> float:
    """Expected accuracy of a uniform guess over the options (interval answers count 0)."""
    vals = [1.0 / len(s.options) if s.answer_type == "choice" and s.options else 0.0 for s in samples]
    return float(np.mean(vals)) if vals else math.nan
