"""An episode so far, rendered as chat messages for a vision-language model.

Built only from what the agent received (observations) and what it said (actions), so a
policy never needs the env's internals. Two renderings:

- :meth:`Transcript.to_hf_messages`: Hugging Face / Qwen content blocks. Preview and crops
  are ``{"type": "video"}`` blocks holding the frames with their real fps and timestamps;
  get_frame results are ``{"type": "image"}`` blocks. Frames stay numpy arrays.
- :meth:`Transcript.to_openai_messages`: OpenAI chat ``image_url`` blocks (base64 JPEG),
  each frame preceded by its timestamp, for remote endpoints.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from medscope_gym.protocol import SYSTEM_PROMPT

__all__ = [
    "Transcript",
    "Turn",
    "even_subsample",
    "frame_label",
    "frames_fps",
    "time_text",
    "times_line",
    "tool_response",
]


def tool_response(text: str) -> str:
    """A tool's text as every rendering shows it after the first observation (Qwen's tool-result tags);
    Stage I's examples laid out as an episode's tool turns wrap their text the same way."""
    return f"<tool_response>\n{text}\n</tool_response>"


def frames_fps(timestamps: np.ndarray) -> float:
    """Sampling rate implied by a sorted run of timestamps (1.0 for a single frame)."""
    t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if len(t) < 2 or t[-1] <= t[0]:
        return 1.0
    return float((len(t) - 1) / (t[-1] - t[0]))


@dataclass
class Turn:
    """One message: an observation from the env ("user") or an action of the agent ("assistant")."""

    role: str
    text: str
    video: np.ndarray | None = None
    video_times: np.ndarray | None = None
    images: np.ndarray | None = None
    image_times: np.ndarray | None = None


@dataclass
class Transcript:
    """The messages of one episode, appended turn by turn."""

    system_prompt: str = SYSTEM_PROMPT
    tool_role: str = "user"
    """Role of tool responses: Qwen2.5-VL's template has no "tool" role for images, so "user"."""
    turns: list[Turn] = field(default_factory=list)

    def add_observation(self, obs: dict[str, Any]) -> None:
        """Append what the env returned (the reset observation or a step's)."""
        first = not self.turns
        video = obs.get("video")
        images = obs.get("images")
        self.turns.append(
            Turn(
                role="user" if first else self.tool_role,
                text=str(obs.get("text", "")),
                video=video if video is not None and len(video) else None,
                video_times=_flat(obs.get("video_times")) if video is not None and len(video) else None,
                images=images if images is not None and len(images) else None,
                image_times=_flat(obs.get("image_times")) if images is not None and len(images) else None,
            )
        )

    def add_action(self, text: str) -> None:
        """Append the agent's raw text for one turn."""
        self.turns.append(Turn(role="assistant", text=text))

    # ------------------------------------------------------------------ renderings
    def to_hf_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]}
        ]
        for i, turn in enumerate(self.turns):
            if turn.role == "assistant":
                messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.text}]})
                continue
            content: list[dict[str, Any]] = []
            if turn.video is not None:
                content.append({"type": "text", "text": times_line("Video frames", turn.video_times)})
                content.append(
                    {
                        "type": "video",
                        "video": turn.video,
                        "fps": frames_fps(turn.video_times),
                        "timestamps": turn.video_times.tolist(),
                    }
                )
            if turn.images is not None:
                for frame, t in zip(turn.images, turn.image_times):
                    content.append({"type": "image", "image": frame})
                    content.append({"type": "text", "text": frame_label(t)})
            text = turn.text if i == 0 else tool_response(turn.text)
            content.append({"type": "text", "text": text})
            messages.append({"role": turn.role, "content": content})
        return messages

    def to_openai_messages(self, max_video_frames: int = 32, jpeg_quality: int = 85) -> list[dict[str, Any]]:
        """OpenAI chat format; long videos are subsampled evenly to ``max_video_frames`` images."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}]
        for i, turn in enumerate(self.turns):
            if turn.role == "assistant":
                messages.append({"role": "assistant", "content": turn.text})
                continue
            content: list[dict[str, Any]] = []
            frames: list[tuple[np.ndarray, float]] = []
            if turn.video is not None:
                keep = np.unique(
                    np.linspace(0, len(turn.video) - 1, min(len(turn.video), max_video_frames))
                    .round()
                    .astype(int)
                )
                frames += [(turn.video[k], float(turn.video_times[k])) for k in keep]
            if turn.images is not None:
                frames += list(zip(turn.images, map(float, turn.image_times)))
            for frame, t in frames:
                content.append({"type": "text", "text": f"[{t:.2f} s]"})
                content.append(
                    {"type": "image_url", "image_url": {"url": _jpeg_data_url(frame, jpeg_quality)}}
                )
            text = turn.text if i == 0 else tool_response(turn.text)
            content.append({"type": "text", "text": text})
            messages.append({"role": "user", "content": content})
        return messages


def _flat(times: Any) -> np.ndarray | None:
    return None if times is None else np.asarray(times, dtype=np.float64).reshape(-1)


def even_subsample(n: int, cap: int) -> np.ndarray:
    """Indices of at most ``cap`` of ``n`` frames, evenly spread (all of them when ``n <= cap``): the
    frames a model is shown of a longer observation."""
    if n <= cap:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(int))


def time_text(t: float) -> str:
    """A time as the model reads and writes it: the shortest decimal to the millisecond (``35.5``,
    ``102.0``, ``87.483``), as a tool call's JSON writes it.

    One spelling everywhere (frame labels, reasoning, tool arguments), so writing a shown frame's time
    is a copy, not a copy plus a reformatting (docs/agents.md, "Testbed recipe")."""
    return str(round(float(t), 3))


def frame_label(t: float) -> str:
    """The text after a separately shown frame: its time in :func:`time_text`'s spelling (``"at 87.48 s"``).

    After, not before: in a causal model only text that follows a frame can attend to it, so the
    time's own tokens can carry what the frame shows, and "the time of the frame that shows X" is one
    lookup (docs/agents.md, "Testbed recipe")."""
    return f"at {time_text(t)} s"


def times_line(label: str, times: np.ndarray) -> str:
    """The text line before a video's frames: its frame count and their times (long lists elided)."""
    if len(times) <= 12:
        listed = ", ".join(f"{t:.1f}" for t in times)
    else:
        listed = f"{times[0]:.1f}, {times[1]:.1f}, …, {times[-1]:.1f}"
    return f"{label} ({len(times)}) at {listed} s:"


def _jpeg_data_url(frame: np.ndarray, quality: int) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
