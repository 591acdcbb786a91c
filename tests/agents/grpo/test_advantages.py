"""Group advantages and evidence modulation against hand-computed groups (docs/ga-grpo.md)."""

from __future__ import annotations

import numpy as np
import pytest

from medscope_gym.agents.grpo.advantages import evidence_factors, group_advantages, modulate
from medscope_gym.agents.grpo.trainer import evidence_scores
from medscope_gym.agents.rollout.trajectory import Trajectory


def test_advantage_is_reward_minus_group_mean_per_group():
    rewards = [1.0, 5.0, 2.0, 0.0, 3.0, 1.0, 6.0, 1.0]
    groups = [0, 1, 0, 1, 0, 1, 0, 1]  # group 0: 1, 2, 3, 6 (mean 3); group 1: 5, 0, 1, 1 (mean 1.75)
    adv, flat = group_advantages(rewards, groups)
    np.testing.assert_allclose(adv, [-2.0, 3.25, -1.0, -1.75, 0.0, -0.75, 3.0, -0.75])
    assert not flat.any()


def test_std_normalisation_divides_by_the_group_std_plus_eps():
    adv, _ = group_advantages(
        [1.0, 3.0, 10.0, 10.0, 13.0, 7.0], [0, 0, 1, 1, 1, 1], normalise_std=True, std_eps=0.5
    )
    # group 0: mean 2, std 1 -> ±1 / 1.5; group 1: 10, 10, 13, 7: mean 10, std sqrt(4.5)
    std1 = np.sqrt(4.5)
    np.testing.assert_allclose(adv, [-1 / 1.5, 1 / 1.5, 0.0, 0.0, 3 / (std1 + 0.5), -3 / (std1 + 0.5)])


@pytest.mark.parametrize("normalise_std", [False, True])
def test_zero_variance_groups_get_exactly_zero_and_are_flagged(normalise_std):
    adv, flat = group_advantages(
        [2.0, 2.0, 2.0, 0.0, 1.0, 2.0], [0, 0, 0, 1, 1, 1], normalise_std=normalise_std
    )
    assert np.all(np.isfinite(adv))
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    assert flat.tolist() == [True, True, True, False, False, False]


def test_non_finite_rewards_are_refused_with_their_position():
    with pytest.raises(ValueError, match=r"\[1\]"):
        group_advantages([0.0, float("nan")], [0, 0])


def test_binary_modulation_table():
    adv = [0.5, 0.5, -0.5, -0.5, 0.5, -0.5, 0.5, 0.0]
    f = [1.5, 0.0, 2.0, 0.0, None, None, -1.0, 0.0]
    # grounded success up, ungrounded success down, grounded failure softened, ungrounded failure harder;
    # no tool call (None) and an invalid score (< 0) untouched; A = 0 counts as A >= 0
    factors = evidence_factors(adv, f, mode="binary")
    np.testing.assert_allclose(factors, [1.2, 0.8, 0.8, 1.2, 1.0, 1.0, 1.0, 0.8])
    out, n = modulate(adv, f, "binary")
    np.testing.assert_allclose(out, [0.6, 0.4, -0.4, -0.6, 0.5, -0.5, 0.5, 0.0])
    assert n == 5


def test_continuous_modulation_clips_the_score_and_floors_the_factor():
    adv = [1.0, -1.0, 1.0, -1.0, -2.0]
    f = [0.5, 0.5, 3.0, 3.0, 1.0]
    np.testing.assert_allclose(evidence_factors(adv, f, mode="continuous"), [1.1, 0.9, 1.2, 0.8, 0.8])
    np.testing.assert_allclose(
        evidence_factors(adv, f, mode="continuous", scale=5.0, floor=0.1), [3.5, 0.1, 6.0, 0.1, 0.1]
    )


def test_modulation_off_changes_nothing():
    out, n = modulate([0.3, -0.2], [1.0, 0.0], "off")
    np.testing.assert_allclose(out, [0.3, -0.2])
    assert n == 0


def test_evidence_scores_only_for_rollouts_with_a_successful_tool_call():
    def traj(tool_log, evidence):
        return Trajectory(
            uid="u",
            sample_id="s",
            task="t",
            policy="p",
            final_info={"tool_log": tool_log, "reward_parts": {"evidence": evidence}},
        )

    trajectories = [
        traj([{"tool": "crop_video", "ok": True}], 1.5),
        traj([{"tool": "crop_video", "ok": False}], 0.0),  # a rejected call is not evidence gathering
        traj([], 0.0),
        traj([{"tool": "get_frame", "ok": True}], 0.0),
    ]
    assert evidence_scores(trajectories) == [1.5, None, None, 0.0]
