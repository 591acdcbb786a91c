"""GA-GRPO step throughput: our trainer against TRL's GRPOTrainer on the same model, data and settings.

    python -m benchmarks.grpo_throughput --model runs/sft/final --steps 4

Both trainers run ``steps`` optimizer steps from the same checkpoint on the same suite split: B
questions × G rollouts per step, the same cap on each turn, the same env turn budget, one AdamW update
per step over every weight (no LoRA), no KL term. Ours: :func:`medscope_gym.agents.grpo.trainer.train_grpo`
(its
per-step wall time from metrics.jsonl; held-out evaluation and checkpoints are outside the timed step).
TRL: :func:`benchmarks.trl_throughput.trl_step_throughput` (generation, tool calls, reward replay,
update).
The first step of each includes warm-up, so the table reports the median step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.trl_throughput import trl_step_throughput
from medscope_gym.agents.grpo.config import GRPOConfig
from medscope_gym.agents.grpo.trainer import train_grpo
from medscope_gym.agents.training.metrics import read_metrics

__all__ = ["compare", "ours_step_throughput"]


def ours_step_throughput(
    model_path: str,
    suite: str,
    *,
    steps: int,
    batch_questions: int,
    group_size: int,
    max_new_tokens: int,
    seed: int,
    max_turns: int = 5,
    learning_rate: float = 1e-6,
    out: str | None = None,
) -> dict[str, Any]:
    """Seconds per step and generated tokens/s of our trainer (same settings as the TRL side)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GRPOConfig(
            model=model_path,
            out=out or str(Path(tmp) / "ours"),
            suite=suite,
            questions_per_step=batch_questions,
            group_size=group_size,
            num_envs=batch_questions * group_size,
            max_new_tokens=max_new_tokens,
            max_turns=max_turns,
            max_steps=steps,
            learning_rate=learning_rate,
            lora=False,
            freeze_vision=False,
            minibatch_size=batch_questions * group_size,
            micro_batch_size=batch_questions * group_size,
            drop_zero_variance=False,
            eval_limit=0,
            save_every=steps,
            resume=False,
            seed=seed,
            progress=False,
            tensorboard=False,
        )
        train_grpo(cfg)
        rows = [r for r in read_metrics(cfg.out) if "perf/step_s" in r]
    step_s = [r["perf/step_s"] for r in rows]
    tokens = sum(r["perf/gen_tokens"] for r in rows)
    return {
        "steps": len(rows),
        "step_seconds": step_s,
        "seconds_per_step": statistics.median(step_s),
        "generated_tokens_per_s": tokens / sum(r["perf/rollout_s"] for r in rows),
        "rollout_seconds": statistics.median(r["perf/rollout_s"] for r in rows),
        "update_seconds": statistics.median(r["perf/update_s"] for r in rows),
        "mean_reward": statistics.mean(r["train/reward"] for r in rows),
        "tool_calls_per_rollout": statistics.mean(r["train/tool_calls"] for r in rows),
    }


def compare(
    model_path: str, suite: str = "builtin:synthsurg-small", **settings: Any
) -> dict[str, dict[str, Any]]:
    """Both trainers with the same ``settings``; returns {"ours": ..., "trl": ...}."""
    ours = ours_step_throughput(model_path, suite, **settings)
    trl = trl_step_throughput(model_path, suite, **settings)
    trl["seconds_per_step"] = statistics.median(trl["step_seconds"])
    return {"ours": ours, "trl": trl}


def format_comparison(result: dict[str, dict[str, Any]]) -> str:
    ours, trl = result["ours"], result["trl"]
    nan = float("nan")
    lines = [
        "trainer  s/step (median)  gen tokens/s  tool calls/rollout  mean reward",
        *(
            f"{name:7s}  {r['seconds_per_step']:15.2f}  {r['generated_tokens_per_s']:12.1f}  "
            f"{r.get('tool_calls_per_rollout', nan):18.2f}  {r.get('mean_reward', nan):11.3f}"
            for name, r in (("ours", ours), ("trl", trl))
        ),
        f"ratio TRL/ours (time per step): {trl['seconds_per_step'] / ours['seconds_per_step']:.2f}x",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint folder (e.g. the tiny SFT final/)")
    parser.add_argument("--suite", default="builtin:synthsurg-small")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-questions", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    result = compare(
        args.model,
        args.suite,
        steps=args.steps,
        batch_questions=args.batch_questions,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    print(format_comparison(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
