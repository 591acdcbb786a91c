"""KV-cache reuse across turns: exact against a full recompute, token-identical to the generate() path."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")


class ScriptedTools(gym.Wrapper):
    """Whatever the (untrained) model says, the env is sent crop, get_frame, crop, its own text, answer.

    The policy's context keeps its own sampled turns; the observations are those of real tool calls,
    so every episode has a preview, video crops and get_frame images across 5 turns.
    """

    def reset(self, **kwargs):
        self.k = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        from medscope_gym.protocol import format_answer, format_tool_call

        duration = self.env.unwrapped.current_sample.duration
        k, self.k = self.k, self.k + 1
        if k == 1:
            action = format_tool_call("get_frame", {"timestamp": round(duration * 0.5, 2)})
        elif k == 3:
            pass  # the model's own (malformed) text: a text-only error observation
        elif k < 4:
            start = duration * (0.1 + 0.2 * k)
            action = format_tool_call(
                "crop_video", {"start_time": round(start, 2), "end_time": round(start + duration * 0.2, 2)}
            )
        else:
            action = format_answer("A")
        return self.env.step(action)


def _policy(tiny_dir, reuse: bool, temperature: float = 0.0, max_new_tokens: int = 12):
    from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig

    config = VLMPolicyConfig.load(tiny_dir)
    config.frames.max_preview_frames, config.frames.max_crop_frames = 8, 4  # a small frame budget
    config.sampling.max_new_tokens = max_new_tokens
    config.sampling.temperature = temperature
    config.seed = 0
    config.reuse_cache = reuse
    return HFVLMPolicy.from_pretrained(tiny_dir, config=config)


def _play(policy, suite, requests, num_envs: int = 2):
    from medscope_gym.agents.rollout.engine import make_vector_env, rollout
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    envs = make_vector_env(lambda: ScriptedTools(ClinVideoEnv(suite, max_turns=5)), num_envs)
    try:
        return rollout(policy, envs, requests)
    finally:
        envs.close()


def _recomputed_logprobs(policy, trajectories):
    """Behaviour and full-recompute log-probs of every action token (one right-padded forward)."""
    from medscope_gym.agents.rollout.batching import trajectory_batch
    from medscope_gym.agents.vlm.sampling import token_logprobs

    batch = trajectory_batch(trajectories, policy.encoder, pad_id=policy.pad_id)
    mask = batch.pop("action_mask")[:, 1:].bool()
    behaviour = batch.pop("behaviour_logprobs")[:, 1:]
    batch.pop("loss_mask")
    with torch.no_grad():
        logits = policy.model(**batch).logits
    temperature = trajectories[0].sampling["temperature"]
    lp = token_logprobs(logits[:, :-1], batch["input_ids"][:, 1:], temperature, policy.suppressed_ids)
    return behaviour[mask], lp[mask]


@pytest.fixture(scope="module")
def greedy_pair(tiny_dir, suite):
    """Greedy rollouts of the same requests with and without reuse (3 episodes on 2 envs, 5 turns)."""
    from medscope_gym.agents.rollout.engine import sample_requests

    ids = [s.id for s in suite if s.split == "test"][:3]
    out = {}
    for reuse in (True, False):
        policy = _policy(tiny_dir, reuse)
        out[reuse] = (policy, _play(policy, suite, sample_requests(ids, seed=5)))
    return out


def test_greedy_rollouts_are_token_identical_with_and_without_reuse(greedy_pair):
    (_, cached), (_, full) = greedy_pair[True], greedy_pair[False]
    assert [len(t.turns) for t in cached] == [5, 5, 5]
    kinds = {(turn.media.video is not None, turn.media.images is not None) for turn in cached[0].turns}
    assert kinds == {(True, False), (False, True), (False, False)}  # preview/crops, frames, text
    for a, b in zip(cached, full):
        assert a.input_ids() == b.input_ids()
        assert [turn.finish for turn in a.turns] == [turn.finish for turn in b.turns]
        assert np.allclose(a.behaviour_logprobs(), b.behaviour_logprobs(), atol=1e-4)


def test_reuse_logprobs_equal_a_full_recompute(greedy_pair):
    policy, cached = greedy_pair[True]
    behaviour, recomputed = _recomputed_logprobs(policy, cached)
    assert behaviour.numel() == sum(len(turn.action_ids) for t in cached for turn in t.turns)
    assert torch.allclose(behaviour, recomputed, atol=1e-4), (behaviour - recomputed).abs().max()


def test_each_turn_feeds_only_the_new_tokens_and_finished_slots_free_their_cache(greedy_pair):
    policy, cached = greedy_pair[True]
    generator = policy.generator
    fed = generator.stats["prefill_tokens"]
    # every token of every episode went through a prefill once, except sampled tokens (fed in decoding)
    prompt = sum(len(turn.prompt_ids) for t in cached for turn in t.turns)
    last_sampled = sum(len(t.turns) for t in cached)  # each turn's last sampled token is fed next turn
    assert fed == prompt + last_sampled - len(cached)
    assert generator.slots == [] and policy._slots == {}


@pytest.fixture(scope="module")
def group_rollout(tiny_dir, suite):
    """One group of 3 sampled rollouts from identical resets (reuse on)."""
    from medscope_gym.agents.rollout.engine import group_requests

    sid = [s.id for s in suite if s.split == "val"][0]
    policy = _policy(tiny_dir, True, temperature=1.0, max_new_tokens=16)
    torch.manual_seed(0)
    return policy, _play(policy, suite, group_requests([sid], group_size=3, seed=1), num_envs=3)


def test_sampled_rollouts_record_exact_logprobs_and_share_the_group_preview(group_rollout):
    policy, trajs = group_rollout
    first = [t.turns[0] for t in trajs]
    # the identical resets are processed once and prefilled once: one chunk object, one prefill row
    assert first[0].vision is first[1].vision is first[2].vision
    assert first[0].prompt_ids == first[2].prompt_ids
    assert policy.generator.stats["shared_rows"] == 2
    assert len({tuple(t.input_ids()) for t in trajs}) == 3  # then each rollout samples its own turns
    behaviour, recomputed = _recomputed_logprobs(policy, trajs)
    assert torch.allclose(behaviour, recomputed, atol=1e-4), (behaviour - recomputed).abs().max()


def test_a_slot_reused_without_release_starts_a_fresh_cache(tiny_dir, suite):
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    policy = _policy(tiny_dir, True, max_new_tokens=4)
    env = ClinVideoEnv(suite, max_turns=5)
    obs, info = env.reset(seed=0)
    policy.begin(0, obs, info)
    text = policy.act([0], [obs], [info])[0]
    obs, *_ = env.step(text)
    policy.act([0], [obs], [info])
    assert policy.generator.cached_tokens(0) > 0
    obs, info = env.reset(seed=1)
    policy.begin(0, obs, info)  # a new episode in the same slot: the old cache is dropped
    assert policy.generator.cached_tokens(0) == 0
    policy.act([0], [obs], [info])
    assert policy.generator.cached_tokens(0) == len(policy._slots[0].token_ids) - 1
    policy.take_turns(0)
    assert policy.generator.slots == []


def test_reuse_cache_is_kept_in_the_policy_config(tmp_path):
    from medscope_gym.agents.vlm.policy import VLMPolicyConfig

    assert VLMPolicyConfig().reuse_cache is True
    VLMPolicyConfig(reuse_cache=False).save(tmp_path)
    assert VLMPolicyConfig.load(tmp_path).reuse_cache is False
    assert VLMPolicyConfig.from_dict({}).reuse_cache is True  # configs saved before the option


def test_sampling_follows_the_generate_processors():
    from medscope_gym.agents.vlm.generation import sample_next
    from medscope_gym.agents.vlm.sampling import SamplingConfig

    logits = torch.tensor([[0.0, 5.0, 4.0, 1.0, 3.0]])
    assert sample_next(logits, SamplingConfig(temperature=0.0), [1]).item() == 2  # suppressed, then argmax
    torch.manual_seed(0)
    draws = {sample_next(logits, SamplingConfig(top_k=2), [1]).item() for _ in range(200)}
    assert draws == {2, 4}
    draws = {sample_next(logits, SamplingConfig(top_p=0.5), []).item() for _ in range(50)}
    assert draws == {1}


def test_the_update_encodes_a_group_preview_once_with_the_same_logprobs_and_gradients(group_rollout):
    from medscope_gym.agents.grpo.trainer import sequence_logprobs
    from medscope_gym.agents.rollout.batching import shared_vision_features, trajectory_batch

    policy, trajs = group_rollout
    model = policy.model
    vision = [[turn.vision for turn in t.turns] for t in trajs]
    inputs = trajectory_batch(trajs, policy.encoder, pad_id=policy.pad_id, vision=vision)
    calls: list[list[int]] = []
    hook = model.model.visual.register_forward_hook(lambda m, args, out: calls[-1].append(args[0].shape[0]))
    results = []
    try:
        for share in (False, True):
            calls.append([])
            model.zero_grad(set_to_none=True)
            batch = shared_vision_features(model, inputs, vision) if share else inputs
            logp, mask, _ = sequence_logprobs(model, batch, 1.0, policy.suppressed_ids)
            (logp * mask).sum().backward()
            grads = [p.grad.clone() for p in model.model.visual.parameters()]
            results.append((logp.detach(), grads))
    finally:
        hook.remove()
        model.zero_grad(set_to_none=True)
    full_pixels, shared_pixels = map(sum, calls)  # patches through the vision tower (videos + images)
    # the scripted env gives the 3 rollouts the same preview, crops and frames: each goes through once
    assert all(t.turns[k].vision is trajs[0].turns[k].vision for t in trajs for k in range(4))
    assert full_pixels == 3 * shared_pixels
    (logp_full, grads_full), (logp_shared, grads_shared) = results
    assert torch.allclose(logp_full, logp_shared, atol=1e-5)
    for a, b in zip(grads_full, grads_shared):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
