"""The uniform-frames baseline: scripted crops whose frames interleave evenly, then the model answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medscope_gym.agents.recipe.uniform import interleaved_crops
from medscope_gym.tools import sample_times


def test_interleaved_crops_spread_one_even_grid_over_the_video():
    assert interleaved_crops(90.0, 1, 16) == [(0.0, 90.0)]
    crops = interleaved_crops(70.0, 2, 4)  # 8 points 10 s apart: 0, 20, 40, 60 and 10, 30, 50, 70
    assert crops == [(0.0, 60.0), (10.0, 70.0)]
    times = np.sort(np.concatenate([sample_times(a, b, 2.0, 4) for a, b in crops]))
    assert len(np.unique(times)) == 8
    assert np.allclose(np.diff(times), 10.0, atol=0.5)  # even to one grid step of the crop rate
    with pytest.raises(ValueError, match="per_crop"):
        interleaved_crops(70.0, 2, 0)


def test_uniform_baseline_scripts_its_crops_then_the_model_turns(tmp_path, tiny_dir, suite):
    from medscope_gym.agents.recipe.runner import uniform_frames_baseline
    from medscope_gym.agents.rollout.trajectory import load_trajectories

    summary = uniform_frames_baseline(
        str(tiny_dir), suite.root, 6, tmp_path / "uniform", crops=2, limit=2, max_new_tokens=24
    )
    saved = load_trajectories(tmp_path / "uniform" / "trajectories", frames=False)
    assert len(saved) == 2 and summary["overall"]["episodes"] == 2
    for episode in saved:
        log = episode.final_info["tool_log"]
        duration = episode.final_info["duration"]
        first, second = log[0], log[1]
        assert first["ok"] and second["ok"]
        assert first["interval"][0] == 0.0 and second["interval"][1] == pytest.approx(duration, abs=0.1)
        assert len(first["timestamps"]) == len(second["timestamps"]) == 3  # the env caps each crop
        assert not set(first["timestamps"]) & set(second["timestamps"])  # interleaved, not repeated
        assert "spread evenly" in episode.turns[0].action_text
        assert "I look closely at" in episode.turns[1].action_text  # where the search model answers
        assert sum(1 for entry in log if entry.get("ok")) == 2  # no further look is allowed
        assert len(episode.turns) >= 3  # the model's own turns follow the scripted ones
    metrics = json.loads((tmp_path / "uniform" / "metrics.json").read_text())
    assert metrics["policy"].startswith("uniform:2x3:")
