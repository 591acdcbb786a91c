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


def test_close_from_reaches_stage_one_its_rehearsal_and_stage_two():
    """One setting says where every close crop starts: Stage I's examples, their rehearsal (laid out
    as Stage I's) and the search reference Stage II imitates."""
    from medscope_gym.agents.recipe.runner import _perception_config, _sft_defaults
    from medscope_gym.agents.sft.config import SFTConfig

    cfg = RecipeConfig(close_from="first", frames={"crops_as_frames": True})
    assert _perception_config(cfg).close_from == "first"
    assert SFTConfig.from_dict({**_sft_defaults(cfg), "model": "m", "suite": "s", "out": "o"}).close_from == "first"
    assert _perception_config(RecipeConfig()).close_from == "before"
    with pytest.raises(ConfigError, match="close_from"):
        RecipeConfig(close_from="after")
    with pytest.raises(ConfigError, match="close_from"):
        SFTConfig(model="m", suite="s", out="o", close_from="after")
