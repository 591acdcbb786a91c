"""TRL's GRPO step throughput on ClinVideoEnv: the TRL side of the trainer-throughput benchmark.

:func:`trl_step_throughput` trains ``steps`` optimizer steps of TRL's ``GRPOTrainer`` through the adapter
(:mod:`medscope_gym.agents.trl.environment`) and times each one, generation, env tool calls, reward replay,
loss and
optimizer update included. One step = ``batch_questions`` questions × ``group_size`` rollouts, one
update (``num_iterations=1``, no gradient accumulation), AdamW in float32 on every weight (or on the
adapters of ``peft_config``), no KL term
(``beta=0``, TRL's default). Each turn is capped at ``max_new_tokens``; a rollout has at most the env's
``max_turns`` assistant turns (``max_tool_calling_iterations = max_turns - 1``).

When the checkpoint folder has a ``medscope_policy.json`` (the tiny model has one), its frame budget,
system prompt, sampling temperature / top-p / top-k and suppressed tokens are used, so both trainers see
the same prompts and frames. Measurement code of the source checkout (see :mod:`benchmarks`); torch,
transformers and trl are imported when a measurement runs.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from medscope_gym.agents.trl.chat_template import prepare_processing_class
from medscope_gym.agents.trl.dataset import build_dataset
from medscope_gym.agents.trl.environment import clinvideo_environment_factory
from medscope_gym.agents.trl.rewards import env_reward_funcs
from medscope_gym.agents.vlm.policy import VLMPolicyConfig
from medscope_gym.protocol import SYSTEM_PROMPT
from medscope_gym.suite import Suite

__all__ = ["trl_step_throughput"]


def trl_step_throughput(
    model_path: str,
    suite: str,
    *,
    steps: int,
    batch_questions: int,
    group_size: int,
    max_new_tokens: int,
    seed: int,
    split: str = "train",
    modality: str = "images",
    max_turns: int = 5,
    learning_rate: float = 1e-6,
    peft_config: Any = None,
) -> dict[str, Any]:
    """Wall time per TRL GRPO optimizer step and generated tokens per second.

    Args:
        model_path: a checkpoint folder (``AutoModelForImageTextToText`` + ``AutoProcessor``).
        suite: suite folder or ``"builtin:NAME"``.
        steps: optimizer steps to time (all of them are reported; the first includes warm-up).
        batch_questions: questions per step (B).
        group_size: rollouts per question (G, TRL's ``num_generations``).
        max_new_tokens: cap on each assistant turn.
        seed: TRL's seed (model init, data order, sampling).
        split, modality, max_turns, learning_rate: the suite split, ``"images"``/``"text"`` tool results,
            the env's turn budget and the AdamW learning rate.
        peft_config: a ``peft`` config (e.g. ``LoraConfig``) to train adapters instead of every weight.

    Returns:
        ``steps``, ``seconds_per_step`` (mean over all steps), ``step_seconds`` (each step),
        ``generated_tokens`` (the model's own tokens, tool results excluded), ``generated_tokens_per_s``,
        ``rollouts_per_step``, ``tool_calls_per_rollout``, ``mean_reward`` and the settings used.
    """
    import torch
    import trl
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    for name, value in (
        ("steps", steps),
        ("batch_questions", batch_questions),
        ("max_new_tokens", max_new_tokens),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (GRPO compares rollouts within a group), got {group_size}")

    policy = VLMPolicyConfig.load(model_path) or VLMPolicyConfig()
    sampling = policy.sampling
    processor = prepare_processing_class(AutoProcessor.from_pretrained(model_path))
    tokenizer = processor.tokenizer
    model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch.float32)
    loaded = Suite.from_spec(suite, split=split)
    dataset = build_dataset(loaded, split=split, system_prompt=policy.system_prompt or SYSTEM_PROMPT)
    funcs, weights = env_reward_funcs()
    suppress = [tokenizer.convert_tokens_to_ids(t) for t in sampling.suppressed_tokens]
    suppress = [i for i in suppress if i is not None and i != tokenizer.unk_token_id]

    timer = _StepTimer()
    with tempfile.TemporaryDirectory(prefix="medscope-trl-") as out:
        args = GRPOConfig(
            output_dir=out,
            seed=seed,
            data_seed=seed,
            max_steps=steps,
            per_device_train_batch_size=batch_questions * group_size,
            num_generations=group_size,
            max_completion_length=max_turns * (max_new_tokens + 1024),
            generation_kwargs={"max_new_tokens": max_new_tokens, "suppress_tokens": suppress},
            max_tool_calling_iterations=max_turns - 1,
            temperature=sampling.temperature if sampling.temperature > 0 else 1.0,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            learning_rate=learning_rate,
            reward_weights=weights,
            bf16=False,
            use_cpu=not torch.cuda.is_available(),
            activation_checkpointing=False,
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            disable_tqdm=True,
            dataloader_pin_memory=False,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*experimental.*", category=UserWarning)
            trainer = GRPOTrainer(
                model=model,
                reward_funcs=funcs,
                args=args,
                train_dataset=dataset,
                processing_class=processor,
                environment_factory=clinvideo_environment_factory(
                    loaded, split=split, modality=modality, frames=policy.frames, max_turns=max_turns
                ),
                callbacks=[timer.callback(TrainerCallback)],
                peft_config=peft_config,
            )
            trainer.remove_callback(PrinterCallback)  # the numbers come back in the result
            trainer.train()
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    rollouts = batch_questions * group_size
    generated = sum(h["completions/mean_length"] * rollouts for h in logs)
    seconds = timer.seconds
    return {
        "steps": len(seconds),
        "seconds_per_step": statistics.fmean(seconds),
        "step_seconds": seconds,
        "generated_tokens": int(round(generated)),
        "generated_tokens_per_s": generated / sum(seconds),
        "rollouts_per_step": rollouts,
        "tool_calls_per_rollout": statistics.fmean(h.get("tools/call_frequency", 0.0) for h in logs),
        "mean_reward": statistics.fmean(h.get("reward", 0.0) for h in logs),
        "settings": {
            "model_path": str(Path(model_path)),
            "suite": suite,
            "split": split,
            "modality": modality,
            "batch_questions": batch_questions,
            "group_size": group_size,
            "max_new_tokens": max_new_tokens,
            "max_turns": max_turns,
            "seed": seed,
            "device": str(trainer.accelerator.device),
            "torch_threads": torch.get_num_threads(),
            "trl_version": trl.__version__,
        },
    }


class _StepTimer:
    """Wall time of each optimizer step, from ``on_step_begin`` (before generation) to ``on_step_end``."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start: float | None = None

    def callback(self, base: type) -> Any:
        timer = self

        class StepTimer(base):  # type: ignore[misc, valid-type]
            def on_step_begin(self, args, state, control, **kwargs):
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                if timer._start is not None:
                    timer.seconds.append(time.perf_counter() - timer._start)
                    timer._start = None

        return StepTimer()
