"""SFT cold start: next-token loss on the assistant's own tokens of reference trajectories.

The data are real env rollouts: :class:`medscope_gym.agents.scripted.OraclePolicy` plays the suite's train
split
through the env, and :class:`medscope_gym.agents.vlm.policy.ReferencePolicy` lays its turns out as token
chunks
exactly as :class:`~medscope_gym.agents.vlm.policy.HFVLMPolicy` will see and produce them at evaluation (same
chat
template deltas, same frame reduction, same stop tokens). The loss covers the action tokens only
(``Trajectory.loss_mask``): prompts, tool responses and vision placeholders are masked.

A model trained on flawless episodes only has never seen an error message, and a small one that makes
a mistake (an empty crop interval, broken JSON) then derails. :class:`RecoveringOracle` therefore
starts a seeded share of the reference episodes (``recovery_rate``) with one typical mistake; the env
answers with its error observation and the oracle carries on as usual. The mistaken turn stays in the
context but is flagged ``imitate=False`` and left out of the loss, so the model learns the recovery,
not the mistake.

Training goes through the shared scaffold (:mod:`medscope_gym.agents.training`): ``accelerate``
(device placement; bf16 autocast on CUDA, fp32 on CPU), optional LoRA (peft), checkpoints every
``save_every`` steps (model or adapter, optimizer, scheduler, step, RNG, data-stream position; written
atomically) with exact resume from the latest one, a tqdm progress bar, and the loss in ``metrics.jsonl``
(``train/loss``, ``train/lr``, ``train/assistant_tokens`` per step) drawn to ``loss.png``. The final
model is saved as a plain checkpoint (LoRA merged) that loads back with ``HFVLMPolicy.from_pretrained``
like any other.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.rollout.batching import trajectory_batch
from medscope_gym.agents.rollout.trajectory import Trajectory, load_trajectories, save_trajectories
from medscope_gym.agents.scripted import OraclePolicy, SearchingOracle, SearchStyle
from medscope_gym.agents.sft.config import SFTConfig
from medscope_gym.agents.training.accelerator import seed_everything, setup_accelerator
from medscope_gym.agents.training.checkpoints import (
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint_if_due,
)
from medscope_gym.agents.training.metrics import MetricsLog, progress_bar, quiet_transformers, read_metrics
from medscope_gym.agents.training.models import load_trainable_model, save_final_model
from medscope_gym.agents.training.streaming import IndexStream
from medscope_gym.agents.vlm.encoding import ChatEncoder
from medscope_gym.agents.vlm.policy import VLMPolicyConfig
from medscope_gym.atomic import atomic_write_figure, atomic_write_text
from medscope_gym.protocol import format_tool_call
from medscope_gym.suite import Sample

__all__ = [
    "RecoveringOracle",
    "build_reference_data",
    "masked_lm_loss",
    "plot_loss",
    "train_sft",
]


class RecoveringOracle(Policy):
    """The oracle, opening a seeded share of episodes with one typical mistake it then recovers from.

    With ``jitter`` > 0 s the oracle is shown each evidence window widened by a seeded 0..jitter s on
    either side (still covering the true window), so repeated rollouts of a question crop, and mention,
    different numbers: a small model then learns the number format instead of memorising strings.
    """

    name = "oracle"
    uses_ground_truth = True
    MISTAKES = ("swapped", "past_end", "broken_json")

    def __init__(
        self,
        rate: float,
        seed: int = 0,
        jitter: float = 0.0,
        decimals: int | None = None,
        tools: bool = True,
        crop_to_preview: bool = False,
        search: bool = False,
        list_crops: int = 0,
        style: SearchStyle | None = None,
    ) -> None:
        self.inner: Policy = (
            SearchingOracle(decimals=decimals, list_crops=list_crops, style=style)
            if search
            else OraclePolicy(decimals=decimals, tools=tools, crop_to_preview=crop_to_preview)
        )
        self.rate = rate
        self.jitter = jitter
        self.rng = np.random.default_rng(seed)
        self._pending: dict[int, str | None] = {}
        self._last_mistake: dict[int, bool] = {}

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        if sample is not None and self.jitter > 0:
            sample = self._widened(sample, float(info["duration"]))
        self.inner.begin(slot, obs, info, sample)
        stumble = self.rate > 0 and self.rng.random() < self.rate
        self._pending[slot] = str(self.rng.choice(self.MISTAKES)) if stumble else None
        self._last_mistake[slot] = False

    def act(self, slots, observations, infos) -> list[str]:
        out: list[str | None] = [None] * len(slots)
        normal = [i for i, slot in enumerate(slots) if self._pending.get(slot) is None]
        if normal:
            texts = self.inner.act(
                [slots[i] for i in normal], [observations[i] for i in normal], [infos[i] for i in normal]
            )
            for i, text in zip(normal, texts):
                out[i] = text
                self._last_mistake[slots[i]] = False
        for i, slot in enumerate(slots):
            if out[i] is None:
                out[i] = self._mistake(str(self._pending[slot]), float(infos[i]["duration"]))
                self._pending[slot] = None
                self._last_mistake[slot] = True
        return [str(t) for t in out]

    def _widened(self, sample: Sample, duration: float) -> Sample:
        windows = []
        for start, end in sample.evidence:
            if end > start:  # widen outwards, to 0.1 s, so the window still covers the true one
                start = math.floor(max(0.0, start - float(self.rng.uniform(0, self.jitter))) * 10) / 10
                end = min(duration, math.ceil((end + float(self.rng.uniform(0, self.jitter))) * 10) / 10)
            windows.append((start, end))
        return dataclasses.replace(sample, evidence=tuple(windows))

    def imitate_last(self, slot: int) -> bool:
        """False when the slot's last turn was the deliberate mistake."""
        return not self._last_mistake.get(slot, False)

    def _mistake(self, kind: str, duration: float) -> str:
        a = round(float(self.rng.uniform(0.2, 0.8) * duration), 1)
        b = round(min(duration, a + float(self.rng.uniform(2.0, 10.0))), 1)
        think = "I look at the interval where the evidence should be."
        if kind == "swapped":
            return format_tool_call("crop_video", {"start_time": b, "end_time": a}, think=think)
        if kind == "past_end":
            return format_tool_call(
                "crop_video",
                {"start_time": round(duration + a, 1), "end_time": round(duration + b, 1)},
                think=think,
            )
        return (
            format_tool_call("crop_video", {"start_time": a, "end_time": b}, think=think)[
                : -len("}</tool_call>")
            ]
            + "</tool_call>"
        )


def build_reference_data(
    model_path: str,
    suite: str,
    split: str,
    policy_cfg: VLMPolicyConfig,
    repeats: int = 1,
    seed: int = 0,
    num_envs: int = 4,
    limit: int | None = None,
    recovery_rate: float = 0.0,
    evidence_jitter: float = 0.0,
    decimals: int | None = None,
    model_turns: int = 0,
    first_repeat: int = 0,
    temperature: float | None = None,
    reference: str = "oracle",
    progress: bool = False,
    crop_to_preview: bool = False,
    style: SearchStyle | None = None,
    uniform: tuple[int, int] = (1, 16),
) -> list[Trajectory]:
    """Oracle rollouts through the env on ``split``, tokenised as the policy will see them.

    ``model_turns`` > 0 lets the model at ``model_path`` open each episode for 1..``model_turns``
    turns (sampling at ``temperature``, None: its own setting) before the oracle takes over
    (:class:`medscope_gym.agents.sft.dagger.ModelThenReference`); episodes the model ends itself are dropped.
    ``first_repeat`` offsets the env seeds so that several calls play distinct episodes. ``progress``
    shows a bar over the episodes. ``crop_to_preview``: the oracle crops between the preview frames
    around the evidence (:class:`~medscope_gym.agents.scripted.OraclePolicy`). ``style``: how the
    search reference writes its steps after a crop listing
    (:class:`~medscope_gym.agents.scripted.SearchStyle`). ``uniform``: (crops, frames per crop) of the
    "uniform" reference; its env caps each crop at that many frames and allows only those crops
    (``policy_cfg`` must show them all: ``frames.max_crop_frames`` at least frames per crop).
    """
    from transformers import AutoProcessor

    from medscope_gym.agents.rollout.engine import EpisodeRequest, make_vector_env, rollout
    from medscope_gym.agents.uniform_frames import UniformReference
    from medscope_gym.agents.vlm.policy import ReferencePolicy
    from medscope_gym.envs.clinvideo import ClinVideoEnv
    from medscope_gym.suite import Suite
    from medscope_gym.tools import ToolConfig

    loaded = Suite.from_spec(suite, split=split)
    if limit is not None:
        loaded = Suite(loaded.root, list(loaded)[:limit])
    processor = AutoProcessor.from_pretrained(model_path)
    encoder = ChatEncoder(processor, policy_cfg.frames, policy_cfg.system_prompt)
    requests = [
        EpisodeRequest(sample_id=s.id, seed=seed + r * len(loaded) + i)
        for r in range(first_repeat, first_repeat + repeats)
        for i, s in enumerate(loaded)
    ]
    env_kwargs: dict[str, Any] = {}
    if reference == "uniform":
        crops, per_crop = uniform
        if policy_cfg.frames.max_crop_frames < per_crop:
            raise ValueError(
                f"the uniform reference crops {per_crop} frames but the policy is shown at most "
                f"{policy_cfg.frames.max_crop_frames} (frames.max_crop_frames)"
            )
        tools = ToolConfig.from_any(loaded.tool_settings())
        env_kwargs = {"tools": dataclasses.replace(tools, crop_max_frames=per_crop), "max_tool_calls": crops}
    envs = make_vector_env(lambda: ClinVideoEnv(loaded, **env_kwargs), min(num_envs, len(requests)))
    try:
        if reference == "uniform":
            oracle: Policy = UniformReference(*uniform, decimals=decimals, style=style)
        else:
            oracle = RecoveringOracle(
                recovery_rate,
                seed + first_repeat,
                evidence_jitter,
                decimals,
                tools=reference != "answer_only",
                crop_to_preview=crop_to_preview,
                search=reference == "search",
                list_crops=policy_cfg.frames.max_crop_frames if policy_cfg.frames.crops_as_frames else 0,
                style=style,
            )
        if model_turns <= 0:
            return rollout(ReferencePolicy(oracle, encoder), envs, requests, progress=progress)
        from medscope_gym.agents.sft.dagger import ModelThenReference
        from medscope_gym.agents.vlm.policy import HFVLMPolicy

        model_cfg = VLMPolicyConfig.from_dict(policy_cfg.to_dict())
        model_cfg.seed = seed + first_repeat
        if temperature is not None:
            model_cfg.sampling.temperature = temperature
        model = HFVLMPolicy.from_pretrained(model_path, config=model_cfg)
        policy = ModelThenReference(model, oracle, model_turns, seed + first_repeat)
        played = rollout(policy, envs, requests, progress=progress)
        return [t for t in played if any(t.loss_mask())]
    finally:
        envs.close()


def masked_lm_loss(logits, input_ids, action_mask):
    """Mean next-token cross-entropy over positions whose *target* token is the policy's own.

    ``logits[:, t]`` predicts ``input_ids[:, t + 1]``; only targets with ``action_mask`` = 1 count.
    """
    import torch

    targets = input_ids[:, 1:]
    mask = action_mask[:, 1:].bool()
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (nll * mask).sum() / mask.sum().clamp(min=1)


def _vision(traj: Trajectory, encoder: ChatEncoder) -> list[dict[str, Any]]:
    """Processor tensors of one trajectory's frames, checked against the recorded grids.

    Made per batch, not once for the run: float pixel tensors of a few thousand trajectories take
    gigabytes (2,400 testbed episodes: ~8 GB), the processor call costs milliseconds, and the result is
    the same either way."""
    vision = [encoder.process_media(turn.media) for turn in traj.turns]
    for turn, v in zip(traj.turns, vision):
        grid = v.get("video_grid_thw")
        if grid is not None and grid.tolist() != turn.video_grid_thw:
            raise ValueError(
                f"trajectory {traj.uid}: re-processed video grid {grid.tolist()} differs from the "
                f"recorded {turn.video_grid_thw} (different processor settings?)"
            )
    return vision


def _lr_lambda(cfg: SFTConfig):
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _reference_trajectories(cfg: SFTConfig, policy_cfg: VLMPolicyConfig, data_dir: Path, reuse: bool):
    """The run's training data: reloaded from ``data_dir`` on resume, else played and saved there."""
    if reuse and data_dir.exists():
        return load_trajectories(data_dir)
    trajectories = build_reference_data(
        cfg.model,
        cfg.suite,
        cfg.train_split,
        policy_cfg,
        cfg.repeats,
        cfg.seed,
        limit=cfg.limit,
        recovery_rate=cfg.recovery_rate,
        evidence_jitter=cfg.evidence_jitter,
        decimals=cfg.decimals,
        reference=cfg.reference,
        progress=cfg.progress,
        crop_to_preview=cfg.crop_to_preview,
        style=cfg.style,
        uniform=(cfg.uniform_crops, cfg.uniform_frames),
    )
    if cfg.on_policy_repeats > 0:
        on_policy = build_reference_data(
            cfg.model,
            cfg.suite,
            cfg.train_split,
            policy_cfg,
            cfg.on_policy_repeats,
            cfg.seed,
            num_envs=8,
            limit=cfg.limit,
            evidence_jitter=cfg.evidence_jitter,
            decimals=cfg.decimals,
            model_turns=cfg.on_policy_turns,
            first_repeat=cfg.repeats,
            temperature=cfg.on_policy_temperature,
            reference=cfg.reference,
            progress=cfg.progress,
            crop_to_preview=cfg.crop_to_preview,
            style=cfg.style,
            uniform=(cfg.uniform_crops, cfg.uniform_frames),
        )
        print(f"sft: {len(on_policy)} on-policy episodes opened by {cfg.model} (its turns not imitated)")
        trajectories += on_policy
    save_trajectories(data_dir, trajectories)
    return trajectories


def train_sft(cfg: SFTConfig, auxiliary: Callable[[Any], Any] | None = None) -> Path:
    """Run SFT; returns the folder of the final checkpoint (``out/final``).

    ``auxiliary(model)``, when given, is a second loss added to every micro-batch's (logged as
    ``train/auxiliary_loss``): the recipe rehearses Stage I's examples this way
    (:class:`medscope_gym.agents.recipe.perception.Rehearsal`). It must draw its data deterministically
    from its own state; when it has ``state_dict()`` and ``load_state_dict(state)`` (JSON), its position
    is saved with each checkpoint and a resumed run goes on from it, else its stream starts afresh."""
    import torch
    from transformers import AutoProcessor

    # ---- run folder, device, seeds
    quiet_transformers()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    policy_cfg = cfg.policy or VLMPolicyConfig.load(cfg.model) or VLMPolicyConfig()
    if cfg.reference == "uniform":  # the model is shown every frame of the reference's crops
        policy_cfg.frames.max_crop_frames = max(policy_cfg.frames.max_crop_frames, cfg.uniform_frames)
    cfg.policy = policy_cfg
    accelerator, _ = setup_accelerator(cfg.device, grad_accum=cfg.grad_accum, threads=cfg.threads)
    main = accelerator.is_main_process
    if main:
        remove_stale_temporaries(out)
    seed_everything(cfg.seed)

    # ---- data: reference trajectories, tokenised (their processor tensors are made per batch)
    resume_from = latest_checkpoint(out) if cfg.resume else None
    trajectories = _reference_trajectories(cfg, policy_cfg, out / "data", reuse=resume_from is not None)
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    processor = AutoProcessor.from_pretrained(cfg.model)
    encoder = ChatEncoder(processor, policy_cfg.frames, policy_cfg.system_prompt)
    if trajectories:
        _vision(trajectories[0], encoder)  # a processor that does not match the data fails here, not mid-run
    n_tokens = sum(sum(t.loss_mask()) for t in trajectories)
    print(
        f"sft: {len(trajectories)} reference trajectories, {n_tokens} assistant tokens "
        f"(of {sum(len(t.input_ids()) for t in trajectories)}), device {accelerator.device}"
    )

    # ---- model, optimizer, schedule, data stream; restored from the latest checkpoint on resume
    model = load_trainable_model(cfg, resume_from)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    stream = IndexStream(len(trajectories), cfg.seed)
    step = 0
    if resume_from is not None:
        state = load_checkpoint(
            resume_from, optimizer, scheduler, examples_per_step=cfg.batch_size * cfg.grad_accum
        )
        step, stream.position = state.step, state.stream_position
        if auxiliary is not None and hasattr(auxiliary, "load_state_dict") and state.extra:
            auxiliary.load_state_dict(state.extra["auxiliary"])
        print(f"sft: resumed from {resume_from} at step {step}")
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()

    pad_id = processor.tokenizer.pad_token_id
    log = MetricsLog(out, resume_step=step, tensorboard=False, name="sft") if main else None
    bar = progress_bar(cfg.progress and main, cfg.max_steps, step, "sft")
    position = getattr(auxiliary, "state_dict", None)  # the rehearsal's place in its stream, as JSON
    auxiliary_state = (lambda: {"auxiliary": position()}) if position is not None else None
    while step < cfg.max_steps:
        # one optimizer step: grad_accum micro-batches of batch_size trajectories, gradients summed
        losses, extra, tokens = [], [], 0
        for _micro in range(cfg.grad_accum):
            chosen = stream.take(cfg.batch_size)
            batch = trajectory_batch(
                [trajectories[i] for i in chosen],
                encoder,
                pad_id=pad_id,
                vision=[_vision(trajectories[i], encoder) for i in chosen],
                device=accelerator.device,
            )
            mask = batch.pop("loss_mask")
            batch.pop("action_mask"), batch.pop("behaviour_logprobs")
            with accelerator.accumulate(model), accelerator.autocast():
                logits = model(**batch).logits
                loss = masked_lm_loss(logits, batch["input_ids"], mask)
                if auxiliary is not None:
                    aux = auxiliary(model)
                    extra.append(float(aux.detach()))
                    accelerator.backward(loss + aux)
                else:
                    accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            losses.append(float(loss.detach()))
            tokens += int(mask[:, 1:].sum())
        step += 1

        # bookkeeping: metrics, progress, checkpoint
        mean_loss = float(np.mean(losses))
        if log is not None:
            log.log(
                step,
                {
                    "train/loss": mean_loss,
                    "train/lr": scheduler.get_last_lr()[0],
                    "train/assistant_tokens": tokens,
                    **({"train/auxiliary_loss": float(np.mean(extra))} if extra else {}),
                },
            )
        if bar is not None:
            bar.update(1)
            if step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{mean_loss:.4f}")
        if main:
            unwrapped = accelerator.unwrap_model(model)
            save_checkpoint_if_due(
                out, cfg, step, stream.position, unwrapped, optimizer, scheduler, auxiliary_state
            )
            plot_loss(out, out / "loss.png")
    if bar is not None:
        bar.close()

    final = out / "final"
    if main:
        save_final_model(accelerator.unwrap_model(model), processor, policy_cfg, final, cfg.lora)
        plot_loss(out, out / "loss.png")
        held_out = _held_out_evaluation(cfg, final, out / "eval")
        if held_out:
            log.log(step, {f"eval/{k}": held_out.get(k) for k in HELD_OUT_METRICS})
        log.close()
    accelerator.wait_for_everyone()
    return final


#: Overall metrics of the final held-out evaluation logged as eval/<name> in metrics.jsonl.
HELD_OUT_METRICS = ("well_formed", "accuracy", "format_rate", "mIoU", "evidence_mIoU", "tool_calls", "reward")


def _held_out_evaluation(cfg: SFTConfig, final: Path, out: Path) -> dict[str, Any] | None:
    """Greedy episodes of the final model on ``eval_limit`` questions of ``eval_split``, printed (the
    machinery of ``medscope eval``); their overall metrics, or None when there is nothing to evaluate."""
    from medscope_gym.agents.evaluate import EvalConfig, evaluate, format_summary
    from medscope_gym.suite import Suite

    if cfg.eval_limit == 0:
        return None
    n = sum(s.split == cfg.eval_split for s in Suite.from_spec(cfg.suite))
    if n == 0:
        print(f"sft: {cfg.suite} has no {cfg.eval_split} questions: no held-out evaluation")
        return None
    eval_cfg = EvalConfig(
        policy=str(final),
        suite=cfg.suite,
        splits=(cfg.eval_split,),
        limit=cfg.eval_limit,
        temperature=0.0,
        seed=cfg.seed,
        device=cfg.device,
        threads=cfg.threads,
        progress=cfg.progress,
        out=str(out),
    )
    print(f"sft: held-out evaluation on {min(n, cfg.eval_limit)} {cfg.eval_split} questions (greedy)")
    summary, _ = evaluate(eval_cfg)
    overall = summary["overall"]
    print(format_summary(summary))
    print(
        f"sft: held-out {cfg.eval_split}: well_formed {overall['well_formed']:.3f}, accuracy "
        f"{overall['accuracy']:.3f} over {overall['episodes']} questions; episodes: medscope view {out}"
    )
    return overall


def plot_loss(run: Path, png_path: Path) -> None:
    """Loss curve (raw and a 20-step moving mean) from a run's metrics.jsonl; skipped without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = [r for r in read_metrics(run) if r.get("train/loss") is not None]
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["train/loss"]) for r in rows])
    window = min(20, len(loss))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, alpha=0.3, label="loss")
    ax.plot(steps[window - 1 :], smooth, label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("assistant-token cross-entropy")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    try:
        atomic_write_figure(png_path, fig, dpi=100)
    finally:
        plt.close(fig)
