"""ClinVideoEnv: a long clinical video as state, tool calls and answers as text actions (SPEC §2).

One episode is one question about one video. ``reset`` shows the question and a coarse
global preview; each ``step`` takes one assistant turn of raw text. Tool calls return
frames (reward 0); an answer ends the episode and pays the whole GA-GRPO trajectory reward,
with its parts in ``info``. Malformed text never raises: it yields an error observation and
costs the format reward, and the agent may recover.
"""

from __future__ import annotations

import string
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from medscope_gym.errors import ConfigError, VideoError
from medscope_gym.intervals import Interval, parse_interval
from medscope_gym.judges import AnswerJudge, JudgeResult, score_answer
from medscope_gym.prompts import question_text
from medscope_gym.protocol import MAX_ACTION_CHARS, check_trajectory_format, parse_turn
from medscope_gym.rewards import RewardConfig, reward_config, trajectory_reward
from medscope_gym.store import open_tool_video, resolve_store_root, store_settings
from medscope_gym.suite import Sample, Suite
from medscope_gym.tools import ToolConfig, ToolError, ToolOutput, preview, run_tool
from medscope_gym.video import BACKENDS, DEFAULT_BACKEND, Video, fit_pixels, open_video
from medscope_gym.video.probe import probe_size

__all__ = ["ClinVideoEnv", "question_text"]

MAX_OBS_CHARS = 16_384
# Characters the env itself writes; the suite's own text adds to this set at construction.
_BASE_CHARSET = string.printable + "…–—°±µ×·"
_ACTION_CHARSET = string.printable


@dataclass
class _Episode:
    """Everything one episode has accumulated; reset makes a new one."""

    sample: Sample
    video: Video
    actions: list[str] = field(default_factory=list)
    tool_log: list[dict[str, Any]] = field(default_factory=list)
    inspected: list[dict[str, Any]] = field(default_factory=list)  # for render(): what the agent saw
    invalid_turns: int = 0
    tool_calls: int = 0
    tool_frames: int = 0
    frames_seen: int = 0
    last_crop: Interval | None = None
    last_frame: float | None = None
    done: bool = False
    final_info: dict[str, Any] | None = None


class ClinVideoEnv(gym.Env[dict[str, Any], str]):
    """Gymnasium env over a ClinVideoSuite.

    Args:
        suite: a suite folder, ``"builtin:NAME"`` for a built-in synthetic suite, or a loaded ``Suite``.
        split: keep one split ("train", "val", "test"); None keeps every sample.
        tools: a :class:`~medscope_gym.tools.ToolConfig` or a dict of its fields (paper defaults).
        reward: a preset name ("paper", "no_evidence", "conditional_evidence", "no_iou_bonus") or a
            :class:`~medscope_gym.rewards.RewardConfig`.
        max_turns: assistant turns per episode (the paper's reference code: 5).
        max_tool_calls: successful tool calls per episode (5); later calls are refused.
        max_tool_frames: frames tool calls may return in one episode; reaching it truncates.
        text_judge: judge for free-text answers (default: the offline lexical judge).
        render_mode: "rgb_array" (timeline picture) or "ansi" (text transcript).
        video_backend: exact frame decoder, "pyav" (default: fastest and flat memory in ``medscope
            bench``) or "decord"; it serves get_frame and anything the frame store does not hold.
        max_open_videos: how many decoders to keep open between episodes.
        frame_store: "auto" (default) serves crops and the preview from a prepared frame store in
            ``$MEDSCOPE_CACHE/frame_stores``, built on a video's first use (one sequential decode,
            about what computing its preview costs anyway) or ahead by ``medscope prepare``; a folder
            keeps the stores there; None decodes every call directly. Results are identical.

    Observations are a dict: ``text`` (what the env says this turn), ``video`` and
    ``video_times`` (preview at reset, crop_video frames after a crop; ``(n, H, W, 3)`` uint8,
    letterboxed to the suite's largest frame size, and their true timestamps in seconds as
    ``(n, 1)`` float64), ``images`` and ``image_times`` (get_frame frames at native
    resolution, letterboxed likewise).
    """

    metadata = {
        "render_modes": ["rgb_array", "ansi"],
        "render_fps": 1,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        suite: str | Path | Suite,
        *,
        split: str | None = None,
        tools: ToolConfig | dict[str, Any] | None = None,
        reward: str | RewardConfig = "paper",
        max_turns: int = 5,
        max_tool_calls: int = 5,
        max_tool_frames: int = 512,
        text_judge: AnswerJudge | None = None,
        render_mode: str | None = None,
        video_backend: str = DEFAULT_BACKEND,
        max_open_videos: int = 4,
        frame_store: str | Path | None = "auto",
    ) -> None:
        self.suite = suite if isinstance(suite, Suite) else Suite.from_spec(suite, split=split)
        if isinstance(suite, Suite) and split is not None:
            self.suite = Suite(suite.root, [s for s in suite if s.split == split])
        self.tool_config = ToolConfig.from_any(tools)
        self.reward_config = reward if isinstance(reward, RewardConfig) else _reward_from_name(reward)
        for name, value, low in (
            ("max_turns", max_turns, 1),
            ("max_tool_calls", max_tool_calls, 0),
            ("max_tool_frames", max_tool_frames, 1),
            ("max_open_videos", max_open_videos, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"ClinVideoEnv {name} must be an integer >= {low}, got {value!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        if len(self.suite) == 0:
            raise ConfigError(f"suite {str(self.suite.root)!r} has no samples in split {split!r}")
        self.max_turns = max_turns
        self.max_tool_calls = max_tool_calls
        self.max_tool_frames = max_tool_frames
        self.text_judge = text_judge
        self.render_mode = render_mode
        if video_backend not in BACKENDS:
            raise ConfigError(f"unknown video backend {video_backend!r}; choose one of {', '.join(BACKENDS)}")
        self.video_backend = video_backend
        self.max_open_videos = max_open_videos
        self.frame_store = frame_store
        self._store_root = resolve_store_root(frame_store)  # validates the argument early

        self._video_shape, self._image_shape = self._frame_canvases()
        charset = sorted(set(_BASE_CHARSET).union(*(_sample_chars(s) for s in self.suite)))
        self._charset = frozenset(charset)
        max_duration = max(s.duration for s in self.suite) + 60.0
        self.observation_space = spaces.Dict(
            {
                "text": spaces.Text(max_length=MAX_OBS_CHARS, min_length=1, charset="".join(charset)),
                "video": spaces.Sequence(spaces.Box(0, 255, self._video_shape, np.uint8), stack=True),
                "video_times": spaces.Sequence(spaces.Box(0.0, max_duration, (1,), np.float64), stack=True),
                "images": spaces.Sequence(spaces.Box(0, 255, self._image_shape, np.uint8), stack=True),
                "image_times": spaces.Sequence(spaces.Box(0.0, max_duration, (1,), np.float64), stack=True),
            }
        )
        self.action_space = spaces.Text(max_length=MAX_ACTION_CHARS, min_length=0, charset=_ACTION_CHARSET)
        # Open decoders with their preview (identical for every episode on a video), least recent first.
        self._videos: OrderedDict[str, tuple[Video, ToolOutput]] = OrderedDict()
        self._ep: _Episode | None = None

    # ------------------------------------------------------------------ public API
    @property
    def current_sample(self) -> Sample | None:
        """The sample of the current episode (None before the first reset)."""
        return self._ep.sample if self._ep is not None else None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "sample_id" in options:
            sample = self.suite.by_id(options["sample_id"])
        elif "sample_index" in options:
            sample = self.suite[int(options["sample_index"])]
        else:
            sample = self.suite[int(self.np_random.integers(len(self.suite)))]
        video, look = self._open(sample)
        self._ep = ep = _Episode(sample=sample, video=video)
        ep.frames_seen = len(look.timestamps)
        ep.inspected.append({"name": "preview", "frames": look.frames, "timestamps": look.timestamps})
        obs = self._observation(f"{question_text(sample, video.duration)}\n{look.text}", video=look)
        return obs, self._info()

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        ep = self._ep
        if ep is None or ep.done:
            raise RuntimeError("ClinVideoEnv.step() called before reset() or after the episode ended")
        text = _as_text(action)
        ep.actions.append(text)
        parsed = parse_turn(text)

        if parsed.kind == "answer":
            info = self._finish(parsed.answer, truncated=False)
            obs = self._observation(f"Answer recorded: {parsed.answer[:200]}")
            return obs, info["reward_parts"]["total"], True, False, info

        if parsed.kind == "error":
            ep.invalid_turns += 1
            obs_text, output = f"Error: {parsed.error}", None
        elif ep.tool_calls >= self.max_tool_calls:
            ep.invalid_turns += 1
            obs_text, output = (
                (
                    f"Error: the tool-call budget ({self.max_tool_calls}) is used up; "
                    "answer now with <answer>...</answer>."
                ),
                None,
            )
        else:
            obs_text, output = self._call_tool(parsed.tool_call)

        truncated = ep.tool_frames >= self.max_tool_frames or len(ep.actions) >= self.max_turns
        if truncated:
            info = self._finish(None, truncated=True)
            return (
                self._observation(f"{obs_text}\nThe episode is over: budget exhausted.", output),
                info["reward_parts"]["total"],
                False,
                True,
                info,
            )
        calls_left = self.max_tool_calls - ep.tool_calls
        budget = f"[turn {len(ep.actions)} of {self.max_turns}; {calls_left} tool calls left]"
        return self._observation(f"{obs_text}\n{budget}", output), 0.0, False, False, self._info()

    def render(self) -> np.ndarray | str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'ansi'")
            return None
        if self.render_mode == "ansi":
            return self._transcript()
        from medscope_gym.envs.rendering import render_timeline

        ep = self._ep
        if ep is None:
            return render_timeline(1.0, (), [], [])
        return render_timeline(ep.video.duration, ep.sample.evidence, ep.tool_log, ep.inspected)

    def close(self) -> None:
        for video, _ in self._videos.values():
            video.close()
        self._videos.clear()
        super().close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_videos"] = OrderedDict()  # decoders are reopened on demand in the new process
        state["_ep"] = None
        return state

    # ------------------------------------------------------------------ internals
    def _call_tool(self, call) -> tuple[str, ToolOutput | None]:
        ep = self._ep
        assert ep is not None
        entry: dict[str, Any] = {
            "name": call.name,
            "arguments": call.arguments,
            "ok": False,
            "error": None,
            "lenient_json": call.lenient_json,
            "turn": len(ep.actions),
        }
        try:
            out = run_tool(
                call.name,
                call.arguments,
                ep.video,
                self.tool_config,
                video_names=(ep.sample.video, str(self.suite.video_path(ep.sample))),
            )
        except ToolError as exc:
            ep.invalid_turns += 1
            entry["error"] = str(exc)
            ep.tool_log.append(entry)
            return f"Error: {exc}", None
        ep.tool_calls += 1
        ep.tool_frames += len(out.timestamps)
        ep.frames_seen += len(out.timestamps)
        if call.lenient_json:
            ep.invalid_turns += 1  # accepted, but not the strict format
        entry.update(ok=True, timestamps=[float(t) for t in out.timestamps])
        if out.interval is not None:
            entry["interval"] = [float(out.interval[0]), float(out.interval[1])]
            ep.last_crop = out.interval
        if out.timestamp is not None:
            entry["timestamp"] = float(out.timestamp)
            ep.last_frame = out.timestamp
        ep.tool_log.append(entry)
        ep.inspected.append({"name": out.name, "frames": out.frames, "timestamps": out.timestamps})
        return out.text, out

    def _finish(self, answer: str | None, truncated: bool) -> dict[str, Any]:
        ep = self._ep
        assert ep is not None
        ep.done = True
        sample = ep.sample
        if answer is None:
            judged = JudgeResult(0.0, "no answer: the episode was truncated")
        else:
            judged = score_answer(sample, answer, self.text_judge)
        fmt = check_trajectory_format(ep.actions)
        format_ok = fmt.ok and ep.invalid_turns == 0
        format_reason = (
            fmt.reason
            if not fmt.ok
            else ("ok" if format_ok else f"{ep.invalid_turns} invalid turn(s) (errors or lenient JSON)")
        )
        parts = trajectory_reward(
            accuracy=judged.score,
            format_ok=format_ok,
            last_crop=ep.last_crop,
            last_frame=ep.last_frame,
            evidence=sample.evidence,
            cfg=self.reward_config,
        )
        info = self._info()
        info.update(
            reward_parts=parts.as_dict(),
            ground_truth={
                "answer": sample.answer,
                "evidence": [list(w) for w in sample.evidence],
                "options": list(sample.options) if sample.options else None,
            },
            answer=answer,
            judge={"score": judged.score, "reason": judged.reason, "failed": judged.failed},
            format={"ok": format_ok, "reason": format_reason},
            episode={
                "sample_id": sample.id,
                "task": sample.task,
                "answer_type": sample.answer_type,
                "turns": len(ep.actions),
                "tool_calls": ep.tool_calls,
                "frames_seen": ep.frames_seen,
                "truncated": truncated,
                "predicted_interval": list(p) if (p := _predicted_interval(sample, answer)) else None,
                "inspected_interval": list(ep.last_crop) if ep.last_crop else None,
            },
        )
        ep.final_info = info
        return info

    def _info(self) -> dict[str, Any]:
        ep = self._ep
        assert ep is not None
        return {
            "sample_id": ep.sample.id,
            "task": ep.sample.task,
            "duration": float(ep.video.duration),
            "turn": len(ep.actions),
            "tool_calls": ep.tool_calls,
            "frames_seen": ep.frames_seen,
            "tool_log": [dict(e) for e in ep.tool_log],
        }

    def _observation(self, text: str, output: ToolOutput | None = None, *, video: ToolOutput | None = None):
        empty_t = np.zeros((0, 1), dtype=np.float64)
        vid, img = video, None
        if output is not None:
            if output.name == "get_frame":
                img = output
            else:
                vid = output
        return {
            "text": self._fit_text(text),
            "video": _letterbox(vid.frames if vid else None, self._video_shape),
            "video_times": vid.timestamps.astype(np.float64).reshape(-1, 1) if vid else empty_t,
            "images": _letterbox(img.frames if img else None, self._image_shape),
            "image_times": img.timestamps.astype(np.float64).reshape(-1, 1) if img else empty_t,
        }

    def _fit_text(self, text: str) -> str:
        clean = "".join(c if c in self._charset else "?" for c in text[:MAX_OBS_CHARS])
        return clean or " "

    def _open(self, sample: Sample) -> tuple[Video, ToolOutput]:
        """The sample's decoder and a copy of its preview, from the cache or freshly opened and checked.

        The preview is cached per video but handed out as a copy: observations of different
        resets must not share buffers (the user may keep and modify them).
        """
        path = str(self.suite.video_path(sample))
        if path in self._videos:
            self._videos.move_to_end(path)
        else:
            self._videos[path] = self._open_new(sample, path)
            while len(self._videos) > self.max_open_videos:
                _, (old, _) = self._videos.popitem(last=False)
                old.close()
        video, look = self._videos[path]
        fresh = ToolOutput(look.name, look.frames.copy(), look.timestamps.copy(), interval=look.interval,
                           text=look.text)
        return video, fresh

    def _open_new(self, sample: Sample, path: str) -> tuple[Video, ToolOutput]:
        """Open a video (through its frame store unless ``frame_store`` is None), check it, preview it."""
        if self._store_root is None:
            video = open_video(path, backend=self.video_backend)
        else:
            video = open_tool_video(
                path, backend=self.video_backend, frame_store=self._store_root,
                settings=store_settings(self.tool_config),
            )
        slack = max(1.0, 2.0 / max(sample.fps, 1e-6))
        if abs(video.duration - sample.duration) > slack:
            video.close()
            raise VideoError(
                f"sample {sample.id!r}: the suite gives duration {sample.duration:g} s but video "
                f"{path!r} decodes to {video.duration:.2f} s"
            )
        return video, preview(video, self.tool_config)

    def _frame_canvases(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Largest preview/crop frame and largest get_frame frame over the suite's videos."""
        cfg = self.tool_config
        vh = vw = ih = iw = 1
        for rel in self.suite.videos():
            h, w = probe_size(self.suite.root / rel)
            for cap in (cfg.crop_max_pixels, cfg.preview_max_pixels):
                fh, fw = fit_pixels(h, w, cap)
                vh, vw = max(vh, fh), max(vw, fw)
            fh, fw = fit_pixels(h, w, cfg.frame_max_pixels)
            ih, iw = max(ih, fh), max(iw, fw)
        return (vh, vw, 3), (ih, iw, 3)

    def _transcript(self) -> str:
        ep = self._ep
        if ep is None:
            return "(no episode yet)"
        lines = [f"[{ep.sample.id}] {ep.sample.question}"]
        for i, action in enumerate(ep.actions, start=1):
            lines.append(f"--- turn {i}\n{action}")
        if ep.final_info is not None:
            lines.append(f"=== reward {ep.final_info['reward_parts']}")
        return "\n".join(lines)


def _reward_from_name(name: str) -> RewardConfig:
    try:
        return reward_config(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _sample_chars(sample: Sample) -> set[str]:
    chars = set(sample.question) | set(sample.answer)
    for opt in sample.options or ():
        chars |= set(opt)
    return {c for c in chars if c.isprintable() or c in "\n\t"}


def _as_text(action: object) -> str:
    """Any action becomes text: bytes are decoded, other objects are repr'd (and then fail to parse)."""
    if isinstance(action, str):
        return action
    if isinstance(action, (bytes, bytearray)):
        return bytes(action).decode("utf-8", errors="replace")
    return repr(action)[: MAX_ACTION_CHARS + 1]


def _letterbox(frames: np.ndarray | None, shape: tuple[int, int, int]) -> np.ndarray:
    """Centre frames on a black canvas of ``shape`` (no resampling: pixels stay native)."""
    h, w, _ = shape
    if frames is None or len(frames) == 0:
        return np.zeros((0, h, w, 3), dtype=np.uint8)
    fh, fw = frames.shape[1:3]
    if (fh, fw) == (h, w):
        return np.ascontiguousarray(frames, dtype=np.uint8)
    out = np.zeros((len(frames), h, w, 3), dtype=np.uint8)
    top, left = (h - fh) // 2, (w - fw) // 2
    out[:, top : top + fh, left : left + fw] = frames
    return out


def _predicted_interval(sample: Sample, answer: str | None) -> Interval | None:
    if answer is None or sample.answer_type != "interval":
        return None
    return parse_interval(answer)
