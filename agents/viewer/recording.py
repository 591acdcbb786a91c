"""Keep what a text-only policy was shown, so that its episodes can be viewed afterwards.

Model policies (:class:`~medscope_gym.agents.vlm.policy.HFVLMPolicy`) record their own turns: the
observation text and the frames they were fed. Scripted and endpoint policies do not, so their
trajectories hold only what they said. :class:`RecordingPolicy` wraps such a policy and records, per
turn, the env's observation text and an even sample of its frames (at most ``max_frames``, with their
timestamps) downscaled to ``thumb_height`` pixels: thumbnails for the episode viewer, not model inputs,
some tens of kB per episode. It changes nothing the inner policy does or sees.
:func:`trajectory_from_result` turns an :class:`~medscope_gym.agents.runner.EpisodeResult` (``medscope
play``) into a :class:`~medscope_gym.agents.rollout.trajectory.Trajectory`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.rollout.trajectory import MediaInputs, Trajectory, TurnRecord
from medscope_gym.agents.runner import EpisodeResult

__all__ = [
    "MAX_FRAMES",
    "THUMB_HEIGHT",
    "RecordingPolicy",
    "even_indices",
    "jsonable",
    "thumbnails",
    "trajectory_from_result",
]

#: Height in pixels of the frames a RecordingPolicy keeps.
THUMB_HEIGHT = 64
#: Frames a RecordingPolicy keeps per observation (an even sample).
MAX_FRAMES = 8


def thumbnails(frames: np.ndarray, height: int = THUMB_HEIGHT) -> np.ndarray:
    """``frames`` (n, h, w, 3) uint8 scaled to ``height`` pixels high (never enlarged)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) == 0 or frames.shape[1] <= height:
        return frames
    from PIL import Image

    h, w = frames.shape[1:3]
    size = (max(1, round(w * height / h)), height)
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])


def even_indices(n: int, k: int) -> list[int]:
    """At most ``k`` indices of ``range(n)``, evenly spread, first and last included."""
    if k <= 0 or n <= 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, k))})


def _media(obs: dict[str, Any], height: int, max_frames: int) -> MediaInputs:
    def pair(frames_key: str, times_key: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        frames, times = obs.get(frames_key), obs.get(times_key)
        if frames is None or times is None or len(frames) == 0:
            return None, None
        keep = even_indices(len(frames), max_frames)
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        return thumbnails(np.asarray(frames)[keep], height), times[keep]

    video, video_times = pair("video", "video_times")
    images, image_times = pair("images", "image_times")
    return MediaInputs(video=video, video_times=video_times, images=images, image_times=image_times)


class RecordingPolicy(Policy):
    """``inner``, unchanged, plus a record of each turn's observation text and frame thumbnails."""

    records_turns = True

    def __init__(self, inner: Policy, thumb_height: int = THUMB_HEIGHT, max_frames: int = MAX_FRAMES) -> None:
        if inner.records_turns:
            raise ValueError(f"{type(inner).__name__} records its own turns; it needs no RecordingPolicy")
        self.inner = inner
        self.name = inner.name
        self.uses_ground_truth = inner.uses_ground_truth
        self.thumb_height = thumb_height
        self.max_frames = max_frames
        self._obs: dict[int, dict[str, Any]] = {}
        self._turns: dict[int, list[TurnRecord]] = {}

    @property
    def label(self) -> str:
        return self.inner.label

    def begin(self, slot, obs, info, sample=None) -> None:
        self.inner.begin(slot, obs, info, sample)
        self._turns[slot] = []

    def act(self, slots: Sequence[int], observations, infos) -> list[str]:
        texts = self.inner.act(slots, observations, infos)
        for slot, obs, text in zip(slots, observations, texts):
            self._turns.setdefault(slot, []).append(
                TurnRecord(
                    observation_text=str(obs.get("text", "")),
                    action_text=text,
                    finish="text",
                    media=_media(obs, self.thumb_height, self.max_frames),
                )
            )
        return texts

    def take_turns(self, slot: int) -> list[TurnRecord]:
        return self._turns.pop(slot, [])

    def imitate_last(self, slot: int) -> bool:
        return self.inner.imitate_last(slot)

    def sampling_settings(self) -> dict[str, Any] | None:
        return self.inner.sampling_settings()

    def usage(self) -> dict[str, dict[str, int]] | None:
        return self.inner.usage()


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and Python numbers (JSON-ready)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def trajectory_from_result(
    result: EpisodeResult,
    policy: str,
    *,
    seed: int | None = None,
    turns: list[TurnRecord] | None = None,
) -> Trajectory:
    """The :class:`Trajectory` of a finished :func:`~medscope_gym.agents.runner.run_episode` episode.

    ``turns``: a RecordingPolicy's records of it (with frames); None builds text-only turns from the
    result's observation and action texts.
    """
    if turns is None:
        turns = [
            TurnRecord(observation_text=obs, action_text=action, finish="text")
            for obs, action in zip(result.observations, result.actions)
        ]
    if turns:
        turns[-1].reward = float(result.reward)
    info = jsonable(result.final_info)
    return Trajectory(
        uid=uuid.uuid4().hex[:16],
        sample_id=str(info["sample_id"]),
        task=str(info["task"]),
        policy=policy,
        turns=turns,
        seed=seed,
        reward=float(result.reward),
        terminated=result.terminated,
        truncated=result.truncated,
        final_info=info,
        final_text=result.observations[-1] if result.observations else "",
    )
