"""ClinVideoEnv: a long clinical video as state, tool calls and answers as text actions.

One episode is one question about one video. ``reset`` shows the question and a coarse
global preview; each ``step`` takes one assistant turn of raw text. Tool calls return
frames (reward 0); an answer ends the episode and pays the whole GA-GRPO trajectory reward,
with its parts in ``info``. Malformed text never raises: it yields an error observation and
costs the format reward, and the agent may recover. See docs/environment.md.
"""

from __future__ import annotations

import copy
import string
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from medscope_gym.envs.rendering import render_timeline
from medscope_gym.errors import ConfigError, VideoError
from medscope_gym.intervals import Interval, parse_interval
from medscope_gym.judges import AnswerJudge, JudgeResult, score_answer
from medscope_gym.prompts import question_text
from medscope_gym.protocol import MAX_ACTION_CHARS, check_trajectory_format, parse_turn
from medscope_gym.rewards import RewardSpec, parse_reward, trajectory_reward
from medscope_gym.store import resolve_store_root
from medscope_gym.suite import Sample, Suite
from medscope_gym.suite.verify import check_duration, open_checked, verify_suite_videos
from medscope_gym.tools import ToolConfig, ToolError, ToolOutput, run_tool
from medscope_gym.video import BACKENDS, DEFAULT_BACKEND, Video, fit_pixels
from medscope_gym.video.guard import DecodeTimeout
from medscope_gym.video.probe import probe_size

__all__ = ["ClinVideoEnv", "budget_text", "question_text"]

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
    """A long clinical video as state; tool calls and answers as text actions.

    ## Description

    One episode is one question about one video of a ClinVideoSuite. The agent sees the question
    and a coarse preview of the whole video, then, turn by turn, either calls a tool
    (`crop_video` for a short interval at low resolution, `get_frame` for a few native-resolution
    frames around one instant) or answers. Rewards pay for the right answer, a well-formed
    trajectory, and evidence (the last crop and frame) that overlaps the ground-truth window.
    See docs/environment.md, docs/protocol.md, docs/tools.md and docs/rewards.md.

    ## Action Space

    `gymnasium.spaces.Text`: the agent's raw text for one assistant turn, `<think>…</think>` then
    either `<tool_call>{"name": …, "arguments": {…}}</tool_call>` or `<answer>…</answer>`. Any
    text is accepted: malformed text never raises, it yields an `Error: …` observation that says
    what was wrong, costs the format reward, and the episode goes on.

    ## Observation Space

    A `Dict` of numpy arrays and a string:

    | key | content |
    |---|---|
    | `text` | the question and options at reset, a tool's summary or an error afterwards |
    | `video`, `video_times` | `(n, H, W, 3)` uint8 preview (reset) or crop frames, `(n, 1)` float64 seconds |
    | `images`, `image_times` | `(m, Hi, Wi, 3)` uint8 `get_frame` frames (native size), `(m, 1)` seconds |

    Frames are letterboxed to the suite's largest frame size; `n = 0` / `m = 0` when a turn
    returned no such frames.

    ## Rewards

    Paid once, at the end of the episode (every earlier step pays 0):
    `R = w_acc·R_acc + w_fmt·R_format + w_ev·(R_crop + R_frame)`, weights 1 : 1 : 1 under the
    default `"paper"` preset. The parts are in `info["reward_parts"]`.

    ## Starting State

    `reset(seed=..., options=...)` draws a sample from the suite with `self.np_random`, or takes
    `options={"sample_id": ...}` / `{"sample_index": i}`, and returns the question, its options,
    the answer format and the preview (frames at 1 fps, at most 512, each at most 224² pixels).

    ## Episode End

    - Termination: the agent answers (`<answer>…</answer>`).
    - Truncation: `max_turns` assistant turns or `max_tool_frames` tool frames are used up
      (accuracy 0). A tool call past `max_tool_calls` is refused with an error observation.

    The final step's `info` adds `reward_parts`, `ground_truth`, `answer`, `judge`, `format` and
    `episode_summary` (sample, turns, tool calls, frames seen, truncation, predicted and inspected
    intervals). The key is not `episode`: Gymnasium's `RecordEpisodeStatistics` and SB3's
    `Monitor` write their own statistics there, so the env works inside them.

    ## Arguments

    ```python
    gym.make("MedScope/ClinVideo-v0", suite="path/to/suite", split=None, tools=None,
             reward="paper", max_turns=5, max_tool_calls=5, max_tool_frames=512,
             text_judge=None, render_mode=None, video_backend="pyav", max_open_videos=4,
             frame_store="auto", verify_videos=False)
    ```

    - `suite`: a suite folder, `"builtin:NAME"` for a built-in synthetic suite, or a loaded `Suite`.
    - `split`: keep one split (`"train"`, `"val"`, `"test"`); None keeps every sample.
    - `tools`: a `ToolConfig` or a dict of its fields; None: the suite's own `tools.json` if it has one,
      else the defaults (they follow the paper's reference code).
    - `reward`: a preset name (`"paper"`, `"no_evidence"`, `"conditional_evidence"`,
      `"no_iou_bonus"`) or a `RewardConfig`.
    - `max_turns`: assistant turns per episode (5).
    - `max_tool_calls`: successful tool calls per episode (5); later calls are refused.
    - `max_tool_frames`: frames tool calls may return in one episode (512); reaching it truncates.
    - `text_judge`: judge for free-text answers (default: the offline lexical judge).
    - `render_mode`: `"rgb_array"` (timeline picture) or `"ansi"` (text transcript).
    - `video_backend`: exact frame decoder, `"pyav"` (default) or `"decord"` (the `[decord]`
      extra); it serves `get_frame` and anything the frame store does not hold.
    - `max_open_videos`: how many decoders to keep open between episodes.
    - `frame_store`: `"auto"` (default) serves crops and the preview from a frame store in
      `$MEDSCOPE_CACHE/frame_stores`, built on a video's first use or ahead by `medscope prepare`;
      a folder keeps the stores there; None decodes every call directly. Results are identical.
    - `verify_videos`: at construction, open and decode-check every video as `reset` would (the
      decoder's verified frame count, which catches truncated files, each sample's duration, the
      preview decode; with a frame store this also builds the stores) and raise one `VideoError`
      naming every broken video. Off by default: it costs about one reset per video. `medscope
      suite validate` runs the same check.

    ## Copying

    `copy.deepcopy(env)` mid-episode copies the episode too: the copy continues from the same
    turn with its own decoders, independently of the original. Pickling (how vector envs and
    worker processes receive an env) carries the configuration only, never an episode or an open
    decoder: an unpickled env must be `reset()` before `step()`.

    ## Version History

    - v0: initial release (`MedScope/ClinVideo-v0`, `MedScope/SynthSurg-v0`,
      `MedScope/SynthSurg-Bench-v0`).
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
        reward: RewardSpec = "paper",
        max_turns: int = 5,
        max_tool_calls: int = 5,
        max_tool_frames: int = 512,
        text_judge: AnswerJudge | None = None,
        render_mode: str | None = None,
        video_backend: str = DEFAULT_BACKEND,
        max_open_videos: int = 4,
        frame_store: str | Path | None = "auto",
        verify_videos: bool = False,
    ) -> None:
        self.suite = suite if isinstance(suite, Suite) else Suite.from_spec(suite, split=split)
        if isinstance(suite, Suite) and split is not None:
            self.suite = Suite(suite.root, [s for s in suite if s.split == split])
        self.tool_config = ToolConfig.from_any(tools if tools is not None else self.suite.tool_settings())
        self.reward_config = parse_reward(reward)
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
        if not isinstance(verify_videos, bool):
            raise ConfigError(f"ClinVideoEnv verify_videos must be True or False, got {verify_videos!r}")
        self.verify_videos = verify_videos

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
        if verify_videos:
            self._verify_all_videos()

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
        budget = budget_text(len(ep.actions), self.max_turns, self.max_tool_calls - ep.tool_calls)
        return self._observation(f"{obs_text}\n{budget}", output), 0.0, False, False, self._info()

    def render(self) -> np.ndarray | str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'ansi'")
            return None
        if self.render_mode == "ansi":
            return self._transcript()
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
        """Pickled state: the configuration only; decoders and the current episode stay behind.

        Pickling ships an env to another process (vector envs, workers), where decoders must be
        reopened; an unpickled env needs ``reset()`` before ``step()``. ``copy.deepcopy`` keeps the
        episode (see :meth:`__deepcopy__`).
        """
        state = self.__dict__.copy()
        state["_videos"] = OrderedDict()  # decoders are reopened on demand in the new process
        state["_ep"] = None
        return state

    def __deepcopy__(self, memo: dict[int, Any]) -> ClinVideoEnv:
        """A fully independent copy that continues the current episode from the same turn.

        The episode's video is copied without its open decoder (each backend reopens lazily), so
        the copy and the original never share decoder state; the RNG state is copied too.
        """
        cls = type(self)
        clone = cls.__new__(cls)
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__getstate__(), memo))
        ep = self._ep
        if ep is not None:
            clone._ep = copy.deepcopy(ep, memo)
            path = str(self.suite.video_path(ep.sample))
            cached = self._videos.get(path)
            if cached is not None and cached[0] is ep.video:
                # the copied decoder joins the clone's cache, so clone.close() closes it
                clone._videos[path] = (clone._ep.video, copy.deepcopy(cached[1], memo))
        return clone

    # ------------------------------------------------------------------ internals
    def _call_tool(self, call) -> tuple[str, ToolOutput | None]:
        """Run one tool call; a bad call or a video that fails to decode becomes an error observation.

        A :class:`~medscope_gym.errors.VideoError` while the tool reads frames (a decode time-out,
        a corrupt stretch of the file) never leaves ``step()``: one bad file must not end a vector
        env or a training run. The agent reads ``"Error: <tool> failed: the video could not be
        decoded (...)"``, told it is the video's fault and that it may make another call or
        answer; ``info["tool_log"]`` gets ``ok: False``, ``error`` (the full message, with the
        file) and ``video_error: True``; a ``RuntimeWarning`` names the sample and the file.
        Like every failed call, it uses no tool-call budget and counts as an invalid turn, so the
        episode loses the format reward (the project's rule for a tool's video failure). The
        backend has dropped the failed decoder: the next call opens a fresh one.
        """
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
        except VideoError as exc:
            ep.invalid_turns += 1
            entry.update(error=str(exc), video_error=True)
            ep.tool_log.append(entry)
            path = str(self.suite.video_path(ep.sample))
            warnings.warn(
                f"ClinVideoEnv: {call.name} on sample {ep.sample.id!r} failed to decode video {path!r} "
                f"({exc}); the agent gets an error observation and the episode goes on",
                RuntimeWarning,
                stacklevel=3,
            )
            reason = "decoding timed out" if isinstance(exc, DecodeTimeout) else "a decoding error"
            return (
                f"Error: {call.name} failed: the video could not be decoded there ({reason}). This is a "
                "fault of the video file, not of your call; you may try another call or answer.",
                None,
            )
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
        video_failures = sum(1 for call in ep.tool_log if call.get("video_error"))
        if not fmt.ok:
            format_reason = fmt.reason
        elif format_ok:
            format_reason = "ok"
        else:
            format_reason = f"{ep.invalid_turns} invalid turn(s) (errors or lenient JSON)"
            if video_failures:
                format_reason += f", {video_failures} of them a tool call the video failed to decode"
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
            episode_summary={
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
            check_duration(sample, self._videos[path][0], path)  # samples sharing a video each declare one
        else:
            self._videos[path] = self._open_new(sample, path)
            while len(self._videos) > self.max_open_videos:
                _, (old, _) = self._videos.popitem(last=False)
                old.close()
        video, look = self._videos[path]
        fresh = ToolOutput(
            look.name, look.frames.copy(), look.timestamps.copy(), interval=look.interval, text=look.text
        )
        return video, fresh

    def _open_new(self, sample: Sample, path: str) -> tuple[Video, ToolOutput]:
        """Open a video (through its frame store unless ``frame_store`` is None), check it, preview it.

        The same check ``verify_videos=True`` and ``medscope suite validate`` run on every video.
        """
        return open_checked(
            path, [sample], backend=self.video_backend, store_root=self._store_root, tools=self.tool_config
        )

    def _verify_all_videos(self) -> None:
        """``verify_videos=True``: the reset check on every video now, one error naming all broken ones."""
        errors = verify_suite_videos(
            self.suite, backend=self.video_backend, store_root=self._store_root, tools=self.tool_config
        )
        if errors:
            shown = "; ".join(str(e) for e in errors[:5])
            more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
            raise VideoError(
                f"{len(errors)} of {len(self.suite.videos())} videos fail the reset check: {shown}{more}"
            )

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


def budget_text(turn: int, max_turns: int, calls_left: int) -> str:
    """The line that ends every observation after the first: where the episode stands."""
    return f"[turn {turn} of {max_turns}; {calls_left} tool calls left]"
