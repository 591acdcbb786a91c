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


def test_a_restated_question_reaches_stage_one_and_its_rehearsal(tiny_dir):
    """``frames: {restate_question: true}`` lays Stage I's crop turns out as the policy is shown them,
    and the rehearsal beside Stage II the same way."""
    from medscope_gym.agents.recipe.runner import _rehearsal, perception_config

    cfg = RecipeConfig(
        frames={"crops_as_frames": True, "restate_question": True}, rehearsal={"skills": ["search"]}
    )
    assert perception_config(cfg).restate_question and not perception_config(RecipeConfig()).restate_question
    rehearsal = _rehearsal(cfg, tiny_dir)
    assert rehearsal.restate and all("Question:" in ex.given for ex in rehearsal.batch())


def test_the_search_style_reaches_stage_one_and_stage_two():
    """One setting says how the search reference writes its close crop and answer: Stage I's examples
    (and their rehearsal, laid out as Stage I's) and the reference Stage II imitates."""
    from medscope_gym.agents.recipe.runner import _sft_defaults, perception_config
    from medscope_gym.agents.sft.config import SFTConfig

    style = {"close_from": "first", "choice_text": True}
    cfg = RecipeConfig(search=style, frames={"crops_as_frames": True})
    assert perception_config(cfg).search == style
    assert SFTConfig.from_dict({**_sft_defaults(cfg), "model": "m", "suite": "s", "out": "o"}).search == style
    assert perception_config(RecipeConfig()).search == {}
    with pytest.raises(ConfigError, match="RecipeConfig.search.+close_from"):
        RecipeConfig(search={"close_from": "after"})
    with pytest.raises(ConfigError, match="SFTConfig.search.+list_close"):
        SFTConfig(model="m", suite="s", out="o", search={"list_close": "yes"})


def test_the_uniform_model_takes_sft_fields_but_not_those_the_recipe_sets():
    assert RecipeConfig(uniform={"max_steps": 10}).uniform == {"max_steps": 10}
    with pytest.raises(ConfigError, match="uniform: reference, uniform_frames are set by the recipe"):
        RecipeConfig(uniform={"reference": "oracle", "uniform_frames": 8})


def test_sft_knows_the_uniform_reference_and_checks_its_counts():
    from medscope_gym.agents.sft.config import SFTConfig

    cfg = SFTConfig(model="m", out="o", reference="uniform", uniform_crops=2, uniform_frames=12)
    assert (cfg.uniform_crops, cfg.uniform_frames) == (2, 12)
    with pytest.raises(ConfigError, match="uniform_frames"):
        SFTConfig(model="m", out="o", reference="uniform", uniform_frames=0)
    with pytest.raises(ConfigError, match="reference must be one of"):
        SFTConfig(model="m", out="o", reference="uniformly")


@pytest.mark.parametrize("name", ["recipe_tiny.yaml", "recipe_micro.yaml"])
def test_shipped_recipe_configs_load_with_valid_stage_one_settings(name):
    from pathlib import Path

    from medscope_gym.agents.recipe.runner import perception_config, stage_three_config
    from medscope_gym.config import load_config

    cfg = load_config(RecipeConfig, Path(__file__).resolve().parents[2] / "configs" / name)
    stage_one = perception_config(cfg)  # validates the perception block (waits, shares, schedule)
    assert stage_one.seed == cfg.seed and stage_one.batch_size >= 1
    if name == "recipe_tiny.yaml":  # the main job's Stage I waits in all three phases
        assert stage_one.reading_first and stage_one.listing_until == {"select": 0.5}
        assert stage_one.copy_until == 0.9 and stage_one.decay_steps == 600
        # the published runs' thread counts: two, and one for Stage III (docs/agents.md, "Testbed recipe")
        suites = {"rl": Path("rl"), "heldout": Path("heldout")}
        assert (cfg.threads, stage_three_config(cfg, Path("vcot"), suites, Path("out")).threads) == (2, 1)


def test_the_events_reach_every_suite_stage_one_and_its_rehearsal(tiny_dir, tmp_path, monkeypatch):
    """``events``: the number of symbols (highlighted intervals) per video is the same in every suite
    the recipe builds, in Stage I's examples and in the rehearsal laid out as Stage I's."""
    import medscope_gym.synthetic.testbed as testbed
    from medscope_gym.agents.recipe.runner import _build_data, _rehearsal, perception_config

    built = {}
    monkeypatch.setattr(testbed, "build_testbed_suite", lambda out, plan: built.update({out.name: plan}))
    cfg = RecipeConfig(events=[2, 2], rehearsal={"skills": ["select"]})
    _build_data(cfg, tmp_path)
    assert sorted(built) == ["heldout", "heldout-reading", "rl", "train"]
    assert {plan.events for plan in built.values()} == {(2, 2)}
    assert perception_config(cfg).events == (2, 2) and perception_config(RecipeConfig()).events == (3, 4)
    assert _rehearsal(cfg, tiny_dir).events == (2, 2)


@pytest.mark.parametrize("bad", [(0, 2), (3, 2), (2,), ("two", "three")])
def test_bad_events_are_refused_by_every_config_that_takes_them(bad):
    from medscope_gym.agents.recipe.perception import PerceptionConfig
    from medscope_gym.synthetic.testbed import TestbedConfig

    for config in (RecipeConfig, PerceptionConfig, TestbedConfig):
        with pytest.raises(ConfigError, match=f"{config.__name__}.events must be"):
            config(events=bad)
    assert TestbedConfig(events=[2, 3]).events == (2, 3)
