"""GA-GRPO trajectory reward: hand-computed values for every formula and preset."""

from __future__ import annotations

import dataclasses

import pytest

from medscope_gym.intervals import temporal_iou
from medscope_gym.rewards import (
    PRESETS,
    RewardConfig,
    RewardParts,
    crop_reward,
    evidence_score,
    frame_reward,
    reward_config,
    trajectory_reward,
)

PAPER = RewardConfig()
MONO = RewardConfig(miss_scoring="monotone")
GT = [(0.0, 20.0)]


# --- config and presets -------------------------------------------------------------------------


def test_defaults_are_the_paper_values() -> None:
    cfg = RewardConfig()
    assert (cfg.w_acc, cfg.w_fmt, cfg.w_ev) == (1.0, 1.0, 1.0)
    assert cfg.evidence_mode == "always" and cfg.miss_scoring == "paper"
    assert (cfg.iou_threshold, cfg.iou_step, cfg.iou_bonus, cfg.frame_window) == (0.5, 0.05, 0.1, 1.0)


def test_presets() -> None:
    assert set(PRESETS) == {"paper", "no_evidence", "conditional_evidence", "no_iou_bonus"}
    assert PRESETS["paper"] == RewardConfig()
    assert PRESETS["no_evidence"] == RewardConfig(evidence_mode="off")
    assert PRESETS["conditional_evidence"] == RewardConfig(evidence_mode="conditional")
    assert PRESETS["no_iou_bonus"] == RewardConfig(iou_bonus=0.0)


def test_reward_config_overrides_and_errors() -> None:
    assert reward_config() == PAPER
    assert reward_config("no_iou_bonus", miss_scoring="monotone") == RewardConfig(
        iou_bonus=0.0, miss_scoring="monotone"
    )
    with pytest.raises(ValueError, match="conditional_evidence.*no_evidence.*no_iou_bonus.*paper"):
        reward_config("papr")
    with pytest.raises(ValueError, match="iou_step"):
        reward_config("paper", iou_step=0.0)
    assert PRESETS["paper"] == RewardConfig()  # overrides never mutate the preset


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("w_acc", -0.1),
        ("w_fmt", -1.0),
        ("w_ev", -2.0),
        ("w_ev", float("nan")),
        ("iou_threshold", 0.0),
        ("iou_threshold", 1.01),
        ("iou_threshold", -0.5),
        ("iou_step", 0.0),
        ("iou_step", -0.05),
        ("iou_bonus", -0.1),
        ("iou_bonus", float("inf")),
        ("frame_window", 0.0),
        ("frame_window", -1.0),
        ("evidence_mode", "sometimes"),
        ("miss_scoring", "lenient"),
        ("w_acc", "1"),
    ],
)
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RewardConfig(**{field: value})


def test_config_accepts_edge_values() -> None:
    RewardConfig(w_acc=0.0, w_fmt=0.0, w_ev=0.0, iou_threshold=1.0, iou_bonus=0.0)


# --- crop reward --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crop", "iou", "expected"),
    [
        ((0.0, 10.0), 0.5, 1.0),  # exactly at h0
        ((0.0, 11.0), 0.55, 1.1),  # one step
        ((0.0, 12.0), 0.6, 1.2),  # two steps, despite (0.6 - 0.5) / 0.05 rounding below 2
        ((0.0, 14.0), 0.7, 1.4),
        ((0.0, 18.9), 0.945, 1.8),  # floor: 8.9 steps → 8
        ((0.0, 19.0), 0.95, 1.9),
        ((0.0, 20.0), 1.0, 2.0),  # perfect crop
        ((0.0, 9.99), 0.4995, -1.0),  # just below h0: partial miss
        ((15.0, 40.0), 0.125, -1.0),  # partial miss
        ((30.0, 40.0), 0.0, 0.0),  # total miss scores above a partial miss (paper)
        ((20.0, 30.0), 0.0, 0.0),  # touching at one point is no overlap
    ],
)
def test_crop_reward_paper(crop: tuple[float, float], iou: float, expected: float) -> None:
    assert temporal_iou(crop, GT[0]) == pytest.approx(iou)
    assert crop_reward(crop, GT, PAPER) == pytest.approx(expected, abs=1e-12)


def test_crop_reward_step_boundaries_are_exact() -> None:
    # (0.6 - 0.5) / 0.05 is 1.9999999999999996 in binary floating point; the epsilon keeps it at 2 steps.
    assert (0.6 - 0.5) / 0.05 < 2
    assert crop_reward((0.0, 12.0), GT, PAPER) == pytest.approx(1.2)
    for k in range(11):
        iou = 0.5 + 0.05 * k
        crop = (0.0, 20.0 * iou)
        assert crop_reward(crop, GT, PAPER) == pytest.approx(1.0 + 0.1 * k), k


def test_crop_reward_iou_a_rounding_error_below_threshold_is_a_hit() -> None:
    gt, crop = [(0.1, 0.1 + 0.2)], (0.1, 0.2)  # half of the window, but IoU rounds to 0.49999999999999994
    assert temporal_iou(crop, gt[0]) < 0.5
    assert crop_reward(crop, gt, PAPER) == 1.0
    assert crop_reward(crop, gt, MONO) == 1.0


@pytest.mark.parametrize(
    ("crop", "expected"),
    [
        ((0.0, 10.0), 1.0),
        ((0.0, 12.0), 1.2),
        ((0.0, 20.0), 2.0),
        ((0.0, 9.99), -1.0 + 0.4995 / 0.5),
        ((15.0, 40.0), -0.75),  # IoU 0.125 → -1 + 0.125/0.5
        ((30.0, 40.0), -1.0),  # total miss is the worst
    ],
)
def test_crop_reward_monotone(crop: tuple[float, float], expected: float) -> None:
    assert crop_reward(crop, GT, MONO) == pytest.approx(expected)


def test_miss_scoring_orderings() -> None:
    total, partial, hit = (30.0, 40.0), (15.0, 40.0), (0.0, 10.0)
    assert crop_reward(total, GT, MONO) < crop_reward(partial, GT, MONO) < crop_reward(hit, GT, MONO)
    # the paper (reference code) scores a total miss above a partial miss
    assert crop_reward(partial, GT, PAPER) < crop_reward(total, GT, PAPER) < crop_reward(hit, GT, PAPER)


def test_monotone_variant_never_decreases_with_iou() -> None:
    scores = [crop_reward((0.0, 20.0 * k / 200), GT, MONO) for k in range(1, 201)]
    assert all(a <= b + 1e-12 for a, b in zip(scores, scores[1:]))
    assert scores[0] > -1.0 and scores[-1] == pytest.approx(2.0)


def test_no_iou_bonus_flattens_hits() -> None:
    cfg = PRESETS["no_iou_bonus"]
    assert crop_reward((0.0, 10.0), GT, cfg) == 1.0
    assert crop_reward((0.0, 20.0), GT, cfg) == 1.0
    assert crop_reward((15.0, 40.0), GT, cfg) == -1.0


def test_custom_threshold_step_bonus() -> None:
    cfg = RewardConfig(iou_threshold=0.3, iou_step=0.1, iou_bonus=0.5)
    assert crop_reward((0.0, 6.0), GT, cfg) == pytest.approx(1.0)  # IoU 0.3
    assert crop_reward((0.0, 10.0), GT, cfg) == pytest.approx(2.0)  # IoU 0.5: two steps
    assert crop_reward((0.0, 20.0), GT, cfg) == pytest.approx(4.5)  # IoU 1.0: seven steps
    assert crop_reward((0.0, 5.0), GT, cfg) == -1.0  # IoU 0.25 < 0.3


def test_crop_reward_several_windows_uses_best_iou() -> None:
    gt = [(0.0, 20.0), (100.0, 110.0)]
    assert crop_reward((100.0, 110.0), gt, PAPER) == pytest.approx(2.0)
    assert crop_reward((100.0, 120.0), gt, PAPER) == pytest.approx(1.0)  # IoU 0.5 with the second
    assert crop_reward((0.0, 12.0), gt, PAPER) == pytest.approx(1.2)
    # IoU 0.3 with one window and 0 with the other: the best IoU (0.3) is a partial miss
    assert crop_reward((0.0, 6.0), gt, PAPER) == -1.0
    assert crop_reward((50.0, 60.0), gt, PAPER) == 0.0


@pytest.mark.parametrize(
    ("crop", "expected"),
    [((40.0, 60.0), 1.0), ((50.0, 60.0), 1.0), ((40.0, 50.0), 1.0), ((51.0, 60.0), 0.0), ((0.0, 49.9), 0.0)],
)
def test_crop_reward_moment(crop: tuple[float, float], expected: float) -> None:
    assert crop_reward(crop, [(50.0, 50.0)], PAPER) == expected
    assert crop_reward(crop, [(50.0, 50.0)], MONO) == expected


def test_crop_reward_moment_ignores_iou_bonus() -> None:
    assert crop_reward((49.0, 51.0), [(50.0, 50.0)], PAPER) == 1.0


def test_crop_reward_mixed_moments_and_windows_takes_the_max() -> None:
    gt = [(0.0, 20.0), (50.0, 50.0)]
    assert crop_reward((40.0, 60.0), gt, PAPER) == 1.0  # contains the moment, misses the window
    assert crop_reward((0.0, 12.0), gt, PAPER) == pytest.approx(1.2)  # window hit beats moment miss
    assert crop_reward((15.0, 55.0), gt, PAPER) == 1.0  # partial window miss (-1) vs moment hit (1)
    assert crop_reward((15.0, 40.0), gt, PAPER) == 0.0  # partial miss (-1) vs moment miss (0)
    assert crop_reward((15.0, 40.0), gt, MONO) == 0.0


def test_crop_reward_without_crop_or_evidence_is_zero() -> None:
    assert crop_reward(None, GT, PAPER) == 0.0
    assert crop_reward(None, GT, MONO) == 0.0
    assert crop_reward((0.0, 10.0), [], PAPER) == 0.0
    assert crop_reward((0.0, 10.0), [], MONO) == 0.0


# --- frame reward -------------------------------------------------------------------------------


@pytest.mark.parametrize(("t", "expected"), [(10.0, 1.0), (15.0, 1.0), (20.0, 1.0), (9.99, 0.0), (25.0, 0.0)])
def test_frame_reward_window(t: float, expected: float) -> None:
    assert frame_reward(t, [(10.0, 20.0)], PAPER) == expected


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (50.0, 1.0),
        (50.5, 0.5),
        (49.5, 0.5),
        (51.0, 0.0),
        (49.0, 0.0),
        (52.0, 0.0),
        (48.0, 0.0),
        (50.25, 0.75),
    ],
)
def test_frame_reward_moment(t: float, expected: float) -> None:
    assert frame_reward(t, [(50.0, 50.0)], PAPER) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("t", "expected"), [(50.0, 1.0), (50.5, 0.75), (51.0, 0.5), (52.0, 0.0), (53.0, 0.0)]
)
def test_frame_reward_moment_with_wider_window(t: float, expected: float) -> None:
    assert frame_reward(t, [(50.0, 50.0)], RewardConfig(frame_window=2.0)) == pytest.approx(expected)


def test_frame_reward_several_windows_takes_the_max() -> None:
    gt = [(10.0, 20.0), (50.0, 50.0), (52.0, 52.0)]
    assert frame_reward(15.0, gt, PAPER) == 1.0
    assert frame_reward(50.5, gt, PAPER) == pytest.approx(0.5)
    assert frame_reward(51.8, gt, PAPER) == pytest.approx(0.8)  # nearer the second moment
    assert frame_reward(30.0, gt, PAPER) == 0.0


def test_frame_reward_without_frame_is_zero() -> None:
    assert frame_reward(None, GT, PAPER) == 0.0
    assert frame_reward(5.0, [], PAPER) == 0.0
    assert frame_reward(float("nan"), [(5.0, 5.0)], PAPER) == 0.0


# --- trajectory reward --------------------------------------------------------------------------


def _reward(cfg: RewardConfig, accuracy: float = 1.0, format_ok: bool = True, **kw: object) -> RewardParts:
    args: dict = {"last_crop": (0.0, 12.0), "last_frame": 15.0, "evidence": GT}
    args.update(kw)
    return trajectory_reward(accuracy=accuracy, format_ok=format_ok, cfg=cfg, **args)


def test_trajectory_reward_paper() -> None:
    parts = _reward(PAPER)
    assert parts == RewardParts(
        accuracy=1.0,
        format=1.0,
        evidence=pytest.approx(2.2),
        crop=pytest.approx(1.2),
        frame=1.0,
        total=pytest.approx(4.2),
    )


def test_trajectory_reward_weights() -> None:
    cfg = RewardConfig(w_acc=2.0, w_fmt=0.5, w_ev=0.25)
    parts = _reward(cfg, accuracy=0.5)
    assert parts.total == pytest.approx(2.0 * 0.5 + 0.5 * 1.0 + 0.25 * 2.2)
    assert parts.accuracy == 0.5 and parts.evidence == pytest.approx(2.2)  # parts are unweighted


def test_trajectory_reward_format_fail_and_negative_evidence() -> None:
    parts = _reward(PAPER, accuracy=0.0, format_ok=False, last_crop=(15.0, 40.0), last_frame=30.0)
    assert parts.as_dict() == {
        "accuracy": 0.0,
        "format": 0.0,
        "evidence": -1.0,
        "crop": -1.0,
        "frame": 0.0,
        "total": -1.0,
    }


def test_trajectory_reward_without_tools() -> None:
    parts = _reward(PAPER, last_crop=None, last_frame=None)
    assert (parts.evidence, parts.crop, parts.frame, parts.total) == (0.0, 0.0, 0.0, 2.0)


def test_trajectory_reward_frame_only_on_moment() -> None:
    parts = _reward(PAPER, last_crop=None, last_frame=50.5, evidence=[(50.0, 50.0)])
    assert parts.crop == 0.0 and parts.frame == pytest.approx(0.5) and parts.total == pytest.approx(2.5)


def test_no_evidence_preset_zeroes_all_evidence_parts() -> None:
    parts = _reward(PRESETS["no_evidence"])
    assert (parts.evidence, parts.crop, parts.frame) == (0.0, 0.0, 0.0)
    assert parts.total == 2.0
    negative = _reward(PRESETS["no_evidence"], last_crop=(15.0, 40.0))
    assert negative.crop == 0.0 and negative.total == 2.0


@pytest.mark.parametrize(("accuracy", "paid"), [(1.0, True), (0.999, False), (0.5, False), (0.0, False)])
def test_conditional_evidence_is_gated_on_full_accuracy(accuracy: float, paid: bool) -> None:
    parts = _reward(PRESETS["conditional_evidence"], accuracy=accuracy)
    if paid:
        assert (parts.crop, parts.frame, parts.evidence) == (pytest.approx(1.2), 1.0, pytest.approx(2.2))
        assert parts.total == pytest.approx(accuracy + 1.0 + 2.2)
    else:
        assert (parts.crop, parts.frame, parts.evidence) == (0.0, 0.0, 0.0)
        assert parts.total == pytest.approx(accuracy + 1.0)


def test_conditional_evidence_also_gates_penalties() -> None:
    parts = _reward(PRESETS["conditional_evidence"], accuracy=0.0, last_crop=(15.0, 40.0))
    assert parts.crop == 0.0 and parts.total == 1.0


def test_no_iou_bonus_preset_in_trajectory() -> None:
    parts = _reward(PRESETS["no_iou_bonus"], last_crop=(0.0, 20.0))
    assert parts.crop == 1.0 and parts.total == pytest.approx(4.0)


def test_every_preset_on_one_trajectory() -> None:
    totals = {name: _reward(cfg, last_crop=(0.0, 20.0)).total for name, cfg in PRESETS.items()}
    assert totals == pytest.approx(
        {"paper": 5.0, "no_evidence": 2.0, "conditional_evidence": 5.0, "no_iou_bonus": 4.0}
    )


def test_as_dict_is_plain_floats() -> None:
    import numpy as np

    parts = trajectory_reward(
        accuracy=np.float32(1.0),
        format_ok=True,
        last_crop=(0.0, 10.0),
        last_frame=np.float64(5.0),
        evidence=GT,
        cfg=PAPER,
    )
    d = parts.as_dict()
    assert list(d) == ["accuracy", "format", "evidence", "crop", "frame", "total"]
    assert all(type(v) is float for v in d.values())
    assert d["total"] == pytest.approx(4.0)


def test_reward_parts_are_frozen() -> None:
    parts = _reward(PAPER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parts.total = 0.0  # type: ignore[misc]


def test_evidence_score() -> None:
    parts = _reward(PAPER)
    assert evidence_score(parts, used_tool=True) == pytest.approx(2.2)
    assert evidence_score(parts, used_tool=False) is None
