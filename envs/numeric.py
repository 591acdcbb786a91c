"""A numeric view of ClinVideoEnv for classic RL libraries (Stable-Baselines3, SPEC §10).

SB3 takes neither text actions nor variable-length frame lists. This env owns a
:class:`~envs.clinvideo.ClinVideoEnv` and translates in both directions:

- actions ``MultiDiscrete([3, bins, max_span_bins, options])`` = (tool, start bin, span, answer
  option) become assistant turns in the text protocol: tool 0 answers with the option's letter,
  tool 1 calls ``crop_video`` over ``span + 1`` bins from the start bin (always a valid
  interval), tool 2 calls ``get_frame`` at the middle of that same span. The base env parses
  and scores them, so rewards, terminations and the final ``info`` are exactly the base env's.
- observations become a one-level Dict of Boxes: the reset preview as one thumbnail per time
  bin (kept for the whole episode), the thumbnails of the last tool call's frames with their
  times, the question and options as hashed word ids, and the turn and tool budgets left.

Only multiple-choice samples can be answered with an option index; the others are skipped
with a warning at construction.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from PIL import Image

from envs.clinvideo import ClinVideoEnv
from medscope_gym.config import config_from
from medscope_gym.errors import ConfigError
from medscope_gym.protocol import format_answer, format_tool_call
from medscope_gym.suite import Sample, Suite, option_letter

__all__ = ["TOOL_NAMES", "NumericConfig", "NumericClinVideoEnv", "hash_words"]

#: Meaning of the first action component.
TOOL_NAMES: tuple[str, ...] = ("answer", "crop_video", "get_frame")
#: Meaning of the ``last_tool`` one-hot observation.
LAST_TOOL_KINDS: tuple[str, ...] = ("none", "crop_video", "get_frame", "error")
_WORD_RE = re.compile(r"[a-z0-9]+")
_LOG = logging.getLogger(__name__)
_PREVIEW_CACHE = 512  # binned previews kept per env (~140 kB each at the default sizes)


@dataclass(frozen=True)
class NumericConfig:
    """Shape of the numeric observations and actions.

    Attributes:
        bins: time bins over the video, for both the preview thumbnails and the start-bin action
            component. 60 bins resolve 2–5 s events in videos up to ~90 s (a bin-aligned crop then
            reaches IoU >= 0.5); longer videos need more.
        max_span_bins: the span component's range: a crop covers 1 … max_span_bins bins. A span
            rather than an end bin makes every action a valid interval, and keeps random crops
            event-sized: with a free end bin a random crop covers a third of the video, scores a
            partial miss (-1) and teaches the agent to stop cropping. ``bins`` allows any length.
        thumb_height, thumb_width: thumbnail size of every frame (area-averaged). 24×32 keeps the
            synthetic event marks (8 px at 160×120) and instrument glyphs visible.
        max_frames: frames of the last tool call kept (evenly subsampled when a crop returns more).
        vocab_size: hash buckets for words (id 0 is padding).
        question_tokens, option_tokens: word ids kept per question / per option.
        max_options: option slots; None takes the largest option count of the suite's questions.
    """

    bins: int = 60
    max_span_bins: int = 8
    thumb_height: int = 24
    thumb_width: int = 32
    max_frames: int = 8
    vocab_size: int = 4096
    question_tokens: int = 32
    option_tokens: int = 8
    max_options: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "bins",
            "max_span_bins",
            "thumb_height",
            "thumb_width",
            "max_frames",
            "question_tokens",
            "option_tokens",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"NumericConfig.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int) or self.vocab_size < 2:
            raise ConfigError(f"NumericConfig.vocab_size must be an integer >= 2, got {self.vocab_size!r}")
        if self.max_options is not None and (not isinstance(self.max_options, int) or self.max_options < 2):
            raise ConfigError(
                f"NumericConfig.max_options must be None or an integer >= 2, got {self.max_options!r}"
            )

    @classmethod
    def from_any(cls, value: NumericConfig | dict[str, Any] | None) -> NumericConfig:
        return config_from(cls, value, "config")


def hash_words(text: str, length: int, vocab_size: int) -> np.ndarray:
    """Word ids of ``text``: lower-cased alphanumeric words hashed (blake2b) into ``1 … vocab_size - 1``.

    A fixed hash rather than a vocabulary built from the suite, so a policy trained on one suite
    reads another suite's questions with the same ids. Padded with 0 / truncated to ``length``.
    """
    out = np.zeros(length, dtype=np.int64)
    for i, word in enumerate(_WORD_RE.findall(text.lower())[:length]):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        out[i] = 1 + int.from_bytes(digest, "little") % (vocab_size - 1)
    return out


class NumericClinVideoEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """ClinVideoEnv with Box observations and MultiDiscrete actions (multiple-choice questions only).

    Args:
        env: a ClinVideoEnv to translate for; None builds one from ``suite`` and ``env_kwargs``.
        suite: suite folder or ``"builtin:NAME"`` when ``env`` is None; None uses the numeric
            benchmark suite (:func:`envs.numeric_suite.numeric_suite_path`).
        split: keep one split of the suite ("train", "val", "test").
        config: a :class:`NumericConfig` or a dict of its fields.
        render_mode: passed to the base env ("rgb_array" timeline or "ansi" transcript).
        **env_kwargs: further ClinVideoEnv arguments (``reward``, ``max_turns``, ``tools``, ...).
            Unless given, the preview is set to ``config.bins`` frames, one per time bin.

    Observation keys (all Boxes): ``preview`` (bins, h, w, 3) uint8; ``frames`` (max_frames, h, w, 3)
    uint8 and ``frame_times`` (max_frames,) in [0, 1] of the duration, ``frame_mask`` (max_frames,);
    ``last_tool`` one-hot over none / crop_video / get_frame / error and ``last_span`` (start, end)
    in [0, 1]; ``question`` (question_tokens,) and ``options`` (max_options, option_tokens) word
    ids, ``option_mask``; ``budget`` = (turns left, tool calls left) as fractions; ``duration`` in
    hours.
    """

    metadata = {
        "render_modes": ["rgb_array", "ansi"],
        "render_fps": 1,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        env: ClinVideoEnv | None = None,
        *,
        suite: str | Path | Suite | None = None,
        split: str | None = None,
        config: NumericConfig | dict[str, Any] | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.config = cfg = NumericConfig.from_any(config)
        if env is None:
            if suite is None:
                from envs.numeric_suite import numeric_suite_path

                suite = str(numeric_suite_path())
            tools = dict(env_kwargs.pop("tools", None) or {})
            tools.setdefault("preview_max_frames", cfg.bins)
            env_kwargs.setdefault("max_open_videos", 128)  # keeps decoders and previews of the whole suite
            env = ClinVideoEnv(suite, split=split, tools=tools, render_mode=render_mode, **env_kwargs)
        elif suite is not None or split is not None or env_kwargs:
            raise ConfigError(
                "pass either a built env or suite/split/env kwargs to NumericClinVideoEnv, not both"
            )
        self.env = env
        self.render_mode = env.unwrapped.render_mode
        base = env.unwrapped
        self.samples: tuple[Sample, ...] = _choice_samples(base.suite)
        self.max_turns = int(base.max_turns)
        self.max_tool_calls = int(base.max_tool_calls)
        n_options = max(len(s.options or ()) for s in self.samples)
        if cfg.max_options is None:
            self.config = cfg = replace(cfg, max_options=n_options)
        elif cfg.max_options < n_options:
            raise ConfigError(
                f"NumericConfig.max_options={cfg.max_options} but a question has {n_options} options"
            )
        self._max_hours = max(s.duration for s in self.samples) / 3600.0 * 2.0 + 1.0
        self._encoded: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._previews: dict[str, np.ndarray] = {}

        thumb = (cfg.thumb_height, cfg.thumb_width, 3)
        f, o = cfg.max_frames, int(cfg.max_options)
        self.observation_space = spaces.Dict(
            {
                "preview": spaces.Box(0, 255, (cfg.bins, *thumb), np.uint8),
                "frames": spaces.Box(0, 255, (f, *thumb), np.uint8),
                "frame_times": spaces.Box(0.0, 1.0, (f,), np.float32),
                "frame_mask": spaces.Box(0.0, 1.0, (f,), np.float32),
                "last_tool": spaces.Box(0.0, 1.0, (len(LAST_TOOL_KINDS),), np.float32),
                "last_span": spaces.Box(0.0, 1.0, (2,), np.float32),
                "question": spaces.Box(0, cfg.vocab_size - 1, (cfg.question_tokens,), np.int64),
                "options": spaces.Box(0, cfg.vocab_size - 1, (o, cfg.option_tokens), np.int64),
                "option_mask": spaces.Box(0.0, 1.0, (o,), np.float32),
                "budget": spaces.Box(0.0, 1.0, (2,), np.float32),
                "duration": spaces.Box(0.0, np.float32(self._max_hours), (1,), np.float32),
            }
        )
        if cfg.max_span_bins > cfg.bins:
            raise ConfigError(f"NumericConfig.max_span_bins ({cfg.max_span_bins}) exceeds bins ({cfg.bins})")
        self.action_space = spaces.MultiDiscrete([len(TOOL_NAMES), cfg.bins, cfg.max_span_bins, o])
        self._sample: Sample | None = None
        self._duration = 1.0
        self._preview: np.ndarray | None = None
        self._turns = 0
        self._tool_calls = 0

    # ------------------------------------------------------------------ public API
    @property
    def current_sample(self) -> Sample | None:
        """The base env's sample of the current episode."""
        return self.env.unwrapped.current_sample

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode on a multiple-choice sample: ``options`` may name ``sample_id`` or
        ``sample_index`` (an index into :attr:`samples`); otherwise one is drawn from ``np_random``."""
        super().reset(seed=seed)
        options = dict(options or {})
        if "sample_id" in options:
            sample_id = str(options["sample_id"])
            if sample_id not in {s.id for s in self.samples}:
                raise ConfigError(f"sample {sample_id!r} is not one of this env's multiple-choice samples")
        elif "sample_index" in options:
            sample_id = self.samples[int(options["sample_index"])].id
        else:
            sample_id = self.samples[int(self.np_random.integers(len(self.samples)))].id
        obs, info = self.env.reset(seed=seed, options={"sample_id": sample_id})
        self._sample = sample = self.env.unwrapped.current_sample
        self._duration = float(info["duration"])
        if sample.id not in self._previews:  # the preview of a sample never changes: thumbnail it once
            if len(self._previews) >= _PREVIEW_CACHE:
                self._previews.pop(next(iter(self._previews)))
            self._previews[sample.id] = self._bin_preview(obs["video"], obs["video_times"][:, 0])
        self._preview = self._previews[sample.id]
        self._turns = self._tool_calls = 0
        return self._observation(None, None, "none"), info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._sample is None:
            raise RuntimeError("NumericClinVideoEnv.step() called before reset()")
        text = self.action_text(action)
        obs, reward, terminated, truncated, info = self.env.step(text)
        self._turns += 1
        tool = int(np.asarray(action).reshape(-1)[0])
        kind, frames, times = ("error" if tool != 0 else "none"), None, None
        if len(obs["images"]):
            kind, frames, times = "get_frame", obs["images"], obs["image_times"][:, 0]
        elif len(obs["video"]):
            kind, frames, times = "crop_video", obs["video"], obs["video_times"][:, 0]
        if frames is not None:
            self._tool_calls += 1
        info = dict(info)
        info["action_text"] = text
        return self._observation(frames, times, kind), reward, bool(terminated), bool(truncated), info

    def action_text(self, action: np.ndarray) -> str:
        """The assistant turn that ``action`` stands for in the current episode."""
        tool, start, span, option = (int(x) for x in np.asarray(action).reshape(-1)[:4])
        if not self.action_space.contains(np.asarray([tool, start, span, option], dtype=np.int64)):
            raise ValueError(f"action {[tool, start, span, option]} is outside {self.action_space}")
        if tool == 0:
            return format_answer(
                option_letter(option), think=f"The frames I saw point to option {option_letter(option)}."
            )
        lo, hi = self.span_seconds(start, span)
        if tool == 1:
            return format_tool_call(
                "crop_video",
                {"start_time": lo, "end_time": hi},
                think=f"I look closer at {lo:.1f}-{hi:.1f} s.",
            )
        t = round((lo + hi) / 2, 3)
        return format_tool_call("get_frame", {"timestamp": t}, think=f"I check the frame at {t:.1f} s.")

    def span_seconds(self, start_bin: int, span: int) -> tuple[float, float]:
        """Seconds covered by ``span + 1`` bins from ``start_bin`` (clipped to the video) in this episode."""
        bins = self.config.bins
        hi = min(bins, start_bin + span + 1)
        width = self._duration / bins
        start = round(start_bin * width, 3)
        end = self._duration if hi == bins else round(hi * width, 3)
        return start, end

    def render(self) -> np.ndarray | str | None:
        return self.env.render()

    def close(self) -> None:
        self.env.close()
        super().close()

    # ------------------------------------------------------------------ internals
    def _thumbs(self, frames: np.ndarray) -> np.ndarray:
        """Area-averaged thumbnails: PIL's block reduce when the sizes divide, else its box filter."""
        cfg = self.config
        n, h, w, _ = frames.shape
        th, tw = cfg.thumb_height, cfg.thumb_width
        out = np.empty((n, th, tw, 3), dtype=np.uint8)
        for i, frame in enumerate(frames):
            image = Image.fromarray(frame)
            if h % th == 0 and w % tw == 0:
                out[i] = np.asarray(image.reduce((w // tw, h // th)))
            else:
                out[i] = np.asarray(image.resize((tw, th), Image.Resampling.BOX))
        return out

    def _bin_preview(self, frames: np.ndarray, times: np.ndarray) -> np.ndarray:
        """One thumbnail per time bin: the mean of the preview frames inside it, else the nearest one."""
        bins = self.config.bins
        thumbs = self._thumbs(frames).astype(np.float32)
        which = np.clip((times / self._duration * bins).astype(np.int64), 0, bins - 1)
        centres = (np.arange(bins) + 0.5) * self._duration / bins
        nearest = np.abs(times[None, :] - centres[:, None]).argmin(axis=1)
        out = thumbs[nearest]
        for b in np.unique(which):
            out[b] = thumbs[which == b].mean(axis=0)
        return np.round(out).astype(np.uint8)

    def _question_ids(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if sample.id not in self._encoded:
            cfg = self.config
            opts = np.zeros((int(cfg.max_options), cfg.option_tokens), dtype=np.int64)
            mask = np.zeros(int(cfg.max_options), dtype=np.float32)
            for i, opt in enumerate(sample.options or ()):
                opts[i] = hash_words(opt, cfg.option_tokens, cfg.vocab_size)
                mask[i] = 1.0
            self._encoded[sample.id] = (
                hash_words(sample.question, cfg.question_tokens, cfg.vocab_size),
                opts,
                mask,
            )
        return self._encoded[sample.id]

    def _observation(self, frames: np.ndarray | None, times: np.ndarray | None, kind: str) -> dict[str, Any]:
        cfg = self.config
        assert self._sample is not None and self._preview is not None
        f = cfg.max_frames
        shown = np.zeros((f, cfg.thumb_height, cfg.thumb_width, 3), dtype=np.uint8)
        frame_times = np.zeros(f, dtype=np.float32)
        mask = np.zeros(f, dtype=np.float32)
        last_tool = np.zeros(len(LAST_TOOL_KINDS), dtype=np.float32)
        span = np.zeros(2, dtype=np.float32)
        if frames is not None and times is not None and len(frames):
            keep = np.unique(np.round(np.linspace(0, len(frames) - 1, min(f, len(frames)))).astype(np.int64))
            shown[: len(keep)] = self._thumbs(frames[keep])
            frame_times[: len(keep)] = np.clip(times[keep] / self._duration, 0.0, 1.0)
            mask[: len(keep)] = 1.0
            span[:] = np.clip([times[keep].min() / self._duration, times[keep].max() / self._duration], 0, 1)
        last_tool[LAST_TOOL_KINDS.index(kind)] = 1.0
        question, options, option_mask = self._question_ids(self._sample)
        budget = np.array(
            [
                max(0, self.max_turns - self._turns) / self.max_turns,
                max(0, self.max_tool_calls - self._tool_calls) / max(1, self.max_tool_calls),
            ],
            dtype=np.float32,
        )
        return {
            "preview": self._preview.copy(),
            "frames": shown,
            "frame_times": frame_times,
            "frame_mask": mask,
            "last_tool": last_tool,
            "last_span": span,
            "question": question.copy(),
            "options": options.copy(),
            "option_mask": option_mask.copy(),
            "budget": budget,
            "duration": np.array([min(self._duration / 3600.0, self._max_hours)], dtype=np.float32),
        }

    def config_dict(self) -> dict[str, Any]:
        """The numeric config as plain data (saved beside trained models)."""
        return asdict(self.config)


def _choice_samples(suite: Suite) -> tuple[Sample, ...]:
    """The suite's multiple-choice samples; logs a warning naming what is skipped, fails if nothing is left.

    A log record rather than ``warnings.warn``: Gymnasium's checker treats warnings as errors and
    rebuilds the env, and a skipped sample is expected, not a fault.
    """
    kept = tuple(s for s in suite if s.answer_type == "choice" and s.options)
    skipped = Counter(
        f"{s.task} ({s.answer_type})" for s in suite if not (s.answer_type == "choice" and s.options)
    )
    if not kept:
        raise ConfigError(
            f"suite {str(suite.root)!r} has no multiple-choice questions; the numeric env answers "
            f"with an option index and cannot take {', '.join(sorted(skipped))}"
        )
    if skipped:
        _LOG.warning(
            "NumericClinVideoEnv: skipping %d of %d samples of %s that are not multiple choice (%s); "
            "%d multiple-choice samples remain",
            sum(skipped.values()),
            len(suite),
            suite.root,
            ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())),
            len(kept),
        )
    return kept
