"""RecipeConfig: validation and the lengths of Stage I's videos."""

from __future__ import annotations

import pytest

from medscope_gym.agents.recipe import RecipeConfig
from medscope_gym.errors import ConfigError


def test_stage_one_spans_the_training_and_held_out_lengths_by_default():
    cfg = RecipeConfig(train_duration=(90, 240), heldout_duration=(240, 360))
    assert cfg.perception_duration is None
    assert cfg.stage_one_duration == (90.0, 360.0)
    # held-out videos shorter than the training ones are covered too
    shorter = RecipeConfig(train_duration=(90, 240), heldout_duration=(30, 60))
    assert shorter.stage_one_duration == (30.0, 240.0)


def test_perception_duration_overrides_and_round_trips():
    cfg = RecipeConfig.from_dict({"perception_duration": [60, 500]}, source="test")
    assert cfg.stage_one_duration == (60.0, 500.0)
    assert RecipeConfig.from_dict(cfg.to_dict(), source="again").stage_one_duration == (60.0, 500.0)


@pytest.mark.parametrize("bad", [(200.0, 100.0), (0.0, 100.0)])
def test_bad_perception_duration_is_refused(bad):
    with pytest.raises(ConfigError, match="perception_duration"):
        RecipeConfig(perception_duration=bad)
