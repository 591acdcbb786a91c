"""GA-GRPO trajectory reward: R = w_acc·R_acc + w_fmt·R_format + w_ev·(R_crop + R_frame).

The evidence part rewards *where the agent looked*: the last crop_video interval against the ground-truth
windows (IoU, with a bonus for every Δ above the threshold h0) and the last get_frame timestamp (inside a
window, or close to a ground-truth moment). The presets mirror the paper's reward ablation so that each
variant is one name away.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from medscope_gym.config import check, non_negative_float, one_of, positive_float, probability
from medscope_gym.errors import ConfigError
from medscope_gym.intervals import Interval, best_iou, contains, is_moment

__all__ = [
    "GRADED_EVIDENCE",
    "MONOTONE_MISSES",
    "NAMED_REWARDS",
    "PRESETS",
    "RewardSpec",
    "RewardConfig",
    "RewardParts",
    "crop_reward",
    "evidence_score",
    "frame_reward",
    "parse_reward",
    "reward_config",
    "trajectory_reward",
]

_EPS_FLOOR = 1e-9  # keeps floor((0.6 - 0.5) / 0.05) at 2 despite binary rounding
_EPS_THRESHOLD = 1e-12  # an IoU a rounding error below h0 still counts as a hit


@dataclass(frozen=True)
class RewardConfig:
    """Weights and evidence-reward shape; defaults are the paper's.

    Attributes:
        w_acc, w_fmt, w_ev: weights of accuracy, format and evidence (paper 1 : 1 : 1).
        evidence_mode: "always" pays evidence in every trajectory; "conditional" only when accuracy is 1;
            "off" never.
        iou_threshold: h0, the crop IoU from which a crop counts as a hit (R_crop = 1).
        iou_step: Δ, each full step of IoU above h0 adds ``iou_bonus``.
        iou_bonus: η, so a perfect crop scores 1 + η·(1 − h0)/Δ (2.0 with the defaults).
        miss_scoring: "paper" scores a partial miss (0 < IoU < h0) −1 and a total miss 0, as the reference
            code does; "monotone" scores −1 + IoU/h0 so that more overlap is never worse; "graded" scores
            IoU/h0 (0 for a total miss, rising to the hit score 1 at h0): dense and never below not
            cropping, for learners that find the window by trial (see :data:`GRADED_EVIDENCE`).
        frame_window: w in seconds; a frame t near a ground-truth moment g earns max(0, 1 − |t − g|/w).
    """

    w_acc: float = 1.0
    w_fmt: float = 1.0
    w_ev: float = 1.0
    evidence_mode: Literal["always", "conditional", "off"] = "always"
    iou_threshold: float = 0.5
    iou_step: float = 0.05
    iou_bonus: float = 0.1
    miss_scoring: Literal["paper", "monotone", "graded"] = "paper"
    frame_window: float = 1.0

    def __post_init__(self) -> None:
        check(self, non_negative_float, "w_acc", "w_fmt", "w_ev", "iou_bonus")
        check(self, positive_float, "iou_step", "frame_window")
        check(self, probability, "iou_threshold")
        if self.iou_threshold == 0:
            raise ConfigError(f"iou_threshold must be in (0, 1], got {self.iou_threshold!r}")
        check(self, one_of(("always", "conditional", "off")), "evidence_mode")
        check(self, one_of(("paper", "monotone", "graded")), "miss_scoring")


#: The paper's reward and its ablations (Figure 5 of the paper).
PRESETS: dict[str, RewardConfig] = {
    "paper": RewardConfig(),
    "no_evidence": RewardConfig(evidence_mode="off"),
    "conditional_evidence": RewardConfig(evidence_mode="conditional"),
    "no_iou_bonus": RewardConfig(iou_bonus=0.0),
}


#: A dense evidence reward for classic RL (kept out of :data:`PRESETS`, the paper's ablation set): crop
#: misses score IoU/h0 instead of −1, so every bit of overlap pays and a crop never scores below
#: no crop; hits, the IoU bonus, R_frame and the weights are the paper's.
GRADED_EVIDENCE = RewardConfig(miss_scoring="graded")

#: The paper's reward with partial crop misses scored −1 + IoU/h0 (more overlap is never worse).
MONOTONE_MISSES = RewardConfig(miss_scoring="monotone")

#: Every reward a name stands for: the paper's presets, then the variants for other learners.
NAMED_REWARDS: dict[str, RewardConfig] = {
    **PRESETS,
    "graded": GRADED_EVIDENCE,
    "monotone": MONOTONE_MISSES,
}

#: What every config and env accepts as a reward: a name of :data:`NAMED_REWARDS`, a mapping of
#: :class:`RewardConfig` fields (with an optional ``preset`` name they start from, default "paper"), or a
#: RewardConfig. :func:`parse_reward` reads all three.
RewardSpec = Union[str, Mapping[str, Any], RewardConfig]  # noqa: UP007 - a runtime alias


def reward_config(preset: str = "paper", **overrides: object) -> RewardConfig:
    """A named reward with some fields replaced, e.g. ``reward_config("paper", miss_scoring="monotone")``.

    ``preset`` is any name of :data:`NAMED_REWARDS`; errors raise ConfigError.
    """
    if preset not in NAMED_REWARDS:
        raise ConfigError(
            f"unknown reward preset {preset!r}; valid names: {', '.join(sorted(NAMED_REWARDS))} "
            "(or a mapping of RewardConfig fields)"
        )
    if not overrides:
        return NAMED_REWARDS[preset]
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(RewardConfig)})
    if unknown:
        raise ConfigError(f"unknown RewardConfig field(s): {', '.join(unknown)}")
    return dataclasses.replace(NAMED_REWARDS[preset], **overrides)


def parse_reward(spec: RewardSpec) -> RewardConfig:
    """The one reader of reward specs (envs, SFT, GRPO, SB3 and eval configs).

    ``"paper"`` / ``"graded"`` / any name of :data:`NAMED_REWARDS`; ``{"preset": "no_iou_bonus",
    "miss_scoring": "monotone"}`` or ``{"w_ev": 0.5}`` (fields over a preset, default "paper"); or a
    :class:`RewardConfig`. Anything else raises ConfigError.
    """
    if isinstance(spec, RewardConfig):
        return spec
    if isinstance(spec, str):
        return reward_config(spec)
    if isinstance(spec, Mapping):
        fields = dict(spec)
        preset = fields.pop("preset", "paper")
        if not isinstance(preset, str):
            raise ConfigError(f"reward preset must be a name, got {preset!r}")
        return reward_config(preset, **fields)
    raise ConfigError(
        f"a reward must be a name, a mapping of RewardConfig fields or a RewardConfig, got {spec!r}"
    )


def _window_crop_score(iou: float, cfg: RewardConfig) -> float:
    if iou >= cfg.iou_threshold - _EPS_THRESHOLD:
        steps = math.floor(max(0.0, iou - cfg.iou_threshold) / cfg.iou_step + _EPS_FLOOR)
        return 1.0 + cfg.iou_bonus * steps
    if cfg.miss_scoring == "monotone":
        return -1.0 + iou / cfg.iou_threshold
    if cfg.miss_scoring == "graded":
        return iou / cfg.iou_threshold
    return -1.0 if iou > 0.0 else 0.0


def crop_reward(crop: Interval | None, evidence: Sequence[Interval], cfg: RewardConfig) -> float:
    """R_crop of the last crop: scored on the best IoU over the ground-truth windows.

    Ground-truth moments (t, t) score 1 when the crop contains t (0 otherwise, in both miss modes). With
    windows and moments mixed, the better of the two scores counts. No crop or no evidence → 0.
    """
    if crop is None or not evidence:
        return 0.0
    scores: list[float] = []
    windows = [w for w in evidence if not is_moment(w)]
    moments = [w for w in evidence if is_moment(w)]
    if windows:
        scores.append(_window_crop_score(best_iou(crop, windows), cfg))
    if moments:
        scores.append(1.0 if any(contains(crop, m[0]) for m in moments) else 0.0)
    return float(max(scores))


def frame_reward(timestamp: float | None, evidence: Sequence[Interval], cfg: RewardConfig) -> float:
    """R_frame of the last get_frame: 1 inside a window; near a moment g, max(0, 1 − |t − g|/w)."""
    if timestamp is None or not evidence or not math.isfinite(timestamp):
        return 0.0
    best = 0.0
    for window in evidence:
        if is_moment(window):
            score = max(0.0, 1.0 - abs(float(timestamp) - float(window[0])) / cfg.frame_window)
        else:
            score = 1.0 if contains(window, timestamp) else 0.0
        best = max(best, score)
    return best


@dataclass(frozen=True)
class RewardParts:
    """Every part of one trajectory's reward (unweighted parts, weighted total)."""

    accuracy: float
    format: float
    evidence: float
    crop: float
    frame: float
    total: float

    def as_dict(self) -> dict[str, float]:
        """Plain Python floats, ready for ``info`` and JSON logs."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}


def trajectory_reward(
    *,
    accuracy: float,
    format_ok: bool,
    last_crop: Interval | None,
    last_frame: float | None,
    evidence: Sequence[Interval],
    cfg: RewardConfig,
) -> RewardParts:
    """Reward of a finished trajectory from its accuracy, strict format verdict and last tool calls.

    ``last_crop`` / ``last_frame`` are the interval and timestamp of the episode's last *successful*
    crop_video and get_frame (None when there was none).
    """
    fmt = 1.0 if format_ok else 0.0
    paid = cfg.evidence_mode == "always" or (cfg.evidence_mode == "conditional" and accuracy == 1.0)
    crop = crop_reward(last_crop, evidence, cfg) if paid else 0.0
    frame = frame_reward(last_frame, evidence, cfg) if paid else 0.0
    ev = crop + frame
    total = cfg.w_acc * accuracy + cfg.w_fmt * fmt + cfg.w_ev * ev
    return RewardParts(
        accuracy=float(accuracy),
        format=fmt,
        evidence=float(ev),
        crop=float(crop),
        frame=float(frame),
        total=float(total),
    )


def evidence_score(parts: RewardParts, used_tool: bool) -> float | None:
    """f_i for evidence-modulated advantages: the evidence reward if the trajectory used a tool, else None."""
    return float(parts.evidence) if used_tool else None
