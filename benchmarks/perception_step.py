"""Stage I's listing-phase step: one padded batch vs length-sorted micro-batches, side by side; and fp32
vs bf16 autocast on the CPU.

    python -m benchmarks.perception_step                 # configs/recipe_tiny.yaml's model, 12 steps
    python -m benchmarks.perception_step --steps 3       # quicker
    python -m benchmarks.perception_step --precision --threads 2   # fp32 vs bf16 autocast, as Stage I runs

The recipe's Stage I spends most of its time in the listing phase, whose batches mix skills whose
examples differ in length by up to 2x (a preview listing against a crop listing in an episode's
layout), so a fifth of one padded batch is padding. ``PerceptionConfig.micro_batches`` sorts the
step's examples by length and runs them as that many groups, each loss weighted by its answer
tokens: the same gradient, less padding. Here the same listing-phase batches of the recipe's model
(random weights; the cost does not depend on them) go through forward and backward once per setting,
settings interleaved step by step, each first in turn, on one thread (``--threads``). Printed: the
seconds per step of each, their ratio to the one padded batch (the baseline), the share of padding,
and the largest difference of any gradient entry from the baseline's.

``--precision`` asks whether bf16 would make Stage I cheaper on a CPU with bf16 matrix units: the
same batches, as the recipe runs them (``micro_batches`` from the config), in fp32 (the baseline, what
the trainers use on a CPU) and under ``torch.autocast("cpu", dtype=torch.bfloat16)``, taking turns at
going first; printed with the largest difference of the two losses.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.recipe.config import RecipeConfig
from medscope_gym.agents.recipe.perception import ExampleBatcher, backward_step, listing_skills, make_examples
from medscope_gym.agents.recipe.runner import perception_config
from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_model, build_processor

__all__ = ["compare_micro_batches", "compare_precision", "main"]

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "recipe_tiny.yaml"


def listing_batches(cfg: RecipeConfig, steps: int, seed: int = 0) -> list[list[Any]]:
    """``steps`` batches of the listing phase as Stage I draws them: every listing skill, shuffled."""
    stage_one = perception_config(cfg)
    skills = listing_skills(stage_one)
    per_skill = -(-steps * stage_one.batch_size // len(skills))
    examples = [
        ex
        for i, skill in enumerate(skills)
        for ex in make_examples(
            skill,
            9_000_000 + 100_000 * (seed + i),
            per_skill,
            stage_one.duration,
            stage_one.crops_as_frames,
            stage_one.irregular_times,
            stage_one.episode_layout,
            stage_one.first_turn,
            stage_one.style,
        )
    ]
    examples = [examples[j] for j in np.random.default_rng(seed).permutation(len(examples))]
    size = stage_one.batch_size
    return [examples[k * size : (k + 1) * size] for k in range(steps)]


def _step_inputs(
    config: Path | str, steps: int, seed: int, threads: int
) -> tuple[RecipeConfig, Any, Any, list]:
    """The recipe's config, its model (random weights; a step's cost does not depend on them) in
    training mode, the batcher and ``steps`` listing-phase batches, on ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    cfg = RecipeConfig.from_yaml(config, seed=seed)
    tiny = TinyModelConfig(**{"seed": seed, **cfg.model})
    processor = build_processor(tiny)
    model = build_model(processor.tokenizer, tiny).train()
    return cfg, model, ExampleBatcher(processor), listing_batches(cfg, steps, seed)


def compare_micro_batches(
    config: Path | str = CONFIG,
    steps: int = 12,
    settings: tuple[int, ...] = (1, 2, 4),
    seed: int = 0,
    threads: int = 1,
) -> dict[str, Any]:
    """Median seconds per step for each ``micro_batches`` setting on the same batches (1 first: the
    baseline), the padding share of the one padded batch, and the largest gradient difference."""
    cfg, model, batcher, batches = _step_inputs(config, steps, seed, threads)
    seconds: dict[int, list[float]] = {m: [] for m in settings}
    max_diff = {m: 0.0 for m in settings}
    real = padded = 0
    for k, batch in enumerate(batches):
        mask = batcher(batch)[0]["attention_mask"]
        real, padded = real + int(mask.sum()), padded + mask.numel()
        grads = {}
        for micro in settings[k % len(settings) :] + settings[: k % len(settings)]:  # each goes first in turn
            model.zero_grad()
            t0 = time.perf_counter()
            backward_step(model, batcher, batch, micro)
            seconds[micro].append(time.perf_counter() - t0)
            grads[micro] = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
        for micro in settings:
            diff = max(float((g - b).abs().max()) for g, b in zip(grads[micro], grads[settings[0]]))
            max_diff[micro] = max(max_diff[micro], diff)
    base = float(np.median(seconds[settings[0]]))
    return {
        "steps": steps,
        "padding": 1.0 - real / padded,
        "rows": [
            {
                "micro_batches": m,
                "step_s": float(np.median(seconds[m])),
                "ratio": float(np.median(seconds[m])) / base,
                "max_grad_diff": max_diff[m],
            }
            for m in settings
        ],
    }


def compare_precision(
    config: Path | str = CONFIG, steps: int = 12, seed: int = 0, threads: int = 1
) -> dict[str, Any]:
    """Median seconds per step in fp32 (the baseline) and under CPU bf16 autocast on the same batches,
    at the config's ``micro_batches``, and the largest difference of the two settings' losses."""
    import contextlib

    import torch

    cfg, model, batcher, batches = _step_inputs(config, steps, seed, threads)
    micro = perception_config(cfg).micro_batches
    contexts = {
        "fp32": contextlib.nullcontext,
        "bf16 autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    }
    seconds: dict[str, list[float]] = {name: [] for name in contexts}
    max_loss_diff = 0.0
    for k, batch in enumerate(batches):
        names = list(contexts)[k % 2 :] + list(contexts)[: k % 2]  # each goes first in turn
        losses = {}
        for name in names:
            model.zero_grad()
            t0 = time.perf_counter()
            with contexts[name]():
                losses[name] = backward_step(model, batcher, batch, micro)
            seconds[name].append(time.perf_counter() - t0)
        max_loss_diff = max(max_loss_diff, abs(losses["bf16 autocast"] - losses["fp32"]))
    base = float(np.median(seconds["fp32"]))
    return {
        "steps": steps,
        "threads": threads,
        "micro_batches": micro,
        "max_loss_diff": max_loss_diff,
        "rows": [
            {"precision": name, "step_s": float(np.median(s)), "ratio": float(np.median(s)) / base}
            for name, s in seconds.items()
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG), help="recipe config whose model and Stage I to use")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the recipe's Stage I: 2)")
    parser.add_argument(
        "--precision", action="store_true", help="fp32 vs bf16 autocast instead of micro-batches"
    )
    args = parser.parse_args(argv)
    if args.precision:
        result = compare_precision(args.config, args.steps, seed=args.seed, threads=args.threads)
        print(
            f"listing-phase steps: {result['steps']}; micro_batches {result['micro_batches']}; "
            f"{result['threads']} thread(s); largest loss difference {result['max_loss_diff']:.1e}"
        )
        print("| precision | s per step (median) | ratio to fp32 |")
        print("|---|---:|---:|")
        for row in result["rows"]:
            print(f"| {row['precision']} | {row['step_s']:.3f} | {row['ratio']:.3f} |")
        return 0
    result = compare_micro_batches(args.config, args.steps, seed=args.seed, threads=args.threads)
    print(f"listing-phase steps: {result['steps']}; padding in one batch: {result['padding']:.1%}")
    print("| micro_batches | s per step (median) | ratio to 1 | largest gradient difference |")
    print("|---:|---:|---:|---:|")
    for row in result["rows"]:
        print(
            f"| {row['micro_batches']} | {row['step_s']:.3f} | {row['ratio']:.3f} | "
            f"{row['max_grad_diff']:.1e} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
