"""Rollout engine: exact sampled tokens, behaviour log-probs, groups, storage."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def captured_rollout(suite, tiny_policy):
    """Three episodes of the untrained tiny policy on two envs, with every generate() output captured.

    The policy runs its full-context ``generate`` path here (``reuse_cache=False``); the KV-cache path is
    checked against it and against a full recompute in tests/agents/vlm/test_cache_reuse.py.
    """
    from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    model = tiny_policy.model
    cached, tiny_policy.generator = tiny_policy.generator, tiny_policy.full_context
    calls = []
    original = model.generate

    def spy(**kwargs):
        out = original(**kwargs)
        calls.append((kwargs["input_ids"].shape[1], out.sequences.clone()))
        return out

    model.generate = spy
    sent: list[list[str]] = []

    def env_fn():
        env = ClinVideoEnv(suite, max_turns=2)
        sent.append([])
        log = sent[-1]
        step = env.step

        def recording_step(action):
            log.append(action)
            return step(action)

        env.step = recording_step
        return env

    ids = [s.id for s in suite if s.split == "test"][:3]
    envs = make_vector_env(env_fn, 2)
    try:
        trajs = rollout(tiny_policy, envs, sample_requests(ids, seed=5))
    finally:
        envs.close()
        del model.generate
        tiny_policy.generator = cached
    return ids, trajs, calls, sent


def test_trajectories_follow_the_requests(captured_rollout):
    ids, trajs, _, _ = captured_rollout
    assert [t.sample_id for t in trajs] == ids
    assert all(t.terminated or t.truncated for t in trajs)
    assert all(1 <= len(t.turns) <= 2 for t in trajs)
    assert all(t.sampling["temperature"] == 1.0 for t in trajs)


def test_rollout_token_ids_equal_what_the_model_sampled(captured_rollout, tiny_policy):
    _, trajs, calls, sent = captured_rollout
    stop = tiny_policy.stop_ids
    sampled_rows = []
    for width, sequences in calls:
        for row in sequences[:, width:].tolist():
            cut = next((k + 1 for k, t in enumerate(row) if t in stop), len(row))
            sampled_rows.append(row[:cut])
    recorded = [turn.action_ids for t in trajs for turn in t.turns]
    assert len(recorded) == len(sampled_rows)
    for ids in recorded:  # every recorded turn is one sampled row, token for token
        assert ids in sampled_rows
    tok = tiny_policy.processor.tokenizer
    for t in trajs:
        for turn in t.turns:
            assert turn.action_text == tok.decode(turn.action_ids, skip_special_tokens=False)
            assert (turn.finish == "stop") == (turn.action_ids[-1] in stop)
    # and the env received exactly those texts (the filler of idle slots aside)
    texts_sent = {a for log in sent for a in log}
    assert {turn.action_text for t in trajs for turn in t.turns} <= texts_sent


def test_sequence_is_the_context_the_model_was_fed(captured_rollout, tiny_policy):
    """Each generate() input, unpadded, is the trajectory's sequence up to that turn's prompt chunk."""
    _, trajs, calls, _ = captured_rollout
    pad = tiny_policy.pad_id
    prefixes = []
    for t in trajs:
        seq: list[int] = []
        for turn in t.turns:
            seq += turn.prompt_ids
            prefixes.append(list(seq))
            seq += turn.action_ids
    fed = []
    for width, sequences in calls:
        for row in sequences[:, :width].tolist():
            start = next(k for k, v in enumerate(row) if v != pad)
            fed.append(row[start:])
    assert sorted(map(tuple, fed)) == sorted(map(tuple, prefixes))


def test_behaviour_logprobs_match_a_teacher_forced_forward(tmp_path, captured_rollout, tiny_policy):
    """Re-scoring the trajectories from disk (tokens + re-processed frames, one right-padded batch)
    reproduces the log-probs recorded while sampling: what a GA-GRPO learner relies on."""
    from medscope_gym.agents.rollout.batching import trajectory_batch
    from medscope_gym.agents.rollout.trajectory import load_trajectories, save_trajectories
    from medscope_gym.agents.vlm.sampling import token_logprobs

    _, trajs, _, _ = captured_rollout
    save_trajectories(tmp_path / "t", trajs)
    loaded = load_trajectories(tmp_path / "t")
    batch = trajectory_batch(loaded, tiny_policy.encoder, pad_id=tiny_policy.pad_id)
    mask = batch.pop("action_mask")[:, 1:].bool()
    behaviour = batch.pop("behaviour_logprobs")[:, 1:]
    with torch.no_grad():
        logits = tiny_policy.model(**batch).logits
    lp = token_logprobs(
        logits[:, :-1],
        batch["input_ids"][:, 1:],
        trajs[0].sampling["temperature"],
        tiny_policy.suppressed_ids,
    )
    assert int(mask.sum()) == sum(len(turn.action_ids) for t in trajs for turn in t.turns)
    assert torch.allclose(lp[mask], behaviour[mask], atol=2e-4), (lp[mask] - behaviour[mask]).abs().max()


def test_group_mode_gives_identical_resets(suite, tiny_policy):
    from medscope_gym.agents.rollout.engine import group_requests, make_vector_env, rollout
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    sid = [s.id for s in suite if s.split == "val"][0]
    envs = make_vector_env(lambda: ClinVideoEnv(suite, max_turns=1), 3)
    try:
        trajs = rollout(tiny_policy, envs, group_requests([sid], group_size=3, seed=1))
    finally:
        envs.close()
    assert [t.group for t in trajs] == [0, 0, 0] and [t.group_index for t in trajs] == [0, 1, 2]
    assert all(t.sample_id == sid for t in trajs)
    first = [t.turns[0] for t in trajs]
    assert first[0].prompt_ids == first[1].prompt_ids == first[2].prompt_ids
    assert np.array_equal(first[0].media.video, first[2].media.video)


def test_trajectories_survive_save_and_load(tmp_path, captured_rollout):
    from medscope_gym.agents.rollout.trajectory import load_trajectories, save_trajectories

    _, trajs, _, _ = captured_rollout
    save_trajectories(tmp_path / "run", trajs)
    assert (tmp_path / "run" / "trajectories.jsonl").read_text().count("\n") == len(trajs)
    back = load_trajectories(tmp_path / "run")
    for a, b in zip(trajs, back):
        assert a.input_ids() == b.input_ids() and a.action_mask() == b.action_mask()
        assert a.behaviour_logprobs() == b.behaviour_logprobs()
        assert a.reward_parts == b.reward_parts and a.record() == b.record()
        for ta, tb in zip(a.turns, b.turns):
            for name in ("video", "images", "video_times", "image_times"):
                x, y = getattr(ta.media, name), getattr(tb.media, name)
                assert (x is None and y is None) or np.array_equal(x, y)
            assert ta.video_grid_thw == tb.video_grid_thw


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_scripted_policies_run_through_the_same_engine(suite, asynchronous):
    from medscope_gym.agents.evaluate import is_well_formed
    from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
    from medscope_gym.agents.scripted import OraclePolicy
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    ids = [s.id for s in suite if s.split == "test"][:3]
    envs = make_vector_env(lambda: ClinVideoEnv(suite), 2, asynchronous=asynchronous)
    try:
        trajs = rollout(OraclePolicy(), envs, sample_requests(ids))
    finally:
        envs.close()
    assert [t.sample_id for t in trajs] == ids
    assert all(t.reward_parts["accuracy"] == 1.0 and t.terminated and is_well_formed(t) for t in trajs)
    assert all(not t.has_tokens for t in trajs)
