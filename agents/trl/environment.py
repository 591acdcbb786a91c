"""ClinVideoEnv as a TRL ``environment_factory`` environment.

TRL's ``GRPOTrainer(environment_factory=...)`` (trl 1.x, experimental there) creates one environment
object per rollout and reuses the objects across batches. Its contract, as read in trl 1.16:

- ``reset(**row)`` is called before each rollout with every column of the dataset row; a returned string
  (or a list of content blocks) is appended to the row's last user message;
- every public method other than ``reset`` (and ``get_reward``) is offered to the model as a tool, its
  schema built from the type hints and the Google-style docstring; TRL parses the tool calls out of each
  sampled turn, calls the method with the parsed arguments and appends its return value (a string, or
  content blocks whose ``{"type": "image"}`` parts a VLM processor turns into pixels) as a ``tool``
  message, until a turn has no tool call;
- reward functions receive the environment objects as ``environments=``.

:class:`ClinVideoToolEnv` plays one ClinVideoEnv episode per rollout, only through ``reset``/``step``:

- ``reset`` resets the env on the row's ``sample_id`` and returns the env's reset observation: its text
  and, with ``modality="images"``, the preview frames as images, each labelled with its time;
- ``crop_video`` / ``get_frame`` step the env with the call (``<tool_call>{...}</tool_call>``) and return
  its observation the same way (``modality="text"``: the text and the returned frames' timestamps);
- the reward (:func:`score_rollout`, used by :mod:`medscope_gym.agents.trl.rewards`) *replays* the rollout in
  a fresh
  episode on the same sample: every assistant turn's exact text (kept by
  :func:`medscope_gym.agents.trl.chat_template.prepare_processing_class`) is one ``step``, so the env parses,
  formats
  and scores exactly what the model wrote, and the reward is the env's ``info["reward_parts"]``.

Why a replay: a tool method only receives the parsed arguments, not the turn's text, so the live episode
sees each call without its ``<think>`` part and cannot judge the format; the tools are deterministic, so
the replayed tool calls return the same frames the model was shown (checked: see
:attr:`RolloutResult.live_matches_replay`). A rollout that stops without an ``<answer>`` (TRL ends a
rollout at the first turn without a tool call, and at ``max_completion_length``) is closed by stepping
empty turns until the env's turn budget truncates it, so the env pays its truncation reward (accuracy 0,
no format reward, evidence from the last crop / frame).

Frames: TRL passes tool-returned images to a VLM as separate images (no video input, so Qwen2.5-VL's
absolute-time rope over a video is not used); each frame's time is written next to it as text. A
text-only model gets ``modality="text"``: the tool results as text with their timestamps, no pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from PIL import Image

from medscope_gym.agents.trl.chat_template import TURN_TEXT_KEY
from medscope_gym.agents.vlm.encoding import FrameConfig
from medscope_gym.chat import even_subsample, frame_label
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.prompts import asked_text
from medscope_gym.suite import Suite

__all__ = [
    "ClinVideoToolEnv",
    "Modality",
    "RolloutResult",
    "clinvideo_environment_factory",
    "score_rollout",
]

Modality = Literal["images", "text"]
Content = str | list[dict[str, Any]]
_MAX_EMPTY_TURNS = 1000  # ClinVideoEnv truncates after max_turns; this guards against an env with no budget


@dataclass
class RolloutResult:
    """The env's verdict on one TRL rollout (from the replay)."""

    reward_parts: dict[str, float]
    """``info["reward_parts"]`` of the replayed episode: accuracy, format, evidence, crop, frame, total."""
    info: dict[str, Any]
    """The replayed episode's final ``info`` (tool log, answer, judge, format verdict, ground truth)."""
    turns: list[str]
    """The assistant turn texts that were stepped, in order."""
    empty_turns: int = 0
    """Empty turns stepped to close an episode the rollout left without an answer."""
    reconstructed_turns: int = 0
    """Turns whose exact text was missing (processing class not prepared) and was rebuilt from the
    parsed content and tool calls: format details may differ from what the model wrote."""
    live_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Successful tool calls of the live episode (what the model was shown), as name + returned times."""
    live_matches_replay: bool = True
    """Whether the replay's successful tool calls returned exactly what the live calls returned."""


class ClinVideoToolEnv:
    """One ClinVideoEnv episode per TRL rollout, with ``crop_video`` and ``get_frame`` as tools.

    Args:
        env: a ClinVideoEnv (or a wrapper of one); only ``reset``/``step`` are used.
        modality: ``"images"`` (frames as images for a VLM processor) or ``"text"`` (timestamps only).
        frames: how many frames of which size are passed on (preview, crop, get_frame caps; pixels).

    Only ``reset``, ``crop_video`` and ``get_frame`` are public methods: TRL turns every other public
    method into a tool. The outcome of the last finished rollout is :attr:`last_result`.
    """

    def __init__(
        self, env: gym.Env, *, modality: Modality = "images", frames: FrameConfig | None = None
    ) -> None:
        if modality not in ("images", "text"):
            raise ValueError(f"modality must be 'images' or 'text', got {modality!r}")
        self._env = env
        self._modality = modality
        self._frames = frames or FrameConfig()
        self._sample_id: str | None = None
        self._question = ""  # the reset text's question (``FrameConfig.restate_question``)
        self._episode = 0
        self._live_done: str | None = None  # why the live episode ended, once it has
        self._live_calls: list[dict[str, Any]] = []
        self._result: RolloutResult | None = None
        self._result_episode = -1

    # ------------------------------------------------------------------ TRL's interface
    def reset(self, **row: Any) -> Content:
        """Start the rollout of the dataset row (its ``sample_id``): the env's reset observation."""
        sample_id = row.get("sample_id")
        if not isinstance(sample_id, str):
            raise ValueError(
                "ClinVideoToolEnv.reset needs the row's 'sample_id' (build the train dataset with "
                "medscope_gym.agents.trl.build_dataset): the rollouts of one GRPO group must reset to "
                "the same question"
            )
        self._sample_id = sample_id
        self._episode += 1
        self._live_done = None
        self._live_calls = []
        obs, _ = self._env.reset(options={"sample_id": sample_id})
        self._question = asked_text(str(obs.get("text", "")))
        return self._render(obs, first=True)

    def crop_video(self, start_time: float, end_time: float, video_path: str | None = None) -> Content:
        """Look closely at a time span of the video: frames sampled inside [start_time, end_time].

        Args:
            start_time: Span start in seconds from the start of the video, at least 0.
            end_time: Span end in seconds, greater than start_time (clamped to the video length).
            video_path: Optional; only the video of the current question may be named (the default).

        Returns:
            The returned frames with their timestamps in seconds, and the environment's message.
        """
        arguments: dict[str, Any] = {"start_time": start_time, "end_time": end_time}
        if video_path is not None:
            arguments["video_path"] = video_path
        return self._call("crop_video", arguments)

    def get_frame(self, timestamp: float, video_path: str | None = None) -> Content:
        """Inspect one moment at full resolution: the frames nearest to the timestamp.

        Args:
            timestamp: The moment in seconds from the start of the video, at least 0.
            video_path: Optional; only the video of the current question may be named (the default).

        Returns:
            The returned frames with their timestamps in seconds, and the environment's message.
        """
        arguments: dict[str, Any] = {"timestamp": timestamp}
        if video_path is not None:
            arguments["video_path"] = video_path
        return self._call("get_frame", arguments)

    # ------------------------------------------------------------------ read-only state
    @property
    def env(self) -> gym.Env:
        """The wrapped Gymnasium env."""
        return self._env

    @property
    def sample_id(self) -> str | None:
        """Sample of the current rollout."""
        return self._sample_id

    @property
    def last_result(self) -> RolloutResult | None:
        """The env's verdict on the current rollout, once a reward function has scored it."""
        return self._result if self._result_episode == self._episode else None

    # ------------------------------------------------------------------ internals
    def _call(self, name: str, arguments: dict[str, Any]) -> Content:
        if self._sample_id is None:
            raise RuntimeError("ClinVideoToolEnv: a tool was called before reset()")
        if self._live_done is not None:
            return (
                f"Error: the episode is over ({self._live_done}); no more tool calls are possible. "
                "Answer now with <answer>...</answer>."
            )
        action = f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"
        obs, _, terminated, truncated, info = self._env.step(action)
        if terminated or truncated:
            self._live_done = "budget exhausted" if truncated else "answered"
        entries = info.get("tool_log") or []
        if entries and entries[-1].get("ok") and entries[-1].get("turn") == info.get("turn"):
            self._live_calls.append(_call_key(entries[-1]))
        return self._render(obs, first=False)

    def _render(self, obs: Mapping[str, Any], first: bool) -> Content:
        """The observation as a tool result / reset text: text, or content blocks with labelled images."""
        text = str(obs.get("text", ""))
        if not first and self._frames.restate_question:
            text = f"{self._question}\n{text}"
        video, video_t = _frames(obs, "video"), _times(obs, "video_times")
        images, image_t = _frames(obs, "images"), _times(obs, "image_times")
        cfg = self._frames
        cap = cfg.max_preview_frames if first else cfg.max_crop_frames
        if self._modality == "text":
            lines = [text]
            for label, times, limit in (
                ("Frames", video_t, cap),
                ("Full-resolution frames", image_t, cfg.max_images),
            ):
                if len(times):
                    lines.append(_times_line(label, times, even_subsample(len(times), limit)))
            return "\n".join(lines)
        blocks: list[dict[str, Any]] = []
        for frames, times, limit in ((video, video_t, cap), (images, image_t, cfg.max_images)):
            for k in even_subsample(len(times), limit):
                blocks.append({"type": "image", "image": _pil(frames[k], cfg.max_pixels)})
                blocks.append({"type": "text", "text": frame_label(times[k])})
        blocks.append({"type": "text", "text": text})
        return blocks

    def _score(self, completion: Sequence[Mapping[str, Any]]) -> RolloutResult:
        """Replay the rollout's assistant turns in a fresh episode on the same sample; cached per rollout."""
        if self._result is not None and self._result_episode == self._episode:
            return self._result
        if self._sample_id is None:
            raise RuntimeError("ClinVideoToolEnv: a rollout was scored before reset()")
        turns, reconstructed = _turn_texts(completion)
        self._env.reset(options={"sample_id": self._sample_id})
        info: dict[str, Any] = {}
        done = False
        stepped: list[str] = []
        for text in turns:
            _, _, terminated, truncated, info = self._env.step(text)
            stepped.append(text)
            done = terminated or truncated
            if done:
                break
        empty = 0
        while not done:  # the rollout stopped without an answer: let the turn budget close the episode
            if empty == _MAX_EMPTY_TURNS:
                raise RuntimeError(f"the env did not end the episode after {empty} empty turns")
            _, _, terminated, truncated, info = self._env.step("")
            empty += 1
            done = terminated or truncated
        replayed = [_call_key(e) for e in info.get("tool_log", []) if e.get("ok")]
        self._result = RolloutResult(
            reward_parts=dict(info["reward_parts"]),
            info=info,
            turns=stepped,
            empty_turns=empty,
            reconstructed_turns=reconstructed,
            live_tool_calls=list(self._live_calls),
            live_matches_replay=replayed == self._live_calls,
        )
        self._result_episode = self._episode
        return self._result


def score_rollout(environment: ClinVideoToolEnv, completion: Sequence[Mapping[str, Any]]) -> RolloutResult:
    """The env's verdict on one TRL rollout (``completion``: TRL's messages after the prompt)."""
    if not isinstance(environment, ClinVideoToolEnv):
        raise TypeError(
            f"expected a ClinVideoToolEnv (pass environment_factory=clinvideo_environment_factory(...)), "
            f"got {type(environment).__name__}"
        )
    return environment._score(completion)


def clinvideo_environment_factory(
    suite: str | Path | Any = "builtin:synthsurg-small",
    *,
    split: str | None = "train",
    modality: Modality = "images",
    frames: FrameConfig | None = None,
    env_fn: Callable[[], gym.Env] | None = None,
    **env_kwargs: Any,
) -> Callable[[], ClinVideoToolEnv]:
    """A zero-argument callable for ``GRPOTrainer(environment_factory=...)``.

    Args:
        suite: suite folder, ``"builtin:NAME"`` or a loaded ``Suite`` (loaded once, shared by the envs).
        split: the suite split the rollouts draw from (must match the dataset's).
        modality: ``"images"`` for a VLM processor, ``"text"`` for a text-only model.
        frames: frame caps and size; e.g. the tiny checkpoint's ``VLMPolicyConfig.load(dir).frames``.
        env_fn: build the env yourself instead (``suite``, ``split`` and ``env_kwargs`` are then unused).
        **env_kwargs: ClinVideoEnv arguments (``reward`` preset, ``max_turns``, ``tools``, ...).
    """
    if env_fn is None:
        loaded = suite if isinstance(suite, Suite) else Suite.from_spec(suite, split=split)
        env_fn = partial(ClinVideoEnv, loaded, split=split, **env_kwargs)
    return partial(_make, env_fn, modality, frames)


def _make(env_fn: Callable[[], gym.Env], modality: Modality, frames: FrameConfig | None) -> ClinVideoToolEnv:
    return ClinVideoToolEnv(env_fn(), modality=modality, frames=frames)


def _turn_texts(completion: Sequence[Mapping[str, Any]]) -> tuple[list[str], int]:
    """The exact text of each assistant turn (rebuilt from the parsed message when it is missing)."""
    texts, rebuilt = [], 0
    for message in completion:
        if message.get("role") != "assistant":
            continue
        text = message.get(TURN_TEXT_KEY)
        if not isinstance(text, str):
            text, rebuilt = _rebuild(message), rebuilt + 1
        texts.append(text)
    return texts, rebuilt


def _rebuild(message: Mapping[str, Any]) -> str:
    content = message.get("content") or ""
    if not isinstance(content, str):
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    parts = [content] if content else []
    for call in message.get("tool_calls") or []:
        fn = call.get("function", call) if isinstance(call, dict) else {}
        payload = {"name": fn.get("name"), "arguments": fn.get("arguments", {})}
        parts.append(f"<tool_call>{json.dumps(payload)}</tool_call>")
    return "\n".join(parts)


def _call_key(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What a successful tool call returned, for comparing the live episode with the replay."""
    return {
        "name": entry.get("name"),
        "interval": entry.get("interval"),
        "timestamp": entry.get("timestamp"),
        "timestamps": entry.get("timestamps"),
    }


def _frames(obs: Mapping[str, Any], key: str) -> np.ndarray:
    value = obs.get(key)
    return np.zeros((0, 1, 1, 3), np.uint8) if value is None else np.asarray(value)


def _times(obs: Mapping[str, Any], key: str) -> np.ndarray:
    value = obs.get(key)
    return np.zeros(0) if value is None else np.asarray(value, dtype=np.float64).reshape(-1)


def _times_line(label: str, times: np.ndarray, keep: np.ndarray) -> str:
    """The returned frames' timestamps as text (the same frames the image modality would show)."""
    listed = ", ".join(f"{t:.2f}" for t in times[keep])
    if len(keep) == len(times):
        return f"{label} returned ({len(times)}) at: {listed} s."
    return f"{label} returned: {len(times)}; {len(keep)} of them, evenly spaced, at: {listed} s."


def _pil(frame: np.ndarray, max_pixels: int) -> Image.Image:
    """One frame as a PIL image of at most ``max_pixels`` (aspect kept)."""
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    w, h = image.size
    if w * h > max_pixels:
        scale = (max_pixels / (w * h)) ** 0.5
        image = image.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.BICUBIC)
    return image
