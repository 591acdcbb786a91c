"""``medscope_gym.agents.evaluate``'s summaries of finished episodes: the split by video length."""

from __future__ import annotations

import pytest

from medscope_gym.agents.evaluate import summarise_by_length
from medscope_gym.agents.rollout.trajectory import Trajectory


def _episode(sample: str, duration: float | None, right: bool, crop: list[float] | None) -> Trajectory:
    """A finished choice episode as the env reports it: answered right or not, its last crop ``crop``
    against the evidence window [10, 20]."""
    info = {
        "sample_id": sample,
        "task": "symbol_recognition",
        "reward_parts": {"accuracy": float(right), "total": float(right)},
        "ground_truth": {"evidence": [[10.0, 20.0]]},
        "format": {"ok": True},
        "episode_summary": {
            "sample_id": sample,
            "task": "symbol_recognition",
            "predicted_interval": None,
            "inspected_interval": crop,
            "tool_calls": int(crop is not None),
            "frames_seen": 16,
            "turns": 2,
        },
    }
    if duration is not None:
        info["duration"] = duration
    return Trajectory(
        uid=f"u-{sample}", sample_id=sample, task="symbol_recognition", policy="p", final_info=info
    )


def test_halves_split_at_the_median_video_and_score_each_half_alone():
    # videos of 100, 200, 300 and 400 s; the 100 s one asked twice: the median of the distinct
    # lengths (250 s) splits them two and two, however many questions each video has
    episodes = [
        _episode("a-1", 100.0, True, [10.0, 20.0]),
        _episode("a-2", 100.0, True, [10.0, 20.0]),
        _episode("b-1", 200.0, False, [12.0, 20.0]),
        _episode("c-1", 300.0, True, None),
        _episode("d-1", 400.0, False, [40.0, 50.0]),
    ]
    split = summarise_by_length(episodes)
    assert split["edge_s"] == 250.0
    shorter, longer = split["shorter"], split["longer"]
    assert (shorter["episodes"], longer["episodes"]) == (3, 2)
    assert shorter["accuracy"] == pytest.approx(2 / 3) and longer["accuracy"] == 0.5
    assert shorter["evidence_R@0.5"] == 1.0 and longer["evidence_R@0.5"] == 0.0
    assert shorter["well_formed"] == 0.0  # no turns recorded: none is well formed


def test_a_video_at_the_median_is_in_the_shorter_half_and_one_length_leaves_no_longer_half():
    odd = [_episode(s, d, True, None) for s, d in (("a", 100.0), ("b", 200.0), ("c", 300.0))]
    split = summarise_by_length(odd)
    assert split["edge_s"] == 200.0 and split["shorter"]["episodes"] == 2 and split["longer"]["episodes"] == 1
    same = summarise_by_length([_episode(s, 120.0, True, None) for s in ("a", "b")])
    assert set(same) == {"edge_s", "shorter"}


def test_an_episode_without_its_video_length_is_named():
    with pytest.raises(ValueError, match="b-1"):
        summarise_by_length([_episode("a-1", 100.0, True, None), _episode("b-1", None, True, None)])
    with pytest.raises(ValueError, match="no episodes"):
        summarise_by_length([])
