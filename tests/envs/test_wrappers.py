"""The env inside the standard episode wrappers: Gymnasium's RecordEpisodeStatistics and TimeLimit,
SB3's Monitor, and Gymnasium's vector envs (autoreset mode NEXT_STEP).

Those wrappers own ``info["episode"]``; the env keeps its own summary in ``info["episode_summary"]``,
and both must survive side by side.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit

import medscope_gym  # noqa: F401 - registers the ids
from medscope_gym.protocol import format_answer, format_tool_call

Monitor = pytest.importorskip("stable_baselines3.common.monitor", reason="needs the [sb3] extra").Monitor

ENV_ID = "MedScope/SynthSurg-v0"
ANSWER = format_answer("A", think="done")
LOOK = format_tool_call("get_frame", {"timestamp": 1.0}, think="zoom")


def _check_final(info, reward, length):
    assert info["episode"]["r"] == pytest.approx(reward) and info["episode"]["l"] == length
    assert info["episode_summary"]["turns"] == length
    assert info["reward_parts"]["total"] == pytest.approx(reward)


# RecordEpisodeStatistics and Monitor both write info["episode"], so each is used on its own.
@pytest.mark.parametrize(
    "wrap",
    [
        lambda env: RecordEpisodeStatistics(env),
        lambda env: Monitor(env),
        lambda env: RecordEpisodeStatistics(TimeLimit(env, max_episode_steps=50)),
        lambda env: Monitor(TimeLimit(env, max_episode_steps=50)),
    ],
    ids=["RecordEpisodeStatistics", "Monitor", "RES(TimeLimit)", "Monitor(TimeLimit)"],
)
def test_single_env_in_episode_wrappers(wrap):
    env = wrap(gym.make(ENV_ID))
    for seed in (0, 1):  # two episodes: the wrappers reset their counters in between
        env.reset(seed=seed)
        *_, info = env.step(LOOK)
        assert "episode" not in info
        _, reward, term, trunc, info = env.step(ANSWER)
        assert term and not trunc
        _check_final(info, reward, 2)
    env.close()


@pytest.mark.parametrize("stats", [RecordEpisodeStatistics, Monitor], ids=["RES", "Monitor"])
def test_time_limit_truncates_inside_the_statistics_wrappers(stats):
    env = stats(TimeLimit(gym.make(ENV_ID), max_episode_steps=2))
    env.reset(seed=0)
    env.step(LOOK)
    _, reward, term, trunc, info = env.step(LOOK)
    assert trunc and not term and info["episode"]["l"] == 2
    assert "episode_summary" not in info  # the time limit, not the env, ended it: no final summary
    env.close()


def _make():
    return TimeLimit(gym.make(ENV_ID), max_episode_steps=50)


def _make_monitored():
    return Monitor(_make())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_vector_envs_in_record_episode_statistics(kind):
    from gymnasium.wrappers.vector import RecordEpisodeStatistics as VectorRecordEpisodeStatistics

    fns = [_make] * 3
    vec = (
        gym.vector.SyncVectorEnv(fns)
        if kind == "sync"
        else gym.vector.AsyncVectorEnv(fns, shared_memory=False)
    )
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    vec = VectorRecordEpisodeStatistics(vec)
    vec.reset(seed=0)
    _, _, term, _, infos = vec.step([LOOK] * 3)
    assert not term.any() and "episode" not in infos
    _, reward, term, trunc, infos = vec.step([ANSWER, LOOK, ANSWER])
    assert term.tolist() == [True, False, True] and not trunc.any()
    assert infos["_episode"].tolist() == [True, False, True]
    np.testing.assert_allclose(infos["episode"]["r"][[0, 2]], reward[[0, 2]])
    assert infos["episode"]["l"][[0, 2]].tolist() == [2, 2]
    assert infos["_episode_summary"].tolist() == [True, False, True]
    assert infos["episode_summary"]["turns"][[0, 2]].tolist() == [2, 2]
    _, reward, term, _, infos = vec.step(["x", ANSWER, "x"])  # copies 0 and 2 autoreset (NEXT_STEP)
    assert term.tolist() == [False, True, False] and reward[[0, 2]].tolist() == [0.0, 0.0]
    assert infos["_episode"].tolist() == [False, True, False] and infos["episode"]["l"][1] == 3
    vec.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_vector_envs_of_monitored_copies(kind):
    fns = [_make_monitored] * 2
    vec = (
        gym.vector.SyncVectorEnv(fns)
        if kind == "sync"
        else gym.vector.AsyncVectorEnv(fns, shared_memory=False)
    )
    vec.reset(seed=0)
    _, reward, term, _, infos = vec.step([ANSWER, LOOK])
    assert term.tolist() == [True, False]
    assert infos["_episode"].tolist() == [True, False] and infos["episode"]["r"][0] == pytest.approx(
        reward[0]
    )
    assert infos["_episode_summary"].tolist() == [True, False] and infos["episode_summary"]["turns"][0] == 1
    vec.close()
