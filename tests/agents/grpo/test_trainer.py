"""The GA-GRPO loop on the tiny model (CPU): logs, checkpoints, exact resume, guards, LoRA + KL.

An untrained tiny model writes noise, so every rollout of a group earns the same reward and every
advantage is 0. Tests that need a real update replace the advantages by a fixed, group-balanced
pattern (``_patterned_advantages``): the rest of the step (rollouts, log-probs, loss, optimizer) is
the real code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medscope_gym.agents.grpo import trainer as trainer_module  # noqa: E402
from medscope_gym.agents.grpo.config import GRPOConfig  # noqa: E402
from medscope_gym.agents.grpo.trainer import TrainingDivergedError, sequence_logprobs, train_grpo  # noqa: E402


def _cfg(model, out, **kw) -> GRPOConfig:
    base = dict(
        questions_per_step=2,
        group_size=2,
        num_envs=4,
        max_steps=2,
        max_turns=2,
        max_tool_calls=1,
        max_new_tokens=12,
        learning_rate=1e-3,
        lora=False,
        eval_every=1,
        eval_limit=2,
        save_every=1,
        minibatch_size=2,
        micro_batch_size=1,
        progress=False,
        tensorboard=False,
    )
    base.update(kw)
    return GRPOConfig(model=str(model), out=str(out), **base)


def _patterned_advantages(rewards, groups, **_):
    """+1 / −1 alternating inside each group: a non-zero, zero-mean signal whatever the rewards."""
    adv = np.array([1.0 if i % 2 == 0 else -1.0 for i in range(len(rewards))])
    return adv, np.zeros(len(rewards), dtype=bool)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_run_logs_every_part_checkpoints_and_saves_a_loadable_final_model(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setattr(trainer_module, "group_advantages", _patterned_advantages)
    # one minibatch of 4 in 2 micro-batches: the update's ratios are exactly those of the sampling policy
    final = train_grpo(
        _cfg(tiny_dir, tmp_path / "run", tensorboard=True, minibatch_size=4, micro_batch_size=2)
    )
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/reward" in r]
    assert [r["step"] for r in train] == [1, 2]
    for key in (
        "train/reward_accuracy",
        "train/reward_format",
        "train/reward_evidence",
        "train/tool_call_rate",
        "train/advantage_abs",
        "train/clip_fraction",
        "train/kl_behaviour",
        "perf/gen_tokens_per_s",
    ):
        assert key in train[0], key
    assert train[0]["train/advantage_abs"] == 1.0 and train[0]["train/ratio_mean"] == pytest.approx(
        1.0, abs=1e-4
    )
    assert {r["step"] for r in rows if "eval/reward" in r} == {0, 1, 2}
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "checkpoint-2" / "optimizer.pt").exists()
    assert not (tmp_path / "run" / "checkpoint-0").exists()
    before, after = _weights(tiny_dir), _weights(final)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("model.layers.") for k in changed)
    assert not any("visual" in k for k in changed)  # freeze_vision
    from medscope_gym.agents.vlm.policy import HFVLMPolicy

    assert HFVLMPolicy.from_pretrained(final).label == "final"


def test_resume_continues_exactly(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setattr(trainer_module, "group_advantages", _patterned_advantages)
    straight = train_grpo(_cfg(tiny_dir, tmp_path / "straight", eval_every=5))
    train_grpo(_cfg(tiny_dir, tmp_path / "split", max_steps=1, eval_every=5))
    resumed = train_grpo(_cfg(tiny_dir, tmp_path / "split", max_steps=2, eval_every=5))
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows if "train/reward" in r] == [1, 2]


def test_a_nan_loss_stops_the_run_naming_the_step(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setattr(trainer_module, "group_advantages", _patterned_advantages)
    real = trainer_module.clipped_surrogate

    def poisoned(*args, **kw):
        terms = real(*args, **kw)
        terms.loss = terms.loss * float("nan")
        return terms

    monkeypatch.setattr(trainer_module, "clipped_surrogate", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"step 1: the loss of minibatch 0 is nan"):
        train_grpo(_cfg(tiny_dir, tmp_path / "run", max_steps=1, eval_every=5))
    assert not (tmp_path / "run" / "checkpoint-1").exists()


def test_lora_with_kl_against_the_adapter_free_base(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setattr(trainer_module, "group_advantages", _patterned_advantages)
    final = train_grpo(
        _cfg(
            tiny_dir,
            tmp_path / "run",
            max_steps=1,
            lora=True,
            lora_r=4,
            lora_alpha=8,
            kl_coef=0.05,
            eval_every=5,
            update_epochs=2,
        )
    )
    row = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][1]
    assert row["train/kl"] >= 0.0 and row["train/updates"] == 4.0  # 2 epochs x 2 minibatches
    assert row["train/kl"] > 0.0  # the second epoch starts from updated adapters
    assert (tmp_path / "run" / "checkpoint-1" / "adapter" / "adapter_config.json").exists()
    assert not any("lora" in k for k in _weights(final))  # merged into a plain checkpoint


def test_held_out_questions_can_come_from_another_suite(tmp_path, tiny_dir, suite, monkeypatch, capsys):
    """Train on one suite, evaluate on another (questions the SFT start never saw vs the usual held-out)."""
    import dataclasses

    from medscope_gym.suite import write_suite

    other = tmp_path / "other"
    other.mkdir()
    (other / "videos").symlink_to(suite.root / "videos")
    chosen = [s for s in suite if s.split == "train"][:3]  # the "val" questions of the other suite
    write_suite(other, [dataclasses.replace(s, id=f"other-{s.id}", split="val") for s in chosen])
    seen = []
    real = trainer_module._evaluate

    def spy(policy, envs, ids, cfg, seed):
        seen.append(list(ids))
        return real(policy, envs, ids, cfg, seed)

    monkeypatch.setattr(trainer_module, "_evaluate", spy)
    train_grpo(
        _cfg(
            tiny_dir,
            tmp_path / "run",
            max_steps=1,
            eval_every=5,
            eval_limit=None,
            eval_suite=str(other),
            eval_splits=("val",),
        )
    )
    assert seen == [[f"other-{s.id}" for s in chosen]] * 2  # at the start and after the last step
    summary = json.loads((tmp_path / "run" / "eval.json").read_text())["summary"]
    assert summary["episodes"] == 3
    # each held-out row on the console, then first vs last; the episodes saved for medscope view
    printed = capsys.readouterr().out
    assert "held-out eval at step 0 (3 episodes): reward" in printed and "held-out eval at step 1" in printed
    assert "first vs last" in printed and "step 0" in printed.split("first vs last")[1]
    from medscope_gym.agents.viewer.report import find_trajectories, load_run

    run = tmp_path / "run"
    assert find_trajectories(run) == run / "eval" / "step-1" / "trajectories"
    assert len(load_run(run / "eval" / "step-0").trajectories) == 3


def test_sequence_logprobs_equal_the_full_forward(tiny_dir, suite):
    """Keeping only the logits from the first action token on changes no log-prob."""
    from medscope_gym.agents.rollout.batching import trajectory_batch
    from medscope_gym.agents.rollout.engine import group_requests, make_vector_env, rollout
    from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig
    from medscope_gym.agents.vlm.sampling import token_logprobs
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    config = VLMPolicyConfig.load(tiny_dir)
    config.sampling.max_new_tokens = 10
    policy = HFVLMPolicy.from_pretrained(tiny_dir, config=config)
    envs = make_vector_env(lambda: ClinVideoEnv(suite, max_turns=2), 2)
    try:
        trajs = rollout(policy, envs, group_requests([s.id for s in suite][:1], 2))
    finally:
        envs.close()
    batch = trajectory_batch(trajs, policy.encoder, pad_id=policy.pad_id)
    with torch.no_grad():
        logp, mask, old = sequence_logprobs(policy.model, batch, 1.0, policy.suppressed_ids)
        inputs = {
            k: v for k, v in batch.items() if k not in ("action_mask", "behaviour_logprobs", "loss_mask")
        }
        full = token_logprobs(
            policy.model(**inputs).logits[:, :-1], batch["input_ids"][:, 1:], 1.0, policy.suppressed_ids
        )
    width = logp.shape[1]
    assert torch.equal(mask, batch["action_mask"][:, -width:])
    on = mask.bool()
    torch.testing.assert_close(logp[on], full[:, -width:][on], atol=1e-5, rtol=1e-5)
    assert torch.all(logp[~on] == 0)
    # and they are the behaviour log-probs recorded while sampling
    torch.testing.assert_close(logp[on], old[on], atol=1e-4, rtol=1e-4)


def test_ablation_command_trains_each_variant_and_prints_one_table(tmp_path, tiny_dir, capsys):
    from medscope_gym.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(
        "questions_per_step: 1\ngroup_size: 2\nnum_envs: 2\nmax_turns: 1\nmax_new_tokens: 8\nlora: false\n"
        "eval_limit: 1\nminibatch_size: 2\nprogress: false\ntensorboard: false\nlearning_rate: 1e-4\n"
    )
    argv = [
        "ablate",
        "--config",
        str(config),
        "--model",
        str(tiny_dir),
        "--out",
        str(tmp_path / "abl"),
        "--max-steps",
        "1",
        "--variants",
        "paper,no_modulation",
        "--seeds",
        "0",
    ]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| start |" in table and "| paper |" in table and "| no_modulation |" in table
    result = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert set(result["runs"]) == {"paper", "no_modulation"}
    saved = json.loads((tmp_path / "abl" / "no_modulation" / "seed-0" / "config.json").read_text())
    assert saved["modulation"] == "off" and saved["reward"] == "paper"
    # finished runs are reused: a second call trains nothing and prints the same table
    mtime = (tmp_path / "abl" / "paper" / "seed-0" / "eval.json").stat().st_mtime
    assert main(argv) == 0
    assert (tmp_path / "abl" / "paper" / "seed-0" / "eval.json").stat().st_mtime == mtime


def test_profile_measures_rollout_and_one_step(tmp_path):
    from benchmarks.device_profile import profile  # measurement code: benchmarks/ of the checkout

    result = profile("tiny", tmp_path / "prof", device="cpu", episodes=2, group_size=2, max_new_tokens=6)
    assert result["rollout_episodes"] == 2 and result["rollout_tokens"] > 0
    assert result["grpo_rollouts"] == 2 and result["grpo_train_tokens_per_s"] > 0
    assert json.loads((tmp_path / "prof" / "profile.json").read_text())["arch"] == "tiny"


def test_two_processes_split_the_questions_and_keep_groups_whole(tmp_path, tiny_dir):
    """``torchrun`` with 2 CPU processes (gloo DDP): each plays its own questions; metrics count both."""
    import os
    import subprocess
    import sys

    config = tmp_path / "ddp.yaml"
    config.write_text(
        f"model: {tiny_dir}\nout: {tmp_path / 'run'}\nquestions_per_step: 2\ngroup_size: 2\nnum_envs: 2\n"
        "max_turns: 1\nmax_new_tokens: 6\nlora: false\neval_limit: 1\nminibatch_size: 2\nmax_steps: 1\n"
        "drop_zero_variance: false\ntensorboard: false\nprogress: false\nsave_rollouts: true\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "medscope_gym.cli",
        "train",
        "grpo",
        "--config",
        str(config),
        "--threads",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in rows if "train/reward" in r)
    assert step["perf/processes"] == 2.0 and step["train/rollouts"] == 4.0  # 2 questions x 2, both ranks
    # the main process saved its own shard: one whole group (1 question x 2 rollouts)
    from medscope_gym.agents.rollout.trajectory import load_trajectories

    shard = load_trajectories(tmp_path / "run" / "rollouts" / "step-1", frames=False)
    assert len(shard) == 2 and len({t.sample_id for t in shard}) == 1
