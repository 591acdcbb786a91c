"""GA-GRPO: grounding-aware group-relative policy optimisation of a VLM on ClinVideoEnv.

One step, read top to bottom in :func:`train_grpo`:

1. **Rollouts.** B questions of the train split (a seeded, resumable stream over shuffled epochs),
   G rollouts each from identical resets, played by the current policy through the vector env
   (:func:`medscope_gym.agents.rollout.engine.rollout`). Every trajectory keeps the exact token ids the model
   sampled
   and their behaviour log-probs.
2. **Advantages.** R_i is the env's trajectory reward (any preset). A_i = R_i − group mean (÷ std
   optionally); then the evidence modulation (:mod:`medscope_gym.agents.grpo.advantages`) for tool-using
   rollouts
   with a valid evidence score. Groups with no reward spread are counted and (by default) skipped.
3. **Update.** ``update_epochs`` passes over the batch in shuffled minibatches; each minibatch is one
   optimizer step on the token-mean PPO-clipped surrogate (:mod:`medscope_gym.agents.grpo.loss`) over the
   model's
   own tokens, with behaviour log-probs as the old policy. Optional k3 KL against the frozen start
   model (the adapter-disabled base under LoRA). Non-finite losses or gradients stop the run with the
   step and minibatch named.
4. **Bookkeeping.** Metrics (every reward part, advantage stats, tool-call rate, mIoU, KL, clip
   fraction, tokens/s) to metrics.jsonl and TensorBoard; held-out evaluation every ``eval_every`` steps;
   checkpoints (model or adapter, optimizer, scheduler, RNG, step) written atomically; exact resume.

Devices go through ``accelerate``: CPU (fp32), CUDA (bf16, gradient checkpointing), several GPUs or
nodes with ``accelerate launch`` (DDP): each process runs its own env shard and its own slice of the
step's questions, groups whole, and gradients are averaged across processes.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.evaluate import is_well_formed, summarise_trajectories
from medscope_gym.agents.grpo.advantages import evidence_factors, group_advantages
from medscope_gym.agents.grpo.config import GRPOConfig
from medscope_gym.agents.grpo.loss import clipped_surrogate
from medscope_gym.agents.grpo.tracking import MetricsLog
from medscope_gym.agents.rollout.batching import trajectory_batch
from medscope_gym.agents.rollout.engine import group_requests, make_vector_env, rollout, sample_requests
from medscope_gym.agents.rollout.trajectory import Trajectory, save_trajectories
from medscope_gym.agents.sft.trainer import stream_indices
from medscope_gym.agents.vlm.checkpoints import (
    checkpoint_dir,
    latest_checkpoint,
    load_trainable_model,
    prune_checkpoints,
    save_final_model,
)
from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig, resolve_device
from medscope_gym.agents.vlm.sampling import token_logprobs
from medscope_gym.atomic import atomic_directory, atomic_write_text
from medscope_gym.errors import ConfigError, MedScopeError
from medscope_gym.metrics import summarise

__all__ = ["TrainingDivergedError", "evidence_scores", "sequence_logprobs", "train_grpo"]

#: Overall metrics of a held-out evaluation that are logged as eval/<name>.
EVAL_METRICS = (
    "reward",
    "accuracy",
    "mIoU",
    "evidence_mIoU",
    "R@0.3",
    "R@0.5",
    "R@0.7",
    "tool_calls",
    "format_rate",
    "well_formed",
)


class TrainingDivergedError(MedScopeError):
    """A loss or gradient became NaN/inf: the run stops rather than write corrupted weights."""


# ---------------------------------------------------------------------------------------------- main loop
def train_grpo(cfg: GRPOConfig) -> Path:
    """Run GA-GRPO; returns the final checkpoint folder (``out/final``, LoRA merged)."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoProcessor

    from medscope_gym.envs.clinvideo import ClinVideoEnv
    from medscope_gym.suite import Suite

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device, _ = resolve_device(cfg.device)
    accelerator = Accelerator(
        cpu=device.type == "cpu", mixed_precision="bf16" if device.type == "cuda" else "no"
    )
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    if cfg.questions_per_step % world:
        raise ConfigError(
            f"questions_per_step ({cfg.questions_per_step}) must divide by the {world} processes"
        )

    # ---- data and envs: this process's env shard
    suite = Suite.from_spec(cfg.suite)
    eval_suite = Suite.from_spec(cfg.eval_suite) if cfg.eval_suite else suite
    train_ids = [s.id for s in suite if s.split == cfg.train_split]
    eval_ids = [s.id for s in eval_suite if s.split in cfg.eval_splits][: cfg.eval_limit]
    if not train_ids:
        raise ConfigError(f"suite {cfg.suite!r} has no questions in train split {cfg.train_split!r}")

    def make_envs(source: Suite):
        return make_vector_env(
            lambda: ClinVideoEnv(
                source, reward=cfg.reward_preset, max_turns=cfg.max_turns, max_tool_calls=cfg.max_tool_calls
            ),
            cfg.num_envs,
        )

    envs = make_envs(suite)
    eval_envs = make_envs(eval_suite) if cfg.eval_suite else envs

    # ---- model, optimizer, state
    resume_from = latest_checkpoint(out) if cfg.resume else None
    processor = AutoProcessor.from_pretrained(cfg.model)
    model = _load_model(cfg, resume_from, device)
    reference = _load_reference(cfg, device) if cfg.kl_coef > 0 and not cfg.lora else None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: min(1.0, (k + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    )
    step = 0
    if resume_from is not None:
        step = _load_state(resume_from, optimizer, scheduler)
        if main:
            print(f"grpo: resumed from {resume_from} at step {step}")
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    if main:
        cfg.save(out / "config.json")

    base_policy = VLMPolicyConfig.load(cfg.model) or VLMPolicyConfig()
    policy = HFVLMPolicy(
        accelerator.unwrap_model(model), processor, _sampling_config(cfg, base_policy), "grpo"
    )
    eval_policy = HFVLMPolicy(
        accelerator.unwrap_model(model), processor, _eval_config(cfg, base_policy), "eval"
    )
    sampling = policy.config.sampling
    log = MetricsLog(out, resume_step=step, tensorboard=cfg.tensorboard and main) if main else None
    local_questions = cfg.questions_per_step // world

    def evaluate_now(at_step: int) -> dict[str, float]:
        summary = _evaluate(eval_policy, eval_envs, eval_ids, cfg, seed=cfg.seed + 7919) if eval_ids else {}
        if log is not None and summary:
            log.log(at_step, {f"eval/{k}": summary.get(k) for k in EVAL_METRICS})
        return summary

    if step == 0 and main and cfg.eval_at_start:
        model.eval()
        evaluate_now(0)
    accelerator.wait_for_everyone()
    bar = _progress_bar(cfg, step) if main else None
    while step < cfg.max_steps:
        t0 = time.perf_counter()
        # 1. rollouts: this process's slice of the step's questions, G rollouts each
        first = step * cfg.questions_per_step + rank * local_questions
        questions = [train_ids[i] for i in stream_indices(len(train_ids), cfg.seed, first, local_questions)]
        torch.manual_seed(_step_seed(cfg.seed, step, rank))
        model.eval()
        requests = group_requests(questions, cfg.group_size, seed=_step_seed(cfg.seed, step, rank) % 2**31)
        with torch.no_grad(), accelerator.autocast():
            trajectories = rollout(policy, envs, requests)
        t_rollout = time.perf_counter() - t0

        # 2. rewards -> group advantages -> evidence modulation
        rewards = [t.reward for t in trajectories]
        groups = [t.group for t in trajectories]
        advantages, flat = group_advantages(
            rewards, groups, normalise_std=cfg.normalise_std, std_eps=cfg.std_eps
        )
        factors = evidence_factors(
            advantages,
            evidence_scores(trajectories),
            mode=cfg.modulation,
            up=cfg.modulation_up,
            down=cfg.modulation_down,
            scale=cfg.modulation_scale,
            floor=cfg.modulation_floor,
        )
        advantages = advantages * factors
        keep = [i for i in range(len(trajectories)) if not (cfg.drop_zero_variance and flat[i])]

        # 3. policy update over the kept trajectories
        t1 = time.perf_counter()
        model.train()
        update = _policy_update(
            model,
            optimizer,
            scheduler,
            accelerator,
            policy,
            reference,
            [trajectories[i] for i in keep],
            advantages[keep],
            cfg,
            sampling.temperature,
            step,
        )
        t_update = time.perf_counter() - t1
        step += 1

        # 4. bookkeeping
        if cfg.save_rollouts and main:
            save_trajectories(out / "rollouts" / f"step-{step}", trajectories)
        rows = _rollout_rows(trajectories, advantages, flat, factors)
        if world > 1:  # every process's rollouts count in the step's metrics
            from accelerate.utils import gather_object

            rows = gather_object(rows)
        metrics = _rollout_metrics(rows)
        metrics.update(update)
        gen_tokens = sum(len(turn.action_ids) for t in trajectories for turn in t.turns)
        metrics.update(
            {
                "train/lr": scheduler.get_last_lr()[0],
                "perf/processes": world,
                "perf/rollout_s": t_rollout,
                "perf/update_s": t_update,
                "perf/step_s": time.perf_counter() - t0,
                "perf/gen_tokens": gen_tokens,
                "perf/gen_tokens_per_s": gen_tokens / max(t_rollout, 1e-9),
                "perf/train_tokens_per_s": update.get("train/tokens", 0.0) / max(t_update, 1e-9),
            }
        )
        if log is not None:
            log.log(step, metrics)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                reward=f"{metrics['train/reward']:.2f}", clip=f"{update.get('train/clip_fraction', 0):.2f}"
            )
        if step % cfg.eval_every == 0 and step < cfg.max_steps and main:
            model.eval()
            evaluate_now(step)
        if step % cfg.save_every == 0 or step == cfg.max_steps:
            _save_checkpoint(accelerator, model, optimizer, scheduler, out, step, cfg)
        accelerator.wait_for_everyone()
    if bar is not None:
        bar.close()

    final = out / "final"
    if main:
        model.eval()
        summary = evaluate_now(cfg.max_steps)
        save_final_model(accelerator.unwrap_model(model), processor, base_policy, final, cfg.lora)
        atomic_write_text(
            out / "eval.json", json.dumps({"step": cfg.max_steps, "summary": summary}, indent=2) + "\n"
        )
        log.close()
        from medscope_gym.agents.grpo.plots import plot_training

        plot_training(out)
    accelerator.wait_for_everyone()
    envs.close()
    if eval_envs is not envs:
        eval_envs.close()
    return final


# ---------------------------------------------------------------------------------------------- the update
def sequence_logprobs(model, batch: dict[str, Any], temperature: float, suppressed_ids: Sequence[int]):
    """Learner log-probs of every action token of a right-padded trajectory batch.

    Returns ``(logp, mask, old_logp)``, each ``(B, T)`` over target positions ``first .. L-1`` (logp 0
    outside the mask) where
    ``first`` is the earliest action token in the batch: logits are only computed from there on
    (``logits_to_keep``), which spares the vocabulary projection of every prompt position.
    """
    import torch

    ids, mask, old = batch["input_ids"], batch["action_mask"], batch["behaviour_logprobs"]
    width = ids.shape[1]
    first = int(torch.nonzero(mask.any(dim=0))[0, 0]) if bool(mask.any()) else width - 1
    first = max(first, 1)
    inputs = {k: v for k, v in batch.items() if k not in ("action_mask", "behaviour_logprobs", "loss_mask")}
    keep = torch.arange(first - 1, width - 1, device=ids.device)
    logits = model(**inputs, logits_to_keep=keep).logits
    mask = mask[:, first:]
    logp = token_logprobs(logits, ids[:, first:], temperature, suppressed_ids)
    # Prompt positions hold vision placeholders the policy may never emit (log-prob −inf): zero them
    # so no inf − inf reaches the loss or its gradient; only masked positions are ever used.
    logp = torch.where(mask.bool(), logp, torch.zeros_like(logp))
    return logp, mask, old[:, first:]


def _policy_update(
    model,
    optimizer,
    scheduler,
    accelerator,
    policy: HFVLMPolicy,
    reference,
    trajectories: list[Trajectory],
    advantages: np.ndarray,
    cfg: GRPOConfig,
    temperature: float,
    step: int,
) -> dict[str, float]:
    """``update_epochs`` passes of minibatch PPO-clip updates; returns the update's metrics."""
    import torch

    if not trajectories:
        return {"train/update_skipped": 1.0}
    encoder, pad_id, suppressed = policy.encoder, policy.pad_id, policy.suppressed_ids
    vision = [  # the processor outputs fed at sampling time; re-processed only for loaded trajectories
        [turn.vision if turn.vision is not None else encoder.process_media(turn.media) for turn in t.turns]
        for t in trajectories
    ]
    rng = np.random.default_rng([cfg.seed, step, 1])
    sums = {
        "loss": 0.0,
        "clipped": 0.0,
        "ratio": 0.0,
        "kl": 0.0,
        "kl_behaviour": 0.0,
        "tokens": 0,
        "grad_norm": 0.0,
        "updates": 0,
    }
    params = [p for p in model.parameters() if p.requires_grad]
    for _epoch in range(cfg.update_epochs):
        order = rng.permutation(len(trajectories))
        for mb_index, mb_start in enumerate(range(0, len(order), cfg.minibatch_size)):
            minibatch = order[mb_start : mb_start + cfg.minibatch_size]
            n_tokens = sum(sum(trajectories[i].action_mask()) for i in minibatch)
            micros = [
                minibatch[k : k + cfg.micro_batch_size]
                for k in range(0, len(minibatch), cfg.micro_batch_size)
            ]
            for k, micro in enumerate(micros):
                batch = trajectory_batch(
                    [trajectories[i] for i in micro],
                    encoder,
                    pad_id=pad_id,
                    vision=[vision[i] for i in micro],
                    device=accelerator.device,
                )
                sync = accelerator.no_sync(model) if k < len(micros) - 1 else contextlib.nullcontext()
                with sync, accelerator.autocast():
                    logp, mask, old = sequence_logprobs(model, batch, temperature, suppressed)
                    ref_logp = _reference_logprobs(model, reference, batch, temperature, suppressed, cfg)
                    terms = clipped_surrogate(
                        logp,
                        old,
                        advantages[micro],
                        mask,
                        clip_eps=cfg.clip_eps,
                        clip_eps_high=cfg.clip_eps_high,
                        ref_logp=ref_logp,
                        kl_coef=cfg.kl_coef,
                    )
                    loss = terms.loss / max(n_tokens, 1)
                    if not torch.isfinite(loss):
                        raise TrainingDivergedError(
                            f"step {step + 1}: the loss of minibatch {mb_index} is {float(loss)} "
                            f"(trajectories {[trajectories[i].uid for i in micro]}); stopping before "
                            "the weights are corrupted. Lower lr or inspect those rollouts."
                        )
                    accelerator.backward(loss)
                for key in ("clipped", "ratio", "kl", "kl_behaviour", "tokens"):
                    sums[key] += getattr(terms, key)
                sums["loss"] += float(loss.detach())
            grad_norm = accelerator.clip_grad_norm_(
                params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
            )
            if not torch.isfinite(torch.as_tensor(grad_norm)):
                raise TrainingDivergedError(
                    f"step {step + 1}: gradient norm of minibatch {mb_index} is {float(grad_norm)}; stopping "
                    "before the optimizer step. Lower lr or enable max_grad_norm."
                )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            sums["grad_norm"] += float(grad_norm)
            sums["updates"] += 1
    tokens = max(sums["tokens"], 1)
    return {
        "train/loss": sums["loss"] / max(sums["updates"], 1),
        "train/clip_fraction": sums["clipped"] / tokens,
        "train/ratio_mean": sums["ratio"] / tokens,
        "train/kl": sums["kl"] / tokens if cfg.kl_coef > 0 else None,
        "train/kl_behaviour": sums["kl_behaviour"] / tokens,
        "train/grad_norm": sums["grad_norm"] / max(sums["updates"], 1),
        "train/tokens": float(sums["tokens"]),
        "train/updates": float(sums["updates"]),
    }


def _reference_logprobs(model, reference, batch, temperature, suppressed, cfg: GRPOConfig):
    """Log-probs under the frozen start policy (None when the KL term is off)."""
    import torch

    if cfg.kl_coef <= 0:
        return None
    with torch.no_grad():
        if reference is not None:
            return sequence_logprobs(reference, batch, temperature, suppressed)[0]
        unwrapped = model.module if hasattr(model, "module") else model
        with unwrapped.disable_adapter():  # LoRA: the base model is the reference
            return sequence_logprobs(model, batch, temperature, suppressed)[0]


# ---------------------------------------------------------------------------------------------- metrics
def evidence_scores(trajectories: Sequence[Trajectory]) -> list[float | None]:
    """f_i: the evidence reward of tool-using rollouts (SPEC §6), None for rollouts without a tool call."""
    return [float(t.reward_parts.get("evidence", 0.0)) if t.used_tool else None for t in trajectories]


def _rollout_rows(
    trajectories: Sequence[Trajectory], advantages: np.ndarray, flat: np.ndarray, factors: np.ndarray
) -> list[dict[str, Any]]:
    """One small, picklable row per rollout: what the step's metrics need (gathered across processes)."""
    return [
        {
            "record": t.record(),
            "reward": t.reward,
            "parts": t.reward_parts,
            "used_tool": t.used_tool,
            "well_formed": is_well_formed(t),
            "turns": len(t.turns),
            "advantage": float(a),
            "flat": bool(z),
            "modulated": bool(f != 1.0),
        }
        for t, a, z, f in zip(trajectories, advantages, flat, factors)
    ]


def _rollout_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    summary = summarise([r["record"] for r in rows])
    adv = np.array([r["advantage"] for r in rows])
    out: dict[str, float] = {"train/reward": float(np.mean([r["reward"] for r in rows]))}
    for key in ("accuracy", "format", "evidence", "crop", "frame"):
        out[f"train/reward_{key}"] = float(np.mean([r["parts"].get(key, 0.0) for r in rows]))
    out.update(
        {
            "train/tool_call_rate": float(np.mean([r["used_tool"] for r in rows])),
            "train/tool_calls": summary.get("tool_calls"),
            "train/mIoU": summary.get("mIoU"),
            "train/evidence_mIoU": summary.get("evidence_mIoU"),
            "train/well_formed": float(np.mean([r["well_formed"] for r in rows])),
            "train/turns": float(np.mean([r["turns"] for r in rows])),
            "train/advantage_mean": float(adv.mean()),
            "train/advantage_std": float(adv.std()),
            "train/advantage_abs": float(np.abs(adv).mean()),
            "train/zero_variance_share": float(np.mean([r["flat"] for r in rows])),
            "train/modulated_share": float(np.mean([r["modulated"] for r in rows])),
            "train/rollouts": float(len(rows)),
        }
    )
    return out


def _evaluate(policy: HFVLMPolicy, envs, ids: Sequence[str], cfg: GRPOConfig, seed: int) -> dict[str, float]:
    import torch

    torch.manual_seed(seed)
    requests = sample_requests([sid for _ in range(cfg.eval_repeats) for sid in ids], seed=seed)
    with torch.no_grad():
        trajectories = rollout(policy, envs, requests)
    return summarise_trajectories(trajectories)["overall"]


# ---------------------------------------------------------------------------------------------- model & state
def _sampling_config(cfg: GRPOConfig, base: VLMPolicyConfig) -> VLMPolicyConfig:
    policy = VLMPolicyConfig.from_dict(base.to_dict())
    policy.sampling.temperature = cfg.temperature
    policy.sampling.top_p = cfg.top_p
    if cfg.max_new_tokens is not None:
        policy.sampling.max_new_tokens = cfg.max_new_tokens
    policy.device, policy.seed = cfg.device, None
    return policy


def _eval_config(cfg: GRPOConfig, base: VLMPolicyConfig) -> VLMPolicyConfig:
    policy = _sampling_config(cfg, base)
    policy.sampling.temperature = cfg.eval_temperature
    policy.sampling.top_p = 1.0
    return policy


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.default_rng([seed, step, rank]).integers(2**62))


def _model_dtype(device):
    import torch

    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _load_model(cfg: GRPOConfig, resume_from: Path | None, device):
    # LoRA: the frozen base in bf16 on CUDA (adapters fp32); full fine-tuning: fp32 master weights
    model = load_trainable_model(cfg, resume_from, lora_base_dtype=_model_dtype(device))
    if cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else device.type == "cuda":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model.to(device)


def _load_reference(cfg: GRPOConfig, device):
    from transformers import AutoModelForImageTextToText

    ref = AutoModelForImageTextToText.from_pretrained(cfg.model, dtype=_model_dtype(device)).to(device).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def _rng_state() -> dict[str, Any]:
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _save_checkpoint(accelerator, model, optimizer, scheduler, out: Path, step: int, cfg: GRPOConfig) -> None:
    import torch

    if not accelerator.is_main_process:
        return
    with atomic_directory(checkpoint_dir(out, step)) as tmp:
        accelerator.unwrap_model(model).save_pretrained(tmp / ("adapter" if cfg.lora else "model"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(_rng_state(), tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "max_steps": cfg.max_steps}) + "\n")
    prune_checkpoints(out, cfg.keep_checkpoints)


def _load_state(checkpoint: Path, optimizer, scheduler) -> int:
    import torch

    state = json.loads((checkpoint / "trainer_state.json").read_text())
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    rng = torch.load(checkpoint / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["step"])


def _progress_bar(cfg: GRPOConfig, step: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.max_steps, initial=step, desc="grpo", unit="step")
