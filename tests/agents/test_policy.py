"""The Policy interface declares its optional capabilities; the rollout engine asks it, never probes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
from medscope_gym.envs.clinvideo import ClinVideoEnv


class AnswerA(Policy):
    """A text-only policy: it implements ``act`` and nothing else."""

    name = "answer_a"

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        return ["<think>I guess.</think><answer>A</answer>" for _ in slots]


class ClaimsTurns(AnswerA):
    """Declares turn records but does not provide them: a clear error, not a silent text fallback."""

    records_turns = True


def _play(policy: Policy, suite, n: int = 2):
    ids = [s.id for s in suite if s.split == "test"][:n]
    envs = make_vector_env(lambda: ClinVideoEnv(suite), 1)
    try:
        return rollout(policy, envs, sample_requests(ids, seed=0))
    finally:
        envs.close()


def test_defaults_of_a_text_only_policy():
    policy = AnswerA()
    assert (policy.label, policy.records_turns, policy.uses_ground_truth) == ("answer_a", False, False)
    assert policy.sampling_settings() is None and policy.usage() is None
    assert policy.imitate_last(0) is True
    with pytest.raises(NotImplementedError, match="does not record turns"):
        policy.take_turns(0)


def test_a_text_only_policy_plays_through_the_engine(suite):
    trajs = _play(AnswerA(), suite)
    assert [t.policy for t in trajs] == ["answer_a", "answer_a"]
    assert all(t.sampling is None for t in trajs)
    assert all(
        [turn.action_text for turn in t.turns] == ["<think>I guess.</think><answer>A</answer>"] for t in trajs
    )
    assert all(turn.action_ids == [] and turn.finish == "text" for t in trajs for turn in t.turns)


def test_a_declared_capability_is_used_not_probed(suite):
    with pytest.raises(NotImplementedError, match="ClaimsTurns does not record turns"):
        _play(ClaimsTurns(), suite, n=1)
