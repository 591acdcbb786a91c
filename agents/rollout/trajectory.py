"""The trajectory format shared by rollouts, SFT data and GA-GRPO, and its JSONL + frames storage.

One :class:`Trajectory` is one episode. Its token sequence is the concatenation, turn by turn, of
``prompt_ids`` (the observation chunk the policy was fed: a chat-template delta with the vision
placeholders already expanded) and ``action_ids`` (what the policy produced, exactly as sampled)::

    [turn 0 prompt_ids][turn 0 action_ids][turn 1 prompt_ids][turn 1 action_ids] ...

:meth:`Trajectory.input_ids`, :meth:`Trajectory.action_mask` and :meth:`Trajectory.behaviour_logprobs`
give that sequence flat, the 0/1 mask of the policy's own tokens (the only tokens a loss may touch),
and the sampling-time log-probs aligned with it (0 outside the mask). The vision inputs of turn ``k``
are the frames in ``turns[k].media`` (as shown to the model, after its frame reduction); run them
through the processor again (:meth:`medscope_gym.agents.vlm.encoding.ChatEncoder.process_media`) to rebuild
the
pixel tensors. The env's side (reward parts, tool log, format verdict, ground truth) is kept as the
env reported it in its final ``info``.

On disk (:func:`save_trajectories`): ``trajectories.jsonl`` (one trajectory per line, frames left
out) and ``frames/<uid>.npz`` (each turn's frames and timestamps), written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.runner import record_from_info
from medscope_gym.atomic import atomic_directory
from medscope_gym.chat import frames_fps
from medscope_gym.metrics import EpisodeRecord

__all__ = ["MediaInputs", "Trajectory", "TurnRecord", "load_trajectories", "save_trajectories"]

JSONL_NAME = "trajectories.jsonl"
FRAMES_DIR = "frames"


@dataclass
class MediaInputs:
    """The frames of one observation as the model receives them (after the policy's reduction)."""

    video: np.ndarray | None = None
    """(n, h, w, 3) uint8: the preview or crop frames."""
    video_times: np.ndarray | None = None
    """(n,) seconds of each video frame."""
    images: np.ndarray | None = None
    """(m, h, w, 3) uint8: get_frame frames."""
    image_times: np.ndarray | None = None
    """(m,) seconds of each image."""

    @property
    def video_fps(self) -> float:
        """Sampling rate of the video frames, from their real timestamps."""
        return frames_fps(self.video_times) if self.video_times is not None else 1.0

    def as_observation(self, text: str) -> dict[str, Any]:
        """An env-style observation dict holding these frames (what the transcript renders)."""
        empty = np.zeros((0, 1), dtype=np.float64)
        return {
            "text": text,
            "video": self.video if self.video is not None else np.zeros((0, 1, 1, 3), np.uint8),
            "video_times": self.video_times.reshape(-1, 1) if self.video_times is not None else empty,
            "images": self.images if self.images is not None else np.zeros((0, 1, 1, 3), np.uint8),
            "image_times": self.image_times.reshape(-1, 1) if self.image_times is not None else empty,
        }


@dataclass
class TurnRecord:
    """One assistant turn and the observation that preceded it."""

    observation_text: str
    """The env's text of the observation fed before this turn."""
    action_text: str
    """What the env received: the decode of ``action_ids`` (stop tag included)."""
    prompt_ids: list[int] = field(default_factory=list)
    """Tokens of the observation chunk (template delta, vision placeholders expanded); empty for text-only
    policies that keep no tokens."""
    action_ids: list[int] = field(default_factory=list)
    """Tokens the policy produced this turn, exactly as sampled (or the reference's tokens in SFT data)."""
    action_logprobs: list[float] | None = None
    """Behaviour log-prob of each action token at sampling time (None for reference / scripted turns)."""
    finish: str = "stop"
    """"stop" (ended on a stop token), "length" (hit max_new_tokens) or "text" (no tokens kept)."""
    media: MediaInputs = field(default_factory=MediaInputs)
    """The frames the model was shown with this observation."""
    video_grid_thw: list[list[int]] = field(default_factory=list)
    image_grid_thw: list[list[int]] = field(default_factory=list)
    second_per_grid_ts: list[float] = field(default_factory=list)
    reward: float = 0.0
    """Env reward of the step that took this action (the trajectory reward arrives on the last one)."""
    imitate: bool = True
    """Whether SFT learns this turn. False only for a deliberate mistake in reference data: it stays in
    the context (so the model learns to recover from its error message) but is not imitated."""
    vision: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The processor outputs the model was fed for ``media`` (in memory only, not saved): a learner
    scoring a fresh rollout reuses them instead of running the processor again."""

    def to_json(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "observation_text",
                "action_text",
                "prompt_ids",
                "action_ids",
                "action_logprobs",
                "finish",
                "video_grid_thw",
                "image_grid_thw",
                "second_per_grid_ts",
                "reward",
                "imitate",
            )
        }
        out["video_times"] = None if self.media.video_times is None else self.media.video_times.tolist()
        out["image_times"] = None if self.media.image_times is None else self.media.image_times.tolist()
        return out


@dataclass
class Trajectory:
    """One episode: per-turn tokens and frames, plus the env's verdict."""

    uid: str
    sample_id: str
    task: str
    policy: str
    turns: list[TurnRecord] = field(default_factory=list)
    group: int | None = None
    """Index of the question in a group rollout (G rollouts share it), else None."""
    group_index: int = 0
    """Position of this rollout inside its group."""
    seed: int | None = None
    sampling: dict[str, Any] | None = None
    """The :class:`medscope_gym.agents.vlm.sampling.SamplingConfig` the turns were sampled with (None if not
    sampled)."""
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    final_info: dict[str, Any] = field(default_factory=dict)
    """The env's final info: reward_parts, format, episode, tool_log, ground_truth, judge, answer."""
    final_text: str = ""
    """The env's last observation text (after the final action; never fed to the policy)."""

    # ------------------------------------------------------------------ flat token views
    def input_ids(self) -> list[int]:
        return [t for turn in self.turns for t in (*turn.prompt_ids, *turn.action_ids)]

    def action_mask(self) -> list[int]:
        """1 on the policy's own tokens, 0 on prompts, tool responses and vision placeholders."""
        return [m for turn in self.turns for m in ([0] * len(turn.prompt_ids) + [1] * len(turn.action_ids))]

    def loss_mask(self) -> list[int]:
        """The SFT loss mask: :meth:`action_mask` restricted to imitated turns (equal to it unless the
        reference data hold deliberate mistakes)."""
        return [
            m
            for turn in self.turns
            for m in ([0] * len(turn.prompt_ids) + [int(turn.imitate)] * len(turn.action_ids))
        ]

    def behaviour_logprobs(self) -> list[float]:
        """Sampling-time log-probs aligned with :meth:`input_ids` (0.0 outside the action mask)."""
        out: list[float] = []
        for turn in self.turns:
            lp = turn.action_logprobs if turn.action_logprobs is not None else [0.0] * len(turn.action_ids)
            out += [0.0] * len(turn.prompt_ids) + list(lp)
        return out

    @property
    def has_tokens(self) -> bool:
        return bool(self.turns) and all(turn.action_ids for turn in self.turns)

    @property
    def reward_parts(self) -> dict[str, float]:
        return dict(self.final_info.get("reward_parts", {}))

    @property
    def tool_log(self) -> list[dict[str, Any]]:
        return list(self.final_info.get("tool_log", []))

    @property
    def used_tool(self) -> bool:
        return any(entry.get("ok") for entry in self.tool_log)

    def record(self) -> EpisodeRecord:
        """The metrics record (medscope_gym.metrics) of this episode."""
        return record_from_info(self.final_info)

    def to_json(self) -> dict[str, Any]:
        data = {
            k: getattr(self, k)
            for k in (
                "uid",
                "sample_id",
                "task",
                "policy",
                "group",
                "group_index",
                "seed",
                "sampling",
                "reward",
                "terminated",
                "truncated",
                "final_info",
                "final_text",
            )
        }
        data["turns"] = [turn.to_json() for turn in self.turns]
        return data


def _frames_npz(traj: Trajectory) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for k, turn in enumerate(traj.turns):
        if turn.media.video is not None:
            arrays[f"turn{k}_video"] = turn.media.video
        if turn.media.images is not None:
            arrays[f"turn{k}_images"] = turn.media.images
    return arrays


def save_trajectories(path: str | Path, trajectories: Iterable[Trajectory]) -> Path:
    """Write ``trajectories`` to the folder ``path`` (replaced atomically): JSONL + one npz of frames each."""
    path = Path(path)
    with atomic_directory(path) as tmp:
        (tmp / FRAMES_DIR).mkdir()
        with open(tmp / JSONL_NAME, "w", encoding="utf-8") as fh:
            for traj in trajectories:
                fh.write(json.dumps(traj.to_json(), ensure_ascii=False) + "\n")
                arrays = _frames_npz(traj)
                if arrays:
                    np.savez_compressed(tmp / FRAMES_DIR / f"{traj.uid}.npz", **arrays)
    return path


def load_trajectories(path: str | Path, *, frames: bool = True) -> list[Trajectory]:
    """Read a folder written by :func:`save_trajectories` (``frames=False`` skips the pixel arrays)."""
    path = Path(path)
    out: list[Trajectory] = []
    with open(path / JSONL_NAME, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(_from_json(json.loads(line), path / FRAMES_DIR, frames))
    return out


def _from_json(data: dict[str, Any], frames_dir: Path, frames: bool) -> Trajectory:
    arrays: dict[str, np.ndarray] = {}
    npz = frames_dir / f"{data['uid']}.npz"
    if frames and npz.exists():
        with np.load(npz) as fh:
            arrays = {k: fh[k] for k in fh.files}
    turns = []
    for k, t in enumerate(data.pop("turns")):
        vt, it = t.pop("video_times"), t.pop("image_times")
        media = MediaInputs(
            video=arrays.get(f"turn{k}_video"),
            images=arrays.get(f"turn{k}_images"),
            video_times=None if vt is None else np.asarray(vt, dtype=np.float64),
            image_times=None if it is None else np.asarray(it, dtype=np.float64),
        )
        turns.append(TurnRecord(media=media, **t))
    return Trajectory(turns=turns, **data)
