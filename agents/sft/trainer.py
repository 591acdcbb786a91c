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

Training runs through ``accelerate`` (device placement; bf16 autocast on CUDA, fp32 on CPU), with
optional LoRA (peft), checkpoints every ``save_every`` steps (model, processor, optimizer, scheduler,
step; written atomically) and resume from the latest one, a tqdm progress bar, and a loss curve
(``loss.csv`` + ``loss.png``). The final model is saved as a plain checkpoint (LoRA merged) that loads
back with ``HFVLMPolicy.from_pretrained`` like any other.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.rollout.batching import trajectory_batch
from medscope_gym.agents.rollout.trajectory import Trajectory, load_trajectories, save_trajectories
from medscope_gym.agents.scripted import OraclePolicy
from medscope_gym.agents.vlm.checkpoints import (
    LORA_TARGETS,
    latest_checkpoint,
    load_trainable_model,
    prune_checkpoints,
    save_final_model,
)
from medscope_gym.agents.vlm.encoding import ChatEncoder
from medscope_gym.agents.vlm.policy import VLMPolicyConfig, resolve_device
from medscope_gym.atomic import atomic_directory, atomic_write_text
from medscope_gym.protocol import format_tool_call
from medscope_gym.suite import Sample

__all__ = [
    "RecoveringOracle",
    "SFTConfig",
    "build_reference_data",
    "masked_lm_loss",
    "plot_loss",
    "stream_indices",
    "train_sft",
]


@dataclass
class SFTConfig:
    """Settings of one SFT run (CLI: ``medscope train sft``)."""

    model: str
    """Checkpoint folder to start from (``from_pretrained``)."""
    data: str
    """Suite to build reference trajectories from: a folder or ``builtin:NAME``."""
    out: str
    """Run folder: data/, checkpoint-N/, final/, loss.csv, loss.png, config.json."""
    split: str = "train"
    """Suite split the reference trajectories come from."""
    repeats: int = 1
    """Reference rollouts per sample (distinct env seeds)."""
    recovery_rate: float = 0.0
    """Share of reference episodes that open with a deliberate, non-imitated mistake (see module doc)."""
    evidence_jitter: float = 0.0
    """Seconds (at most) by which the oracle widens each evidence window per rollout (varied numbers)."""
    decimals: int | None = None
    """Decimals of every number the reference writes (None: exact ground truth). 1 gives the tiny model
    one number format to learn (``27.5``), instead of annotation floats (``29.84``, ``63.975``)."""
    on_policy_repeats: int = 0
    """Extra episodes per sample that the start model (``model``) opens itself for 1..``on_policy_turns``
    turns before the oracle takes over; only the oracle's turns are imitated (DAgger-style recovery
    from the model's own mistakes, :mod:`medscope_gym.agents.sft.dagger`). Use it on a checkpoint that already
    follows the protocol (a second SFT round)."""
    on_policy_turns: int = 2
    """Most opening turns the model plays in an on-policy episode (the oracle then needs 3 more)."""
    on_policy_temperature: float | None = None
    """Sampling temperature of the model's opening turns (None: the checkpoint's own setting)."""
    limit: int | None = None
    """Use only the first ``limit`` samples of the split (quick runs, tests)."""
    max_steps: int = 1000
    """Optimizer steps (each on ``batch_size`` x ``grad_accum`` trajectories)."""
    batch_size: int = 1
    grad_accum: int = 1
    lr: float = 1e-4
    """Peak learning rate (AdamW); linear warmup then cosine decay to 10%."""
    warmup_steps: int = 20
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora: bool = False
    """Train LoRA adapters on the language model's attention/MLP projections instead of all weights."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = LORA_TARGETS
    freeze_vision: bool = False
    """Keep the vision tower fixed (full fine-tuning only)."""
    save_every: int = 250
    """Checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Older checkpoints beyond this many are deleted."""
    resume: bool = True
    """Continue from the latest checkpoint-N in ``out`` when there is one."""
    seed: int = 0
    device: str = "auto"
    """"auto": CUDA when available (bf16 autocast), else CPU (fp32)."""
    policy: VLMPolicyConfig | None = None
    """Frame budget / system prompt; None: the model folder's medscope_policy.json, else defaults."""
    log_every: int = 10
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["policy"] = self.policy.to_dict() if self.policy is not None else None
        return data


class RecoveringOracle(Policy):
    """The oracle, opening a seeded share of episodes with one typical mistake it then recovers from.

    With ``jitter`` > 0 s the oracle is shown each evidence window widened by a seeded 0..jitter s on
    either side (still covering the true window), so repeated rollouts of a question crop, and mention,
    different numbers: a small model then learns the number format instead of memorising strings.
    """

    name = "oracle"
    uses_ground_truth = True
    MISTAKES = ("swapped", "past_end", "broken_json")

    def __init__(self, rate: float, seed: int = 0, jitter: float = 0.0, decimals: int | None = None) -> None:
        self.inner = OraclePolicy(decimals=decimals)
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
) -> list[Trajectory]:
    """Oracle rollouts through the env on ``split``, tokenised as the policy will see them.

    ``model_turns`` > 0 lets the model at ``model_path`` open each episode for 1..``model_turns``
    turns (sampling at ``temperature``, None: its own setting) before the oracle takes over
    (:class:`medscope_gym.agents.sft.dagger.ModelThenReference`); episodes the model ends itself are dropped.
    ``first_repeat`` offsets the env seeds so that several calls play distinct episodes.
    """
    from transformers import AutoProcessor

    from medscope_gym.agents.rollout.engine import EpisodeRequest, make_vector_env, rollout
    from medscope_gym.agents.vlm.policy import ReferencePolicy
    from medscope_gym.envs.clinvideo import ClinVideoEnv
    from medscope_gym.suite import Suite

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
    envs = make_vector_env(lambda: ClinVideoEnv(loaded), min(num_envs, len(requests)))
    try:
        oracle = RecoveringOracle(recovery_rate, seed + first_repeat, evidence_jitter, decimals)
        if model_turns <= 0:
            return rollout(ReferencePolicy(oracle, encoder), envs, requests)
        from medscope_gym.agents.sft.dagger import ModelThenReference
        from medscope_gym.agents.vlm.policy import HFVLMPolicy

        model_cfg = VLMPolicyConfig.from_dict(policy_cfg.to_dict())
        model_cfg.seed = seed + first_repeat
        if temperature is not None:
            model_cfg.sampling.temperature = temperature
        model = HFVLMPolicy.from_pretrained(model_path, config=model_cfg)
        policy = ModelThenReference(model, oracle, model_turns, seed + first_repeat)
        played = rollout(policy, envs, requests)
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


def _vision(trajectories: list[Trajectory], encoder: ChatEncoder) -> list[list[dict[str, Any]]]:
    """Processor tensors of every turn's frames, computed once, checked against the recorded grids."""
    out = []
    for traj in trajectories:
        vision = [encoder.process_media(turn.media) for turn in traj.turns]
        for turn, v in zip(traj.turns, vision):
            grid = v.get("video_grid_thw")
            if grid is not None and grid.tolist() != turn.video_grid_thw:
                raise ValueError(
                    f"trajectory {traj.uid}: re-processed video grid {grid.tolist()} differs from the "
                    f"recorded {turn.video_grid_thw} (different processor settings?)"
                )
        out.append(vision)
    return out


def _lr_lambda(cfg: SFTConfig):
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train_sft(cfg: SFTConfig) -> Path:
    """Run SFT; returns the folder of the final checkpoint (``out/final``)."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoProcessor

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    policy_cfg = cfg.policy or VLMPolicyConfig.load(cfg.model) or VLMPolicyConfig()
    cfg.policy = policy_cfg
    device, _ = resolve_device(cfg.device)
    accelerator = Accelerator(
        cpu=device.type == "cpu",
        mixed_precision="bf16" if device.type == "cuda" else "no",
        gradient_accumulation_steps=cfg.grad_accum,
    )
    torch.manual_seed(cfg.seed)

    resume_from = latest_checkpoint(out) if cfg.resume else None
    data_dir = out / "data"
    if data_dir.exists() and resume_from is not None:
        trajectories = load_trajectories(data_dir)
    else:
        trajectories = build_reference_data(
            cfg.model,
            cfg.data,
            cfg.split,
            policy_cfg,
            cfg.repeats,
            cfg.seed,
            limit=cfg.limit,
            recovery_rate=cfg.recovery_rate,
            evidence_jitter=cfg.evidence_jitter,
            decimals=cfg.decimals,
        )
        if cfg.on_policy_repeats > 0:
            on_policy = build_reference_data(
                cfg.model,
                cfg.data,
                cfg.split,
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
            )
            print(f"sft: {len(on_policy)} on-policy episodes opened by {cfg.model} (its turns not imitated)")
            trajectories += on_policy
        save_trajectories(data_dir, trajectories)
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")

    processor = AutoProcessor.from_pretrained(cfg.model)
    encoder = ChatEncoder(processor, policy_cfg.frames, policy_cfg.system_prompt)
    vision = _vision(trajectories, encoder)
    n_tokens = sum(sum(t.loss_mask()) for t in trajectories)
    print(
        f"sft: {len(trajectories)} reference trajectories, {n_tokens} assistant tokens "
        f"(of {sum(len(t.input_ids()) for t in trajectories)}), device {accelerator.device}"
    )

    model = load_trainable_model(cfg, resume_from)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    step = 0
    if resume_from is not None:
        state = json.loads((resume_from / "trainer_state.json").read_text())
        step = int(state["step"])
        optimizer.load_state_dict(torch.load(resume_from / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(resume_from / "scheduler.pt", weights_only=True))
        print(f"sft: resumed from {resume_from} at step {step}")
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()

    tok = processor.tokenizer
    pad_id = tok.pad_token_id
    per_step = cfg.batch_size * cfg.grad_accum
    loss_log = out / "loss.csv"
    if step == 0 or not loss_log.exists():
        loss_log.write_text("step,loss,lr,assistant_tokens\n")
    else:  # drop rows a crashed run logged after its last checkpoint
        lines = loss_log.read_text().splitlines()
        kept = [lines[0]] + [line for line in lines[1:] if int(line.split(",")[0]) <= step]
        atomic_write_text(loss_log, "\n".join(kept) + "\n")
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_steps, initial=step, desc="sft", unit="step")
    while step < cfg.max_steps:
        losses, tokens = [], 0
        for micro in range(cfg.grad_accum):
            chosen = stream_indices(
                len(trajectories), cfg.seed, step * per_step + micro * cfg.batch_size, cfg.batch_size
            )
            batch = trajectory_batch(
                [trajectories[i] for i in chosen],
                encoder,
                pad_id=pad_id,
                vision=[vision[i] for i in chosen],
                device=accelerator.device,
            )
            mask = batch.pop("loss_mask")
            batch.pop("action_mask"), batch.pop("behaviour_logprobs")
            with accelerator.accumulate(model), accelerator.autocast():
                logits = model(**batch).logits
                loss = masked_lm_loss(logits, batch["input_ids"], mask)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            losses.append(float(loss.detach()))
            tokens += int(mask[:, 1:].sum())
        step += 1
        mean_loss = float(np.mean(losses))
        with open(loss_log, "a") as fh:
            fh.write(f"{step},{mean_loss:.6f},{scheduler.get_last_lr()[0]:.3e},{tokens}\n")
        if bar is not None:
            bar.update(1)
            if step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{mean_loss:.4f}")
        if step % cfg.save_every == 0 or step == cfg.max_steps:
            _save_checkpoint(accelerator, model, processor, optimizer, scheduler, policy_cfg, out, step, cfg)
            plot_loss(loss_log, out / "loss.png")
    if bar is not None:
        bar.close()
    final = out / "final"
    save_final_model(accelerator.unwrap_model(model), processor, policy_cfg, final, cfg.lora)
    plot_loss(loss_log, out / "loss.png")
    return final


def stream_indices(n: int, seed: int, start: int, count: int) -> list[int]:
    """Examples ``start .. start+count`` of an endless stream of per-epoch shuffles (resume-exact)."""
    out = []
    for k in range(start, start + count):
        epoch, pos = divmod(k, n)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[pos]))
    return out


def _save_checkpoint(
    accelerator, model, processor, optimizer, scheduler, policy_cfg, out: Path, step: int, cfg: SFTConfig
) -> None:
    import torch

    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    with atomic_directory(out / f"checkpoint-{step}") as tmp:
        unwrapped.save_pretrained(tmp / ("adapter" if cfg.lora else "model"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "max_steps": cfg.max_steps}) + "\n")
    prune_checkpoints(out, cfg.keep_checkpoints)


def plot_loss(csv_path: Path, png_path: Path) -> None:
    """Loss curve (raw and a 20-step moving mean) from loss.csv; skipped when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
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
    tmp = png_path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(png_path)
