"""SFT cold start: the loss mask, the training loop, checkpoints, resume, LoRA, devices."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def reference(tiny_dir, suite):
    """Two oracle trajectories of the train split, laid out for the tiny model."""
    from medscope_gym.agents.sft.trainer import build_reference_data
    from medscope_gym.agents.vlm.policy import VLMPolicyConfig

    return build_reference_data(
        str(tiny_dir), "builtin:synthsurg-small", "train", VLMPolicyConfig.load(tiny_dir), limit=2, num_envs=2
    )


def test_reference_data_are_real_env_rollouts(reference):
    assert len(reference) == 2
    for traj in reference:
        assert traj.terminated and traj.reward_parts["accuracy"] == 1.0 and traj.final_info["format"]["ok"]
        assert [t.finish for t in traj.turns] == ["stop"] * len(traj.turns)


def test_loss_mask_covers_exactly_the_model_tokens(reference, tiny_dir):
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(tiny_dir).tokenizer
    for traj in reference:
        ids, mask = traj.input_ids(), traj.action_mask()
        assert len(ids) == len(mask) and traj.loss_mask() == mask  # no deliberate mistakes here
        ones = [t for t, m in zip(ids, mask) if m]
        zeros = [t for t, m in zip(ids, mask) if not m]
        # the masked-in tokens are the assistant turns, token for token, and nothing else
        assert ones == [t for turn in traj.turns for t in turn.action_ids]
        assert tok.decode(ones, skip_special_tokens=False) == "".join(t.action_text for t in traj.turns)
        # everything else is prompt: system, questions, tool responses, vision placeholders, turn markers
        assert tok.decode(zeros, skip_special_tokens=False) == "".join(
            tok.decode(t.prompt_ids, skip_special_tokens=False) for t in traj.turns
        )
        for special in ("<|video_pad|>", "<|image_pad|>", "<|im_start|>", "<|vision_start|>"):
            sid = tok.convert_tokens_to_ids(special)
            assert sid in zeros and sid not in ones
        assert "<tool_response>" in tok.decode(zeros) and "<tool_response>" not in tok.decode(ones)


def test_recovery_mistakes_are_context_but_not_targets(tiny_dir, suite):
    from medscope_gym.agents.sft.trainer import build_reference_data
    from medscope_gym.agents.vlm.policy import VLMPolicyConfig

    (traj,) = build_reference_data(
        str(tiny_dir),
        "builtin:synthsurg-small",
        "train",
        VLMPolicyConfig.load(tiny_dir),
        limit=1,
        num_envs=1,
        recovery_rate=1.0,
        seed=4,
    )
    first, rest = traj.turns[0], traj.turns[1:]
    assert not first.imitate and all(t.imitate for t in rest)
    assert rest[0].observation_text.startswith("Error:")  # the env's error message is in the context
    assert traj.reward_parts["accuracy"] == 1.0 and not traj.final_info["format"]["ok"]
    action, loss = traj.action_mask(), traj.loss_mask()
    n_first = len(first.prompt_ids) + len(first.action_ids)
    assert sum(action[:n_first]) == len(first.action_ids) and sum(loss[:n_first]) == 0
    assert loss[n_first:] == action[n_first:]


def test_jittered_evidence_still_covers_the_true_window(suite):
    from medscope_gym.agents.sft.trainer import RecoveringOracle

    oracle = RecoveringOracle(rate=0.0, seed=1, jitter=3.0)
    widened_any = False
    for sample in list(suite)[:20]:
        wide = oracle._widened(sample, sample.duration)
        for (s, e), (ws, we) in zip(sample.evidence, wide.evidence):
            if s == e:
                assert (ws, we) == (s, e)  # moments are left alone
                continue
            assert 0.0 <= ws <= s and e <= we <= max(e, sample.duration) and we - ws <= e - s + 6.0 + 0.2
            assert round(ws, 1) == ws and (round(we, 1) == we or we == sample.duration)
            widened_any |= (ws, we) != (s, e)
    assert widened_any


def test_masked_loss_has_gradient_only_on_model_tokens(reference):
    from medscope_gym.agents.sft.trainer import masked_lm_loss

    traj = reference[0]
    ids = torch.as_tensor([traj.input_ids()])
    mask = torch.as_tensor([traj.action_mask()])
    logits = torch.randn(1, ids.shape[1], int(ids.max()) + 8, requires_grad=True)
    loss = masked_lm_loss(logits, ids, mask)
    loss.backward()
    predicts_model_token = mask[0, 1:].bool()
    row_has_grad = logits.grad[0, :-1].abs().sum(-1) > 0
    assert torch.equal(row_has_grad, predicts_model_token)
    assert logits.grad[0, -1].abs().sum() == 0
    manual = torch.nn.functional.cross_entropy(
        logits[0, :-1][predicts_model_token], ids[0, 1:][predicts_model_token]
    )
    assert torch.allclose(loss, manual)


def _loss_rows(out):
    from medscope_gym.agents.training.metrics import read_metrics

    return [row for row in read_metrics(out) if "train/loss" in row]


def test_sft_trains_checkpoints_and_resumes(tmp_path, tiny_dir, capsys):
    from transformers import AutoModelForImageTextToText

    from medscope_gym.agents.sft.config import SFTConfig
    from medscope_gym.agents.sft.trainer import train_sft
    from medscope_gym.agents.training.metrics import read_metrics
    from medscope_gym.agents.vlm.policy import HFVLMPolicy

    out = tmp_path / "run"
    cfg = SFTConfig(
        model=str(tiny_dir),
        suite="builtin:synthsurg-small",
        out=str(out),
        limit=2,
        max_steps=2,
        learning_rate=3e-3,
        warmup_steps=1,
        save_every=1,
        progress=False,
        eval_limit=0,
    )
    train_sft(cfg)
    assert (out / "checkpoint-2" / "trainer_state.json").exists() and (out / "checkpoint-1").exists()
    assert [r["step"] for r in _loss_rows(out)] == [1, 2]
    # a longer run in the same folder resumes at step 2 from the saved data, model and optimizer
    cfg4 = SFTConfig(
        model=str(tiny_dir),
        suite="builtin:synthsurg-small",
        out=str(out),
        limit=2,
        max_steps=4,
        learning_rate=3e-3,
        warmup_steps=1,
        save_every=2,
        progress=False,
        eval_limit=1,
    )
    final = train_sft(cfg4)
    printed = capsys.readouterr().out
    assert "sft: held-out val: well_formed" in printed and "accuracy" in printed  # seen without a file
    held_out = [r for r in read_metrics(out) if "eval/well_formed" in r]
    assert [r["step"] for r in held_out] == [4]
    assert (out / "eval" / "trajectories" / "trajectories.jsonl").exists()  # medscope view reads them
    rows = _loss_rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]  # keep 2
    assert (out / "loss.png").exists() and (out / "data" / "trajectories.jsonl").exists()
    policy = HFVLMPolicy.from_pretrained(final)
    assert policy.config.system_prompt == cfg4.policy.system_prompt
    base = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    trained = dict(policy.model.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in base.named_parameters())


def test_lora_sft_merges_into_a_plain_checkpoint(tmp_path, tiny_dir):
    from transformers import AutoModelForImageTextToText

    from medscope_gym.agents.sft.config import SFTConfig
    from medscope_gym.agents.sft.trainer import train_sft

    final = train_sft(
        SFTConfig(
            model=str(tiny_dir),
            suite="builtin:synthsurg-small",
            out=str(tmp_path / "lora"),
            limit=1,
            max_steps=2,
            learning_rate=1e-2,
            warmup_steps=1,
            lora=True,
            lora_r=4,
            save_every=2,
            progress=False,
            eval_limit=0,
        )
    )
    assert (tmp_path / "lora" / "checkpoint-2" / "adapter" / "adapter_config.json").exists()
    assert not (final / "adapter_config.json").exists()
    base = dict(AutoModelForImageTextToText.from_pretrained(tiny_dir).named_parameters())
    merged = dict(AutoModelForImageTextToText.from_pretrained(final).named_parameters())
    assert base.keys() == merged.keys()
    changed = {n for n in base if not torch.equal(base[n], merged[n])}
    assert changed and all("language_model" in n and "proj" in n for n in changed)


def test_device_resolution_picks_bf16_only_on_cuda():
    from medscope_gym.agents.vlm.policy import resolve_device

    assert resolve_device("cpu") == (torch.device("cpu"), torch.float32)
    assert resolve_device("cuda:0")[1] == torch.bfloat16
    assert resolve_device("cpu", "bfloat16")[1] == torch.bfloat16


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device: the bf16 / device-placement path is not measured on this machine",
)
def test_cuda_path_uses_bf16_and_the_device(tmp_path, tiny_dir, suite):
    from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
    from medscope_gym.agents.sft.config import SFTConfig
    from medscope_gym.agents.sft.trainer import train_sft
    from medscope_gym.agents.vlm.policy import HFVLMPolicy
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    final = train_sft(
        SFTConfig(
            model=str(tiny_dir),
            suite="builtin:synthsurg-small",
            out=str(tmp_path / "cuda"),
            limit=1,
            max_steps=2,
            learning_rate=1e-3,
            save_every=2,
            device="cuda",
            progress=False,
            eval_limit=0,
        )
    )
    policy = HFVLMPolicy.from_pretrained(final, device="cuda")
    assert policy.device.type == "cuda" and next(policy.model.parameters()).dtype == torch.bfloat16
    envs = make_vector_env(lambda: ClinVideoEnv(suite, max_turns=1), 2)
    try:
        trajs = rollout(policy, envs, sample_requests([s.id for s in suite][:2]))
    finally:
        envs.close()
    assert all(
        t.turns[0].action_ids and len(t.turns[0].action_logprobs) == len(t.turns[0].action_ids) for t in trajs
    )
