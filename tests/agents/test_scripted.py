import gymnasium as gym
import numpy as np
import pytest

import medscope_gym  # noqa: F401 - registers the env ids
from medscope_gym.agents import NoToolsPolicy, OraclePolicy, RandomPolicy, record_from_info, run_episode
from medscope_gym.cli import main
from medscope_gym.metrics import summarise


def _rewards(policy, builtin_suite, env):
    return [run_episode(env, policy, options={"sample_id": s.id}).reward for s in builtin_suite]


@pytest.fixture(scope="module")
def env():
    e = gym.make("MedScope/SynthSurg-v0")
    yield e
    e.close()


@pytest.fixture(scope="module")
def suite(env):
    return env.unwrapped.suite


def test_oracle_reaches_the_maximum_and_baselines_fall_clearly_below(env, suite):
    oracle_rewards = _rewards(OraclePolicy(), suite, env)
    # the maximum is 5 = accuracy 1 + format 1 + crop 2 (IoU 1) + frame 1, on every question
    assert min(oracle_rewards) == 5.0
    oracle = float(np.mean(oracle_rewards))
    no_tools = float(np.mean(_rewards(NoToolsPolicy(seed=0), suite, env)))
    random = float(np.mean(_rewards(RandomPolicy(seed=0), suite, env)))
    assert no_tools < 2.0 and random < 2.0
    assert oracle - max(no_tools, random) > 2.5


def test_oracle_metrics(env, suite):
    records = [
        record_from_info(run_episode(env, OraclePolicy(), options={"sample_id": s.id}).final_info)
        for s in suite
    ]
    summary = summarise(records)
    assert summary["accuracy"] == pytest.approx(1.0) and summary["evidence_mIoU"] == pytest.approx(1.0)
    assert summary["tool_calls"] == 2 and summary["format_rate"] == 1.0


def test_random_policy_is_seeded(env):
    a = run_episode(env, RandomPolicy(seed=5), seed=3)
    b = run_episode(env, RandomPolicy(seed=5), seed=3)
    assert a.actions == b.actions and a.reward == b.reward


def test_no_tools_never_calls_a_tool(env):
    result = run_episode(env, NoToolsPolicy(seed=1), seed=2)
    assert result.final_info["tool_log"] == [] and len(result.actions) == 1 and result.terminated


def test_oracle_requires_the_sample():
    with pytest.raises(ValueError, match="sample"):
        OraclePolicy().begin(0, {}, {"duration": 1.0}, None)


def test_play_command_prints_trajectory_and_reward_parts(capsys):
    assert main(["play", "--policy", "oracle", "--episodes", "2", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== episode") == 2 and "crop_video" in out and "get_frame" in out
    assert "reward 5.00 = accuracy 1.00 + format 1.00 + evidence 3.00 (crop 2.00, frame 1.00)" in out
    assert "oracle" in out.splitlines()[-1]


def test_play_flags_come_from_play_config_and_take_any_reward_spec(tmp_path, capsys):
    reward = '{"preset": "paper", "w_ev": 0.5}'
    assert main(["play", "--policy", "oracle", "--episodes", "1", "--reward", reward]) == 0
    assert "reward 3.50 = accuracy 1.00 + format 1.00 + evidence 3.00" in capsys.readouterr().out
    config = tmp_path / "play.yaml"
    config.write_text("policy: [oracle, no_tools]\nepisodes: 1\nreward: no_evidence\nquiet: true\n")
    assert main(["play", "--config", str(config), "--policy", "oracle"]) == 0
    out = capsys.readouterr().out
    assert "=== episode" not in out and "no_tools" not in out and "oracle" in out
    assert main(["play", "--policy", "oracle,expert"]) == 2
    assert "unknown policy expert" in capsys.readouterr().err
    assert main(["play", "--reward", "generous"]) == 2
    assert "unknown reward preset 'generous'" in capsys.readouterr().err


def test_play_reports_clear_error_for_bad_suite(tmp_path, capsys):
    code = main(["play", "--env", "MedScope/ClinVideo-v0", "--suite", str(tmp_path / "missing")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_oracle_with_one_decimal_writes_one_number_format_and_still_covers_the_evidence(env, suite):
    import re

    for s in suite:
        result = run_episode(env, OraclePolicy(decimals=1), options={"sample_id": s.id})
        numbers = [n for a in result.actions for n in re.findall(r"\d+\.\d+", a)]
        assert numbers and all(len(n.split(".")[1]) == 1 for n in numbers), result.actions
        info = result.final_info
        crop = info["episode_summary"]["inspected_interval"]
        for start, end in info["ground_truth"]["evidence"][:1]:
            if end > start:  # a window: the widened crop still holds all of it
                assert crop[0] <= start and end <= crop[1] or end > s.duration - 0.1
        # answers rounded to 0.1 s keep an interval IoU of at least 0.95
        assert info["reward_parts"]["accuracy"] >= 0.95 and info["reward_parts"]["crop"] >= 1.5
        frame_t = info["tool_log"][-1]["arguments"]["timestamp"]
        assert crop[0] <= frame_t <= crop[1]


def test_oracle_picks_up_an_episode_someone_else_started(env, suite):
    """The next step follows the env's tool log: a failed call is retried, a successful one not repeated."""
    from medscope_gym.protocol import format_tool_call, parse_turn

    sample = suite[0]
    obs, info = env.reset(options={"sample_id": sample.id})
    oracle = OraclePolicy()
    oracle.begin(0, obs, info, env.unwrapped.current_sample)
    # a failed crop (end before start) by another player: the oracle still crops
    bad = format_tool_call("crop_video", {"start_time": 9.0, "end_time": 3.0})
    obs, _, _, _, info = env.step(bad)
    assert obs["text"].startswith("Error:")
    assert parse_turn(oracle.act([0], [obs], [info])[0]).tool_call.name == "crop_video"
    # a successful crop of the wrong place by another player: the oracle goes on to get_frame
    obs, _, _, _, info = env.step(format_tool_call("crop_video", {"start_time": 0.0, "end_time": 2.0}))
    assert not obs["text"].startswith("Error:")
    step = oracle.act([0], [obs], [info])[0]
    assert parse_turn(step).tool_call.name == "get_frame"
    obs, _, _, _, info = env.step(step)
    final = oracle.act([0], [obs], [info])[0]
    assert parse_turn(final).answer is not None
    *_, terminated, _, info = env.step(final)
    assert terminated and info["reward_parts"]["accuracy"] == 1.0
