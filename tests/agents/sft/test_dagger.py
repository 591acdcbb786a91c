"""On-policy recovery data: the model opens episodes, the oracle finishes, only the oracle is imitated."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def on_policy(tiny_dir):
    from medscope_gym.agents.sft.trainer import build_reference_data
    from medscope_gym.agents.vlm.policy import VLMPolicyConfig

    config = VLMPolicyConfig.load(tiny_dir)
    config.sampling.max_new_tokens = 16  # the untrained model writes noise: keep its turns short
    return build_reference_data(
        str(tiny_dir),
        "builtin:synthsurg-small",
        "train",
        config,
        limit=4,
        num_envs=4,
        seed=3,
        model_turns=2,
        first_repeat=1,
    )


def test_model_opens_and_oracle_finishes(on_policy, tiny_dir):
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(tiny_dir).tokenizer
    assert on_policy, "every episode was dropped"
    openings = set()
    for traj in on_policy:
        flags = [t.imitate for t in traj.turns]
        k = flags.index(True)
        openings.add(k)
        assert 1 <= k <= 2 and all(flags[k:]), flags
        for turn in traj.turns[:k]:  # the model's own sampled tokens, with their behaviour log-probs
            assert turn.action_logprobs is not None and len(turn.action_logprobs) == len(turn.action_ids)
            assert tok.decode(turn.action_ids, skip_special_tokens=False) == turn.action_text
        for turn in traj.turns[k:]:  # reference text, tokenised as the model would produce it
            assert turn.action_logprobs is None and turn.finish == "stop"
        # the oracle's turns end the episode with the right answer
        assert traj.terminated and traj.reward_parts["accuracy"] == 1.0
        # the loss covers exactly the oracle's tokens
        loss = traj.loss_mask()
        imitated = [t for turn in traj.turns[k:] for t in turn.action_ids]
        assert [t for t, m in zip(traj.input_ids(), loss) if m] == imitated
        assert sum(loss) < sum(traj.action_mask())


def test_on_policy_episodes_use_their_own_seeds(on_policy, tiny_dir):
    from medscope_gym.agents.sft.trainer import build_reference_data
    from medscope_gym.agents.vlm.policy import VLMPolicyConfig

    plain = build_reference_data(
        str(tiny_dir), "builtin:synthsurg-small", "train", VLMPolicyConfig.load(tiny_dir), limit=4, seed=3
    )
    assert {t.seed for t in on_policy}.isdisjoint({t.seed for t in plain})


def test_model_then_reference_rejects_no_model_turns(tiny_policy):
    from medscope_gym.agents.scripted import OraclePolicy
    from medscope_gym.agents.sft.dagger import ModelThenReference

    with pytest.raises(ValueError, match="max_model_turns"):
        ModelThenReference(tiny_policy, OraclePolicy(), max_model_turns=0)
