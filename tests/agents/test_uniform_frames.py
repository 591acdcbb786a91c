"""The uniform-frames baseline: scripted crops whose frames interleave evenly, the reference a model
learns to answer from them with, and the baseline policy that scripts the crops, then lets the model
answer."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from medscope_gym.agents.scripted import CROP_LISTING, SearchStyle, option_text
from medscope_gym.agents.uniform_frames import SPREAD_LOOK, UniformReference, interleaved_crops
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.protocol import parse_turn
from medscope_gym.suite import Suite
from medscope_gym.synthetic import testbed
from medscope_gym.tools import ToolConfig, sample_times

_PLAN = testbed.TestbedConfig(2, 60, 80, 5, templates=testbed.MAIN_TEMPLATES, per_video=1, splits=(0, 0, 1))


@pytest.fixture(scope="module")
def testbed_suite(tmp_path_factory):
    return Suite.load(testbed.build_testbed_suite(tmp_path_factory.mktemp("uniform") / "suite", _PLAN))


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


def _play(suite: Suite, reference: UniformReference, per_crop: int, calls: int):
    """Every test question played by ``reference`` on an env that caps crops as the SFT trainer does."""
    tools = ToolConfig.from_any(suite.tool_settings())
    env = ClinVideoEnv(
        suite, tools=dataclasses.replace(tools, crop_max_frames=per_crop), max_tool_calls=calls
    )
    played = []
    for sample in (s for s in suite if s.split == "test"):
        obs, info = env.reset(options={"sample_id": sample.id})
        reference.begin(0, obs, info, sample)
        turns, shown = [], []
        while True:
            action = reference.act([0], [obs], [info])[0]
            turns.append((action, reference.imitate_last(0)))
            obs, _, terminated, truncated, info = env.step(action)
            if not terminated and not truncated:
                shown.extend(float(t) for t in np.asarray(obs["video_times"]).reshape(-1))
            if terminated or truncated:
                break
        played.append((sample, turns, sorted(set(shown)), info))
    return played


@pytest.mark.parametrize("crops", [1, 2])
def test_uniform_reference_lists_the_spread_frames_and_answers_right(testbed_suite, crops):
    per_crop = 6
    played = _play(testbed_suite, UniformReference(crops, per_crop, decimals=1), per_crop, crops)
    assert played
    for sample, turns, shown, info in played:
        *looks, (answer, imitated) = turns
        assert len(looks) == crops and all(not imitate for _, imitate in looks)  # scripted, not learned
        assert imitated
        assert SPREAD_LOOK in looks[0][0]
        assert len(shown) == crops * per_crop  # the crops interleave: no frame twice
        step = sample.duration / (crops * per_crop - 1)
        assert np.allclose(np.diff(shown), step, atol=2 / sample.fps)  # even, to the frame grid
        assert info["reward_parts"]["accuracy"] == 1.0 and info["format"]["ok"]
        think = parse_turn(answer).think
        listing = think[len(CROP_LISTING) :].rstrip(".").split("; ")
        assert [float(item.split(" ", 1)[0]) for item in listing] == pytest.approx(shown, abs=0.05)
        for item, t in zip(listing, shown):  # each frame: the symbol on screen at its time, else "no"
            caption = sample.caption_at(t)
            expected = "no" if caption in testbed.SYMBOL_FREE_CAPTIONS else caption
            assert item.split(" ", 1)[1] == expected


def test_uniform_reference_answers_in_the_search_style(testbed_suite):
    style = SearchStyle(choice_text=True, mark_after=True)
    played = _play(testbed_suite, UniformReference(1, 12, decimals=1, style=style), 12, 1)
    choices = [(sample, turns) for sample, turns, _, _ in played if sample.answer_type == "choice"]
    assert choices
    for sample, turns in choices:
        assert parse_turn(turns[-1][0]).answer == option_text(sample)  # the option's text, not its letter
    marked = [turns[-1][0] for _, turns, _, _ in played if ", first " in turns[-1][0]]
    shows_symbol = [t for _, t, shown, _ in played if "a " in parse_turn(t[-1][0]).think.split(": ", 1)[1]]
    assert len(marked) == len(shows_symbol) > 0  # mark_after marks a listing exactly when a frame shows one


def test_uniform_reference_needs_the_sample_and_valid_counts(testbed_suite):
    with pytest.raises(ValueError, match="per_crop"):
        UniformReference(1, 0)
    obs, info = ClinVideoEnv(testbed_suite).reset(seed=0)
    with pytest.raises(ValueError, match="sample"):
        UniformReference().begin(0, obs, info, None)


def test_sft_builds_uniform_reference_data_with_only_the_answer_as_target(tiny_dir, testbed_suite):
    from medscope_gym.agents.sft.trainer import build_reference_data
    from medscope_gym.agents.vlm.policy import VLMPolicyConfig

    policy = VLMPolicyConfig.load(tiny_dir)
    policy.frames.max_crop_frames = 5

    def build(per_crop: int):
        return build_reference_data(
            str(tiny_dir), str(testbed_suite.root), "test", policy, limit=1, num_envs=1, reference="uniform",
            decimals=1, uniform=(1, per_crop),
        )  # fmt: skip

    (traj,) = build(5)
    assert [t.imitate for t in traj.turns] == [False, True]
    assert len(traj.final_info["tool_log"][0]["timestamps"]) == 5
    assert traj.reward_parts["accuracy"] == 1.0
    loss = traj.loss_mask()
    assert sum(loss) == len(traj.turns[1].action_ids)  # only the listing and the answer are learned
    with pytest.raises(ValueError, match="max_crop_frames"):
        build(6)
