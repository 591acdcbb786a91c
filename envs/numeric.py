"""The numeric view of ClinVideoEnv for classic RL libraries (Stable-Baselines3; docs/classic-rl.md).

SB3 takes neither text actions nor variable-length frame lists. :class:`NumericClinVideoEnv` is a
``gymnasium.Wrapper`` around a :class:`~medscope_gym.envs.clinvideo.ClinVideoEnv` (as Minigrid's
observation views are wrappers of its envs) and translates in both directions:

- actions ``MultiDiscrete([3, bins, max_span_bins, options])`` = (tool, time bin, span, answer
  option) become assistant turns in the text protocol: tool 0 answers with the option's letter,
  tool 1 calls ``crop_video`` over ``span + 1`` bins centred on the time bin (always a valid
  interval), tool 2 calls ``get_frame`` at the middle of the time bin. The base env parses and
  scores them, so rewards, terminations and the final ``info`` are exactly the base env's.
- observations become a one-level Dict of Boxes: the reset preview as one thumbnail per time
  bin and its *brief changes* (per bin and image cell: what appeared for a few seconds only, its
  colour and strength), both kept for the whole episode; the thumbnails of the last tool call's
  frames with their times; the question and options as hashed word ids; the budgets left. The
  feature extraction lives in :mod:`medscope_gym.envs.numeric_features`.

Only multiple-choice samples can be answered with an option index; the others are skipped
with a warning at construction.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode

from medscope_gym.config import config_from
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.envs.numeric_features import binned_preview, hash_words, thumbnails
from medscope_gym.envs.numeric_suite import numeric_suite_path
from medscope_gym.errors import ConfigError
from medscope_gym.protocol import format_answer, format_tool_call
from medscope_gym.suite import Sample, Suite, option_letter

__all__ = ["LAST_TOOL_KINDS", "TOOL_NAMES", "NumericClinVideoEnv", "NumericConfig"]

#: Meaning of the first action component.
TOOL_NAMES: tuple[str, ...] = ("answer", "crop_video", "get_frame")
#: Meaning of the ``last_tool`` one-hot observation.
LAST_TOOL_KINDS: tuple[str, ...] = ("none", "crop_video", "get_frame", "error")
_LOG = logging.getLogger(__name__)
_PREVIEW_CACHE = 1024  # binned previews kept per wrapper (~50 kB each at the default sizes)


@dataclass(frozen=True)
class NumericConfig:
    """Shape of the numeric observations and actions.

    Attributes:
        bins: time bins over the video, for the preview, its brief changes and the time-bin
            action component. 60 bins resolve 2–5 s events in videos up to ~90 s (a bin-aligned
            crop then reaches IoU >= 0.5); longer videos need more.
        max_span_bins: the span component's range: a crop covers 1 … max_span_bins bins centred
            on the time bin. A span rather than an end bin makes every action a valid interval,
            and keeps random crops event-sized: with a free end bin a random crop covers a third
            of the video. ``bins`` allows any length.
        thumb_height, thumb_width: thumbnail size of the tool calls' frames (area-averaged).
            24×32 keeps the synthetic instrument glyphs and event marks (8 px at 160×120) visible.
        preview_height, preview_width: thumbnail size of the preview bins (scene colour, coarse
            layout; the brief marks are in ``changes``). Small, since every observation holds
            ``bins`` of them and SB3 keeps every observation of a rollout.
        change_height, change_width: image cells of the brief-change map (each cell keeps its
            strongest brief change): 6×8 cells are 20 px at 160×120.
        budget_terminates: report an episode that ran out of turns or tool calls as
            ``terminated`` (the base env says ``truncated``; the reward is the same, 0 accuracy).
            The budget is part of the observation and the episode's reward is final, so it is a
            terminal state of the MDP; reported as a truncation, SB3 bootstraps its return from
            the value of the last observation, and PPO learns that never answering pays about as
            much as answering. ``info["base_truncated"]`` keeps the base env's flag.
        max_frames: frames of the last tool call kept (evenly subsampled when a crop returns more).
        vocab_size: hash buckets for words (id 0 is padding).
        question_tokens, option_tokens: word ids kept per question / per option.
        max_options: option slots; None takes the largest option count of the suite's questions.
    """

    bins: int = 60
    max_span_bins: int = 8
    thumb_height: int = 24
    thumb_width: int = 32
    preview_height: int = 12
    preview_width: int = 16
    change_height: int = 6
    change_width: int = 8
    max_frames: int = 8
    vocab_size: int = 4096
    question_tokens: int = 32
    option_tokens: int = 8
    max_options: int | None = None
    budget_terminates: bool = True

    def __post_init__(self) -> None:
        for name in (
            "bins",
            "max_span_bins",
            "thumb_height",
            "thumb_width",
            "preview_height",
            "preview_width",
            "change_height",
            "change_width",
            "max_frames",
            "question_tokens",
            "option_tokens",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"NumericConfig.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int) or self.vocab_size < 2:
            raise ConfigError(f"NumericConfig.vocab_size must be an integer >= 2, got {self.vocab_size!r}")
        if not isinstance(self.budget_terminates, bool):
            raise ConfigError(f"NumericConfig.budget_terminates must be a bool: {self.budget_terminates!r}")
        if self.max_options is not None and (not isinstance(self.max_options, int) or self.max_options < 2):
            raise ConfigError(
                f"NumericConfig.max_options must be None or an integer >= 2, got {self.max_options!r}"
            )

    @classmethod
    def from_any(cls, value: NumericConfig | dict[str, Any] | None) -> NumericConfig:
        return config_from(cls, value, "config")


class NumericClinVideoEnv(gym.Wrapper[dict[str, np.ndarray], np.ndarray, dict[str, Any], str]):
    """A ``gymnasium.Wrapper`` giving a ClinVideoEnv Box observations and MultiDiscrete actions.

    Only multiple-choice questions are played (see the module docstring and docs/classic-rl.md).

    Args:
        env: the ClinVideoEnv (or a wrapper stack around one) to translate for; None builds one from
            ``suite`` and ``env_kwargs`` (what ``gym.make("MedScope/SynthSurg-Numeric-v0", ...)`` does).
        suite: suite folder or ``"builtin:NAME"`` when ``env`` is None; None uses the numeric
            benchmark suite (:func:`medscope_gym.envs.numeric_suite.numeric_suite_path`).
        split: keep one split of the suite ("train", "val", "test").
        config: a :class:`NumericConfig` or a dict of its fields.
        render_mode: passed to the base env ("rgb_array" timeline or "ansi" transcript).
        **env_kwargs: further ClinVideoEnv arguments (``reward``, ``max_turns``, ``tools``, ...).
            Unless given, the preview is set to ``config.bins`` frames, one per time bin.

    Actions: an integer array of shape ``(4,)`` inside :attr:`action_space` (tool, time bin, span,
    option), as SB3 and ``action_space.sample()`` produce. Anything else (another length, float or
    bool components, a component out of its range) raises ``ValueError`` naming the action: a numeric
    action comes from the user's agent code, so a wrong one is a bug to report, not a turn to score.
    The text env, by contrast, never raises on an agent's text.

    Observation keys (all Boxes): ``preview`` (bins, ph, pw, 3) uint8; ``changes`` (bins, ch, cw, 4)
    uint8: per bin and image cell the colour (RGB) and strength of the strongest brief change (see
    :func:`~medscope_gym.envs.numeric_features.brief_changes`); ``frames`` (max_frames, h, w, 3) uint8
    and ``frame_times`` (max_frames,) in [0, 1] of the duration, ``frame_mask`` (max_frames,);
    ``last_tool`` one-hot over none / crop_video / get_frame / error and ``last_span`` (start, end)
    in [0, 1]; ``question`` (question_tokens,) and ``options`` (max_options, option_tokens) word
    ids, ``option_mask``; ``budget`` = (turns left, tool calls left) as fractions; ``duration`` in
    hours.

    Wrapper attributes: :attr:`samples` (the multiple-choice samples played), :attr:`config`,
    :meth:`action_text` and the bin helpers. Through ``gym.make``'s own wrappers reach them with
    ``env.get_wrapper_attr("samples")``; ``env.unwrapped`` is the ClinVideoEnv, as for any wrapper.
    Which sample a reset without options plays is drawn from the wrapper's own generator, seeded
    by ``reset(seed=...)`` like the base env's.
    """

    # A class attribute (not Wrapper's per-instance property), so gym.make checks render modes.
    metadata = {
        "render_modes": ["rgb_array", "ansi"],
        "render_fps": 1,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        env: gym.Env | None = None,
        *,
        suite: str | Path | Suite | None = None,
        split: str | None = None,
        config: NumericConfig | dict[str, Any] | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        cfg = NumericConfig.from_any(config)
        if env is None:
            if suite is None:
                suite = str(numeric_suite_path())
            tools = dict(env_kwargs.pop("tools", None) or {})
            tools.setdefault("preview_max_frames", cfg.bins)
            env_kwargs.setdefault("max_open_videos", 128)  # keeps decoders and previews of the whole suite
            env = ClinVideoEnv(suite, split=split, tools=tools, render_mode=render_mode, **env_kwargs)
        elif suite is not None or split is not None or render_mode is not None or env_kwargs:
            raise ConfigError(
                "pass NumericClinVideoEnv either a built env or suite/split/render_mode/env kwargs, not both"
            )
        elif not isinstance(env.unwrapped, ClinVideoEnv):
            raise ConfigError(f"NumericClinVideoEnv wraps a ClinVideoEnv, got {type(env.unwrapped).__name__}")
        super().__init__(env)
        base = env.unwrapped
        self.samples: tuple[Sample, ...] = _choice_samples(base.suite)
        self.max_turns = int(base.max_turns)
        self.max_tool_calls = int(base.max_tool_calls)
        n_options = max(len(s.options or ()) for s in self.samples)
        if cfg.max_options is None:
            cfg = replace(cfg, max_options=n_options)
        elif cfg.max_options < n_options:
            raise ConfigError(
                f"NumericConfig.max_options={cfg.max_options} but a question has {n_options} options"
            )
        self.config = cfg
        self._max_hours = max(s.duration for s in self.samples) / 3600.0 * 2.0 + 1.0
        # Per-wrapper caches: word ids per sample, binned preview per video (see _binned_preview).
        self._encoded: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._previews: OrderedDict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()

        thumb = (cfg.thumb_height, cfg.thumb_width, 3)
        f, o = cfg.max_frames, int(cfg.max_options)
        self.observation_space = spaces.Dict(
            {
                "preview": spaces.Box(0, 255, (cfg.bins, cfg.preview_height, cfg.preview_width, 3), np.uint8),
                "changes": spaces.Box(0, 255, (cfg.bins, cfg.change_height, cfg.change_width, 4), np.uint8),
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
        self._sample_rng: np.random.Generator | None = None
        self._sample: Sample | None = None
        self._duration = 1.0
        self._preview: np.ndarray | None = None
        self._changes: np.ndarray | None = None
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
        ``sample_index`` (an index into :attr:`samples`); otherwise one is drawn from the wrapper's
        generator (seeded by ``seed``, as ``gymnasium.Env.reset`` seeds ``np_random``)."""
        if seed is not None or self._sample_rng is None:
            self._sample_rng, _ = seeding.np_random(seed)
        options = dict(options or {})
        if "sample_id" in options:
            sample_id = str(options["sample_id"])
            if sample_id not in {s.id for s in self.samples}:
                raise ConfigError(f"sample {sample_id!r} is not one of this env's multiple-choice samples")
        elif "sample_index" in options:
            sample_id = self.samples[int(options["sample_index"])].id
        else:
            sample_id = self.samples[int(self._sample_rng.integers(len(self.samples)))].id
        obs, info = self.env.reset(seed=seed, options={"sample_id": sample_id})
        self._sample = sample = self.env.unwrapped.current_sample
        self._duration = float(info["duration"])
        self._preview, self._changes = self._binned_preview(sample, obs["video"], obs["video_times"][:, 0])
        self._turns = self._tool_calls = 0
        return self._observation(None, None, "none"), info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Play ``action`` as its text turn (see :meth:`action_text`); ``ValueError`` if it is not a
        valid action of :attr:`action_space`."""
        if self._sample is None:
            raise RuntimeError("NumericClinVideoEnv.step() called before reset()")
        text = self.action_text(action)
        obs, reward, terminated, truncated, info = self.env.step(text)
        self._turns += 1
        tool = int(np.asarray(action)[0])
        kind, frames, times = ("error" if tool != 0 else "none"), None, None
        if len(obs["images"]):
            kind, frames, times = "get_frame", obs["images"], obs["image_times"][:, 0]
        elif len(obs["video"]):
            kind, frames, times = "crop_video", obs["video"], obs["video_times"][:, 0]
        if frames is not None:
            self._tool_calls += 1
        info = dict(info)
        info["action_text"] = text
        if truncated and not terminated and self.config.budget_terminates:
            info["base_truncated"] = True
            terminated, truncated = True, False
        return self._observation(frames, times, kind), reward, bool(terminated), bool(truncated), info

    def action_text(self, action: np.ndarray) -> str:
        """The assistant turn that ``action`` stands for in the current episode.

        Raises:
            ValueError: ``action`` is not an integer array of shape ``(4,)`` inside :attr:`action_space`.
        """
        tool, where, span, option = self.check_action(action)
        if tool == 0:
            return format_answer(
                option_letter(option), think=f"The frames I saw point to option {option_letter(option)}."
            )
        if tool == 1:
            lo, hi = self.span_seconds(where, span)
            return format_tool_call(
                "crop_video",
                {"start_time": lo, "end_time": hi},
                think=f"I look closer at {lo:.1f}-{hi:.1f} s.",
            )
        t = self.bin_seconds(where)
        return format_tool_call("get_frame", {"timestamp": t}, think=f"I check the frame at {t:.1f} s.")

    def check_action(self, action: Any) -> tuple[int, int, int, int]:
        """``action`` as (tool, time bin, span, option) ints; ``ValueError`` unless it is an integer
        array (or sequence of ints) of shape ``(4,)`` whose components lie inside :attr:`action_space`."""
        try:
            array = np.asarray(action)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"numeric action {action!r} is not an array of 4 integers: {exc}") from None
        nvec = self.action_space.nvec
        if array.shape != nvec.shape:
            raise ValueError(
                f"numeric action {action!r} has shape {array.shape}; expected {nvec.shape} "
                f"(tool, time bin, span, option) of {self.action_space}"
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"numeric action {action!r} has dtype {array.dtype}; expected integers (tool, time bin, "
                f"span, option) of {self.action_space}"
            )
        if (array < 0).any() or (array >= nvec).any():
            raise ValueError(f"numeric action {array.tolist()} is outside {self.action_space}")
        tool, where, span, option = (int(x) for x in array)
        return tool, where, span, option

    def span_bins(self, centre_bin: int, span: int) -> tuple[int, int]:
        """Bins ``[first, end)`` of a crop: ``span + 1`` bins around ``centre_bin``, inside the video."""
        bins, n = self.config.bins, span + 1
        first = min(max(0, centre_bin - span // 2), bins - n)
        return first, first + n

    def span_seconds(self, centre_bin: int, span: int) -> tuple[float, float]:
        """Seconds covered by the crop of ``(centre_bin, span)`` in this episode (see :meth:`span_bins`)."""
        first, end = self.span_bins(centre_bin, span)
        width = self._duration / self.config.bins
        return round(first * width, 3), (self._duration if end == self.config.bins else round(end * width, 3))

    def bin_seconds(self, time_bin: int) -> float:
        """The middle of ``time_bin`` in seconds: where ``get_frame`` looks."""
        return round((time_bin + 0.5) * self._duration / self.config.bins, 3)

    def config_dict(self) -> dict[str, Any]:
        """The numeric config as plain data (saved beside trained models)."""
        return asdict(self.config)

    # ------------------------------------------------------------------ internals
    def _thumbs(self, frames: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Area-averaged thumbnails (``size`` = (h, w), default the tool-frame size)."""
        return thumbnails(frames, size or (self.config.thumb_height, self.config.thumb_width))

    def _binned_preview(
        self, sample: Sample, frames: np.ndarray, times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The preview thumbnails and brief changes per time bin, computed once per video by this
        wrapper (:func:`~medscope_gym.envs.numeric_features.binned_preview`; the last
        ``_PREVIEW_CACHE`` videos are kept)."""
        cfg = self.config
        key = (str(sample.video), self._duration, frames.shape, times.tobytes())
        if key in self._previews:
            self._previews.move_to_end(key)
            return self._previews[key]
        value = binned_preview(
            frames,
            times,
            self._duration,
            cfg.bins,
            (cfg.preview_height, cfg.preview_width),
            (cfg.change_height, cfg.change_width),
        )
        self._previews[key] = value
        if len(self._previews) > _PREVIEW_CACHE:
            self._previews.popitem(last=False)
        return value

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
        assert self._changes is not None
        return {
            "preview": self._preview.copy(),
            "changes": self._changes.copy(),
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
