"""The uniform-frames baseline's scripted turn: a whole-video crop, worded as the reference's close crop."""

from __future__ import annotations

import pytest

from medscope_gym.agents.recipe.uniform import UNIFORM_LOOK, uniform_turn
from medscope_gym.agents.scripted import CLOSE_LOOK
from medscope_gym.protocol import parse_turn


def test_uniform_turn_is_a_well_formed_whole_video_close_crop():
    parsed = parse_turn(uniform_turn(314.96))
    assert parsed.format_ok and parsed.kind == "tool_call"
    assert parsed.tool_call.name == "crop_video"
    assert parsed.tool_call.arguments == {"start_time": 0.0, "end_time": 315.0}
    # the reference's close-crop sentence, so a model trained on it answers next
    assert parsed.think.startswith(UNIFORM_LOOK)
    assert f"{CLOSE_LOOK}0.0-315.0 s" in parsed.think


def test_uniform_then_model_opens_with_the_scripted_crop_and_then_lets_the_model_play(tiny_policy, suite):
    pytest.importorskip("torch")
    from medscope_gym.agents.recipe.uniform import UniformThenModel
    from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    sample = next(s for s in suite if s.split in ("val", "test"))
    envs = make_vector_env(lambda: ClinVideoEnv(suite, max_tool_calls=1), 1)
    try:
        (trajectory,) = rollout(UniformThenModel(tiny_policy), envs, sample_requests([sample.id]))
    finally:
        envs.close()
    first = trajectory.turns[0]
    assert first.action_text == uniform_turn(sample.duration)
    log = trajectory.final_info["tool_log"]
    assert log[0]["name"] == "crop_video" and log[0]["ok"]
    assert log[0]["interval"] == pytest.approx([0.0, round(sample.duration, 1)], abs=0.06)
    # every later turn is the model's own (the budget allows no second tool call)
    assert len(trajectory.turns) >= 2
    assert all(t.action_text != first.action_text for t in trajectory.turns[1:])
