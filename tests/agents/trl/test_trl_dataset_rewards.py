"""The prompt dataset and the reward functions (no model)."""

from __future__ import annotations

import pytest

from medscope_gym.agents.trl.chat_template import TURN_TEXT_KEY
from medscope_gym.agents.trl.dataset import dataset_rows
from medscope_gym.agents.trl.environment import clinvideo_environment_factory
from medscope_gym.agents.trl.rewards import REWARD_PARTS, env_reward_funcs


def test_rows_are_the_split_questions_with_an_empty_user_turn(trl_suite):
    rows = dataset_rows(trl_suite, split="train", system_prompt="S")
    train = [s for s in trl_suite if s.split == "train"]
    assert [r["sample_id"] for r in rows] == [s.id for s in train]
    assert rows[0]["prompt"] == [{"role": "system", "content": "S"}, {"role": "user", "content": ""}]
    assert rows[0]["question"] == train[0].question and rows[0]["answer_type"] == train[0].answer_type
    picked = [train[2].id, train[0].id]
    assert [r["sample_id"] for r in dataset_rows(trl_suite, sample_ids=picked)] == picked


def test_build_dataset_is_a_datasets_dataset(trl_suite):
    pytest.importorskip("datasets", reason="the TRL adapter needs the [trl] extra")
    from medscope_gym.agents.trl.dataset import build_dataset

    ds = build_dataset(trl_suite, split="train")
    assert len(ds) == sum(s.split == "train" for s in trl_suite)
    assert set(ds.column_names) == {"prompt", "sample_id", "question", "task", "answer_type"}


def test_reward_functions_return_the_env_parts_and_log_diagnostics(trl_suite):
    funcs, weights = env_reward_funcs()
    assert [f.__name__ for f in funcs] == [f"medscope_{p}" for p in REWARD_PARTS]
    assert weights == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    make = clinvideo_environment_factory(trl_suite, modality="text")
    sample = next(s for s in trl_suite if s.split == "train" and s.trajectory)
    envs, completions = [make(), make()], []
    for env, answer in zip(envs, (sample.answer, "wrong")):
        env.reset(sample_id=sample.id)
        text = f"<think>t</think><answer>{answer}</answer>"
        completions.append([{"role": "assistant", "content": text, TURN_TEXT_KEY: text}])
    logged = {}
    values = {
        f.__name__: f(
            prompts=[[], []], completions=completions, environments=envs, log_metric=logged.__setitem__
        )
        for f in funcs
    }
    for part in REWARD_PARTS:
        assert values[f"medscope_{part}"] == [env.last_result.reward_parts[part] for env in envs]
    assert values["medscope_format"] == [1.0, 1.0] and values["medscope_accuracy"][1] == 0.0
    assert logged["medscope/no_answer"] == 0.0 and logged["medscope/live_replay_mismatch"] == 0.0
    with pytest.raises(ValueError, match="environment_factory"):
        funcs[0](completions=completions)
    with pytest.raises(ValueError, match="subset"):
        env_reward_funcs(["bonus"])
