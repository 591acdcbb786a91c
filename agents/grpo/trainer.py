"""GA-GRPO: grounding-aware group-relative policy optimisation of a VLM on ClinVideoEnv (docs/ga-grpo.md).

One step, read top to bottom in :func:`train_grpo`:

1. **Rollouts.** B questions of the train split (a seeded, resumable stream over shuffled epochs),
   G rollouts each from identical resets, played by the current policy through the vector env
   (:func:`medscope_gym.agents.rollout.engine.rollout`). Every trajectory keeps the exact token ids the
   model sampled and their behaviour log-probs.
2. **Advantages.** R_i is the env's trajectory reward (any preset). A_i = R_i − group mean (÷ std
   optionally); then the evidence modulation (:mod:`medscope_gym.agents.grpo.advantages`) for
   tool-using rollouts with a valid evidence score. Groups with no reward spread are counted and (by
   default) skipped.
3. **Update** (:func:`_policy_update`). ``update_epochs`` passes over the batch in shuffled minibatches;
   each minibatch is one optimizer step on the token-mean PPO-clipped surrogate
   (:mod:`medscope_gym.agents.grpo.loss`) over the model's own tokens, with behaviour log-probs as the
   old policy. Optional k3 KL against the frozen start model (the adapter-disabled base under LoRA).
   Non-finite losses or gradients stop the run with the step and minibatch named.
4. **Bookkeeping.** Metrics (every reward part, advantage stats, tool-call rate, mIoU, KL, clip
   fraction, tokens/s) to metrics.jsonl and TensorBoard; held-out evaluation every ``eval_every``
   steps; checkpoints (model or adapter, optimizer, scheduler, RNG, step, data-stream position) written
   atomically; exact resume.

Devices, checkpoints, metrics and the data stream come from the shared scaffold
(:mod:`medscope_gym.agents.training`): CPU (fp32), CUDA (bf16, gradient checkpointing), several GPUs or
nodes with ``accelerate launch`` (DDP): each process runs its own env shard and its own slice of the
step's questions, groups whole, and gradients are averaged across processes.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.evaluate import is_well_formed, summarise_trajectories
from medscope_gym.agents.grpo.advantages import evidence_factors, group_advantages
from medscope_gym.agents.grpo.config import GRPOConfig
from medscope_gym.agents.grpo.loss import clipped_surrogate
from medscope_gym.agents.rollout.batching import shared_vision_features, trajectory_batch
from medscope_gym.agents.rollout.engine import group_requests, make_vector_env, rollout, sample_requests
from medscope_gym.agents.rollout.trajectory import Trajectory, save_trajectories
from medscope_gym.agents.training.accelerator import seed_everything, setup_accelerator
from medscope_gym.agents.training.checkpoints import (
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint_if_due,
)
from medscope_gym.agents.training.metrics import MetricsLog, progress_bar, quiet_transformers
from medscope_gym.agents.training.models import load_trainable_model, model_dtype, save_final_model
from medscope_gym.agents.training.streaming import IndexStream
from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig
from medscope_gym.agents.vlm.sampling import token_logprobs
from medscope_gym.atomic import atomic_write_text
from medscope_gym.errors import ConfigError, MedScopeError
from medscope_gym.metrics import summarise

__all__ = [
    "Learner",
    "TrainingDivergedError",
    "UpdateBatch",
    "evidence_scores",
    "sequence_logprobs",
    "train_grpo",
]

#: Overall metrics of a held-out evaluation that are logged as eval/<name>.
EVAL_METRICS = (
    "reward",
    "accuracy",
    "mIoU",
    "evidence_mIoU",
    "evidence_R@0.5",
    "R@0.3",
    "R@0.5",
    "R@0.7",
    "tool_calls",
    "format_rate",
    "well_formed",
)


class TrainingDivergedError(MedScopeError):
    """A loss or gradient became NaN/inf: the run stops rather than write corrupted weights."""


@dataclass
class Learner:
    """The policy being trained and everything that updates or scores it (built once per run)."""

    model: Any
    """The trained model, as ``accelerator.prepare`` returned it."""
    optimizer: Any
    scheduler: Any
    accelerator: Any
    policy: HFVLMPolicy
    """The sampling policy on ``model``: its encoder, pad id, suppressed ids and temperature score tokens."""
    reference: Any = None
    """Frozen start model of the KL term (None: no KL, or LoRA, whose adapter-free base is the reference)."""
    params: list[Any] = field(init=False)
    """The trainable parameters (gradient clipping)."""

    def __post_init__(self) -> None:
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    @property
    def temperature(self) -> float:
        return self.policy.config.sampling.temperature


@dataclass
class UpdateBatch:
    """What one step's update trains on: the kept rollouts, their advantages, their processor tensors."""

    step: int
    """Steps done before this one (errors name step + 1)."""
    trajectories: list[Trajectory]
    advantages: np.ndarray
    vision: list[list[dict[str, Any]]]
    """Per trajectory and turn, the processor outputs fed at sampling time (re-computed for loaded ones)."""

    @classmethod
    def of(cls, step: int, trajectories: list[Trajectory], advantages: np.ndarray, encoder) -> UpdateBatch:
        vision = [
            [
                turn.vision if turn.vision is not None else encoder.process_media(turn.media)
                for turn in t.turns
            ]
            for t in trajectories
        ]
        return cls(step, trajectories, advantages, vision)


# ---------------------------------------------------------------------------------------------- main loop
def train_grpo(cfg: GRPOConfig) -> Path:
    """Run GA-GRPO; returns the final checkpoint folder (``out/final``, LoRA merged)."""
    import torch
    from transformers import AutoProcessor

    from medscope_gym.envs.clinvideo import ClinVideoEnv
    from medscope_gym.suite import Suite

    # ---- run folder and processes
    quiet_transformers()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    accelerator, device = setup_accelerator(cfg.device, threads=cfg.threads)
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    if cfg.questions_per_step % world:
        raise ConfigError(
            f"questions_per_step ({cfg.questions_per_step}) must divide by the {world} processes"
        )
    if main:
        remove_stale_temporaries(out)
    seed_everything(cfg.seed)  # new LoRA adapters draw their initial weights; rollouts re-seed every step

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
                source, reward=cfg.reward, max_turns=cfg.max_turns, max_tool_calls=cfg.max_tool_calls
            ),
            cfg.num_envs,
        )

    envs = make_envs(suite)
    eval_envs = make_envs(eval_suite) if cfg.eval_suite else envs

    # ---- model, optimizer, data stream; restored from the latest checkpoint on resume
    resume_from = latest_checkpoint(out) if cfg.resume else None
    processor = AutoProcessor.from_pretrained(cfg.model)
    model = _load_model(cfg, resume_from, device)
    reference = _load_reference(cfg, device) if cfg.kl_coef > 0 and not cfg.lora else None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=cfg.learning_rate, betas=cfg.adam_betas, weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: min(1.0, (k + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    )
    stream = IndexStream(len(train_ids), cfg.seed)
    step = 0
    if resume_from is not None:
        state = load_checkpoint(resume_from, optimizer, scheduler, examples_per_step=cfg.questions_per_step)
        step, stream.position = state.step, state.stream_position
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
    learner = Learner(model, optimizer, scheduler, accelerator, policy, reference)
    log = MetricsLog(out, resume_step=step, tensorboard=cfg.tensorboard, name="grpo") if main else None
    local_questions = cfg.questions_per_step // world

    evaluations: dict[str, dict[str, float]] = {}  # the first and the latest held-out row, for the end

    def evaluate_now(at_step: int) -> dict[str, float]:
        if not eval_ids:
            return {}
        summary, played = _evaluate(eval_policy, eval_envs, eval_ids, cfg, seed=cfg.seed + 7919)
        if log is not None and summary:
            log.log(at_step, {f"eval/{k}": summary.get(k) for k in EVAL_METRICS})
        if cfg.save_eval:
            _save_evaluation(out / "eval" / f"step-{at_step}", played, summary, cfg)
        _print_evaluation(at_step, summary)
        evaluations.setdefault("first", {**summary, "step": at_step})
        evaluations["last"] = {**summary, "step": at_step}
        return summary

    if step == 0 and main and cfg.eval_at_start:
        model.eval()
        evaluate_now(0)
    accelerator.wait_for_everyone()
    bar = progress_bar(cfg.progress and main, cfg.max_steps, step, "grpo")
    while step < cfg.max_steps:
        t0 = time.perf_counter()
        # 1. rollouts: this process's slice of the step's questions, G rollouts each
        chosen = stream.take(cfg.questions_per_step)[rank * local_questions : (rank + 1) * local_questions]
        questions = [train_ids[i] for i in chosen]
        seed = _step_seed(cfg.seed, step, rank)
        torch.manual_seed(seed)
        model.eval()
        requests = group_requests(questions, cfg.group_size, seed=seed % 2**31)
        with torch.no_grad(), accelerator.autocast():
            trajectories = rollout(policy, envs, requests)
        t_rollout = time.perf_counter() - t0

        # 2. rewards -> group advantages -> evidence modulation
        advantages, flat = group_advantages(
            [t.reward for t in trajectories],
            [t.group for t in trajectories],
            normalise_std=cfg.normalise_std,
            std_eps=cfg.std_eps,
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
        batch = UpdateBatch.of(step, [trajectories[i] for i in keep], advantages[keep], policy.encoder)
        update = _policy_update(learner, batch, cfg)
        t_update = time.perf_counter() - t1
        step += 1

        # 4. bookkeeping: metrics over every process's rollouts, evaluation, checkpoint
        if cfg.save_rollouts and main:
            save_trajectories(out / "rollouts" / f"step-{step}", trajectories)
        rows = _rollout_rows(trajectories, advantages, flat, factors)
        if world > 1:
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
        if main:
            unwrapped = accelerator.unwrap_model(model)
            save_checkpoint_if_due(out, cfg, step, stream.position, unwrapped, optimizer, scheduler)
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
        _print_before_after(evaluations, out)
    accelerator.wait_for_everyone()
    envs.close()
    if eval_envs is not envs:
        eval_envs.close()
    return final


# ---------------------------------------------------------------------------------------------- the update
def _policy_update(learner: Learner, batch: UpdateBatch, cfg: GRPOConfig) -> dict[str, float]:
    """``update_epochs`` passes of minibatch PPO-clip updates over ``batch``; returns the update's metrics.

    Each minibatch is one optimizer step; its micro-batches add their gradients (DDP syncs on the last).
    The loss is the surrogate summed over the minibatch's action tokens divided by their count (a token
    mean over the minibatch, however it is split into micro-batches).
    """
    if not batch.trajectories:
        return {"train/update_skipped": 1.0}
    rng = np.random.default_rng([cfg.seed, batch.step, 1])
    sums = _UpdateSums()
    for _epoch in range(cfg.update_epochs):
        order = rng.permutation(len(batch.trajectories))
        for mb_index, minibatch in enumerate(_chunks(order, cfg.minibatch_size)):
            n_tokens = sum(sum(batch.trajectories[i].action_mask()) for i in minibatch)
            micros = _chunks(minibatch, cfg.micro_batch_size)
            for k, micro in enumerate(micros):
                sync = k == len(micros) - 1
                loss, terms = _micro_backward(learner, batch, micro, n_tokens, mb_index, sync, cfg)
                sums.add_micro(loss, terms)
            sums.add_step(_optimizer_step(learner, batch.step, mb_index, cfg))
    return sums.metrics(kl=cfg.kl_coef > 0)


def _micro_backward(
    learner: Learner, batch: UpdateBatch, micro, n_tokens: int, mb_index: int, sync: bool, cfg: GRPOConfig
):
    """Forward and backward of one micro-batch; returns its loss (a float) and surrogate terms."""
    import torch

    accelerator, policy = learner.accelerator, learner.policy
    inputs = trajectory_batch(
        [batch.trajectories[i] for i in micro],
        policy.encoder,
        pad_id=policy.pad_id,
        vision=[batch.vision[i] for i in micro],
        device=accelerator.device,
    )
    no_sync = contextlib.nullcontext() if sync else accelerator.no_sync(learner.model)
    with no_sync, accelerator.autocast():
        # a group's shared preview goes through the vision tower once (its gradients add up as for copies)
        scored = shared_vision_features(learner.model, inputs, [batch.vision[i] for i in micro])
        logp, mask, old = sequence_logprobs(learner.model, scored, learner.temperature, policy.suppressed_ids)
        terms = clipped_surrogate(
            logp,
            old,
            batch.advantages[micro],
            mask,
            clip_eps=cfg.clip_eps,
            clip_eps_high=cfg.clip_eps_high,
            ref_logp=_reference_logprobs(learner, inputs, cfg),
            kl_coef=cfg.kl_coef,
        )
        loss = terms.loss / max(n_tokens, 1)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"step {batch.step + 1}: the loss of minibatch {mb_index} is {float(loss)} "
                f"(trajectories {[batch.trajectories[i].uid for i in micro]}); stopping before "
                "the weights are corrupted. Lower the learning rate or inspect those rollouts."
            )
        accelerator.backward(loss)
    return float(loss.detach()), terms


def _optimizer_step(learner: Learner, step: int, mb_index: int, cfg: GRPOConfig) -> float:
    """Clip the accumulated gradients, step the optimizer and the schedule; returns the gradient norm."""
    import torch

    grad_norm = learner.accelerator.clip_grad_norm_(
        learner.params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
    )
    if not torch.isfinite(torch.as_tensor(grad_norm)):
        raise TrainingDivergedError(
            f"step {step + 1}: gradient norm of minibatch {mb_index} is {float(grad_norm)}; stopping "
            "before the optimizer step. Lower the learning rate or enable max_grad_norm."
        )
    learner.optimizer.step()
    learner.scheduler.step()
    learner.optimizer.zero_grad(set_to_none=True)
    return float(grad_norm)


@dataclass
class _UpdateSums:
    """Running sums of one update: per-micro-batch surrogate terms, per-minibatch optimizer steps."""

    loss: float = 0.0
    clipped: float = 0.0
    ratio: float = 0.0
    kl: float = 0.0
    kl_behaviour: float = 0.0
    tokens: int = 0
    grad_norm: float = 0.0
    updates: int = 0

    def add_micro(self, loss: float, terms) -> None:
        self.clipped += terms.clipped
        self.ratio += terms.ratio
        self.kl += terms.kl
        self.kl_behaviour += terms.kl_behaviour
        self.tokens += terms.tokens
        self.loss += loss

    def add_step(self, grad_norm: float) -> None:
        self.grad_norm += grad_norm
        self.updates += 1

    def metrics(self, kl: bool) -> dict[str, float]:
        tokens = max(self.tokens, 1)
        updates = max(self.updates, 1)
        return {
            "train/loss": self.loss / updates,
            "train/clip_fraction": self.clipped / tokens,
            "train/ratio_mean": self.ratio / tokens,
            "train/kl": self.kl / tokens if kl else None,
            "train/kl_behaviour": self.kl_behaviour / tokens,
            "train/grad_norm": self.grad_norm / updates,
            "train/tokens": float(self.tokens),
            "train/updates": float(self.updates),
        }


def _chunks(items, size: int) -> list:
    return [items[k : k + size] for k in range(0, len(items), size)]


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


def _reference_logprobs(learner: Learner, inputs: dict[str, Any], cfg: GRPOConfig):
    """Log-probs under the frozen start policy (None when the KL term is off)."""
    import torch

    if cfg.kl_coef <= 0:
        return None
    temperature, suppressed = learner.temperature, learner.policy.suppressed_ids
    with torch.no_grad():
        if learner.reference is not None:
            return sequence_logprobs(learner.reference, inputs, temperature, suppressed)[0]
        model = learner.model
        unwrapped = model.module if hasattr(model, "module") else model
        with unwrapped.disable_adapter():  # LoRA: the base model is the reference
            return sequence_logprobs(model, inputs, temperature, suppressed)[0]


# ---------------------------------------------------------------------------------------------- metrics
def evidence_scores(trajectories: Sequence[Trajectory]) -> list[float | None]:
    """f_i: the evidence reward of tool-using rollouts, None for rollouts without a tool call.

    See docs/ga-grpo.md.
    """
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


def _evaluate(
    policy: HFVLMPolicy, envs, ids: Sequence[str], cfg: GRPOConfig, seed: int
) -> tuple[dict[str, float], list[Trajectory]]:
    """One held-out evaluation: its overall metrics and its trajectories."""
    import torch

    torch.manual_seed(seed)
    requests = sample_requests([sid for _ in range(cfg.eval_repeats) for sid in ids], seed=seed)
    with torch.no_grad():
        trajectories = rollout(policy, envs, requests, progress=cfg.progress)
    return summarise_trajectories(trajectories)["overall"], trajectories


def _save_evaluation(folder: Path, trajectories: list[Trajectory], summary: dict, cfg: GRPOConfig) -> None:
    """``folder``/trajectories and metrics.json: what ``medscope view`` reads (docs/viewer.md)."""
    save_trajectories(folder / "trajectories", trajectories)
    meta = {"policy": "grpo", "suite": cfg.eval_suite or cfg.suite, "splits": list(cfg.eval_splits)}
    atomic_write_text(folder / "metrics.json", json.dumps({**meta, "summary": summary}, indent=2) + "\n")


def _eval_line(summary: dict[str, Any]) -> str:
    return "  ".join(
        f"{k} {summary[k]:.3f}" if isinstance(summary.get(k), float) else f"{k} {summary.get(k) or '-'}"
        for k in ("reward", "accuracy", "well_formed", "format_rate", "mIoU", "evidence_mIoU", "tool_calls")
    )


def _print_evaluation(step: int, summary: dict[str, Any]) -> None:
    """One held-out row on the console, above the progress bar."""
    from tqdm import tqdm

    episodes = summary.get("episodes", 0)
    tqdm.write(f"grpo: held-out eval at step {step} ({episodes} episodes): {_eval_line(summary)}")


def _print_before_after(evaluations: dict[str, dict[str, Any]], out: Path) -> None:
    """The first held-out evaluation against the last one, as a table (docs/metrics.md)."""
    from medscope_gym.agents.evaluate import format_summary

    if "last" not in evaluations:
        return
    first, last = evaluations["first"], evaluations["last"]
    rows = {f"step {first['step']}": first, f"step {last['step']}": last}
    print(f"grpo: held-out evaluation, first vs last (every row in {out / 'metrics.jsonl'}):")
    print(format_summary(rows))
    if (out / "eval" / f"step-{first['step']}").is_dir() and first["step"] != last["step"]:
        print(f"grpo: compare their episodes: medscope view {out}/eval/step-{first['step']} {out}")


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


def _load_model(cfg: GRPOConfig, resume_from: Path | None, device):
    # LoRA: the frozen base in bf16 on CUDA (adapters fp32); full fine-tuning: fp32 master weights
    model = load_trainable_model(cfg, resume_from, lora_base_dtype=model_dtype(device))
    if cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else device.type == "cuda":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model.to(device)


def _load_reference(cfg: GRPOConfig, device):
    from transformers import AutoModelForImageTextToText

    ref = AutoModelForImageTextToText.from_pretrained(cfg.model, dtype=model_dtype(device)).to(device).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref
