"""Rollouts with and without KV-cache reuse across turns, side by side in one run; GA-GRPO step before/after.

    python -m benchmarks.rollout_reuse            # tiny + mid-size model, 5-turn episodes, GA-GRPO step
    python -m benchmarks.rollout_reuse --quick    # tiny model only, fewer episodes (seconds)

Each model plays the same requests twice through the rollout engine, greedy (so both paths generate the
same tokens and do the same work): once with ``reuse_cache=True`` (per-episode KV cache, each turn feeds
only its new observation chunk) and once with ``reuse_cache=False`` (``generate`` over the whole context
every turn). The env is wrapped so that, whatever the untrained model says, it is sent four
``crop_video`` calls and then an answer: every episode has 5 turns and a video chunk in each of the first
4 observations. Frame budgets are the paper's (512 preview / 128 crop frames) scaled by ``--frame-scale``
(default 1/16: 32 / 8 frames of at most 112² pixels). The env is warmed up (frame stores built) first.

Models: (a) the tiny model (:class:`medscope_gym.agents.vlm.tiny.TinyModelConfig` defaults); (b) a
mid-size Qwen2.5-VL architecture with random weights that runs on a CPU (:func:`mid_config`: language
model hidden 512, 4 layers; vision tower of the real width 1280 / MLP 3420 / 16 heads, 2 blocks).

The GA-GRPO part runs :func:`benchmarks.grpo_throughput.ours_step_throughput` (``train_grpo``) on the tiny
checkpoint twice, the checkpoint's ``medscope_policy.json`` saying ``reuse_cache`` true or false, and prints
the median step, rollout and update seconds of each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from benchmarks.grpo_throughput import ours_step_throughput
from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig
from medscope_gym.agents.vlm.tiny import (
    TinyModelConfig,
    build_model,
    build_processor,
    build_tiny_model,
    tiny_policy_config,
)
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.protocol import format_answer, format_tool_call
from medscope_gym.suite import Suite

__all__ = ["ScriptedCrops", "compare_rollouts", "grpo_steps", "mid_config", "run"]

SUITE = "builtin:synthsurg-small"
PAPER_FRAMES = (512, 128)


def mid_config() -> TinyModelConfig:
    """A mid-size Qwen2.5-VL architecture that still runs on a CPU (random weights, ~83M parameters)."""
    return TinyModelConfig(
        text_hidden=512,
        text_layers=4,
        text_heads=8,
        text_kv_heads=2,
        text_intermediate=1536,
        vision_depth=2,
        vision_hidden=1280,
        vision_heads=16,
        vision_intermediate=3420,
        vision_window=112,
        max_pixels=112 * 112,
    )


class ScriptedCrops(gym.Wrapper):
    """Sends the env four crop_video calls then an answer, whatever the policy said (5-turn episodes)."""

    def reset(self, **kwargs):
        self.turn = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        duration = self.env.unwrapped.current_sample.duration
        k, self.turn = self.turn, self.turn + 1
        if k < 4:
            start = duration * 0.15 * k
            args = {"start_time": round(start, 2), "end_time": round(start + duration * 0.3, 2)}
            action = format_tool_call("crop_video", args)
        else:
            action = format_answer("A")
        return self.env.step(action)


def _warm_envs(suite: Suite, sample_ids: list[str]) -> None:
    """Build the frame stores of the benchmark's videos (outside the timed rollouts)."""
    env = ScriptedCrops(ClinVideoEnv(suite, max_turns=5))
    for sid in dict.fromkeys(sample_ids):
        env.reset(seed=0, options={"sample_id": sid})
        done = False
        while not done:
            _, _, term, trunc, _ = env.step("")
            done = term or trunc
    env.close()


def compare_rollouts(
    model: Any,
    processor: Any,
    *,
    preview_frames: int,
    crop_frames: int,
    max_pixels: int,
    max_new_tokens: int,
    episodes: int,
    num_envs: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Greedy rollouts of the same requests with and without reuse: wall time, tokens/s, their ratio."""
    import torch

    suite = Suite.from_spec(SUITE)
    ids = [s.id for s in suite if s.split == "test"]
    ids = [ids[i % len(ids)] for i in range(episodes)]
    _warm_envs(suite, ids)
    out: dict[str, Any] = {}
    tokens_by_path = {}
    for reuse in (True, False):
        config = tiny_policy_config()
        config.frames.max_pixels = max_pixels
        config.frames.max_preview_frames, config.frames.max_crop_frames = preview_frames, crop_frames
        config.sampling.max_new_tokens, config.sampling.temperature = max_new_tokens, 0.0
        config.device, config.reuse_cache, config.seed = "cpu", reuse, seed
        policy = HFVLMPolicy(model, processor, config)
        envs = make_vector_env(lambda: ScriptedCrops(ClinVideoEnv(suite, max_turns=5)), num_envs)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        trajectories = rollout(policy, envs, sample_requests(ids, seed=seed))
        wall = time.perf_counter() - t0
        envs.close()
        generated = sum(len(turn.action_ids) for t in trajectories for turn in t.turns)
        tokens_by_path[reuse] = [t.input_ids() for t in trajectories]
        out["reuse" if reuse else "full"] = {
            "wall_s": wall,
            "s_per_episode": wall / episodes,
            "generated_tokens": generated,
            "tokens_per_s": generated / wall,
            "turns_per_episode": statistics.mean(len(t.turns) for t in trajectories),
            "context_tokens": statistics.mean(len(t.input_ids()) for t in trajectories),
        }
    out["ratio"] = out["full"]["wall_s"] / out["reuse"]["wall_s"]
    out["token_identical"] = tokens_by_path[True] == tokens_by_path[False]
    out["settings"] = {
        "preview_frames": preview_frames,
        "crop_frames": crop_frames,
        "max_pixels": max_pixels,
        "max_new_tokens": max_new_tokens,
        "episodes": episodes,
        "num_envs": num_envs,
        "seed": seed,
    }
    return out


def grpo_steps(
    *, steps: int, batch_questions: int, group_size: int, max_new_tokens: int, seed: int = 0
) -> dict[str, Any]:
    """GA-GRPO steps on the tiny checkpoint with and without reuse (median step/rollout/update seconds)."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny_model(Path(tmp) / "tiny")
        for reuse in (False, True):
            folder = Path(tmp) / ("reuse" if reuse else "full")
            shutil.copytree(base, folder)
            config = VLMPolicyConfig.load(folder)
            config.reuse_cache = reuse
            config.save(folder)
            result = ours_step_throughput(
                str(folder),
                SUITE,
                steps=steps,
                batch_questions=batch_questions,
                group_size=group_size,
                max_new_tokens=max_new_tokens,
                seed=seed,
                max_turns=5,
            )
            out["reuse" if reuse else "full"] = result
    out["step_ratio"] = out["full"]["seconds_per_step"] / out["reuse"]["seconds_per_step"]
    out["settings"] = {
        "steps": steps,
        "batch_questions": batch_questions,
        "group_size": group_size,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
    }
    return out


def run(quick: bool = False, seed: int = 0, frame_scale: float = 1 / 16, grpo: bool = True) -> dict[str, Any]:
    """The whole report as a dict (see :func:`format_report`)."""
    preview, crop = (max(2, round(n * frame_scale)) for n in PAPER_FRAMES)
    report: dict[str, Any] = {}
    tiny_cfg = TinyModelConfig()
    processor = build_processor(tiny_cfg)
    report["tiny"] = compare_rollouts(
        build_model(processor.tokenizer, tiny_cfg),
        processor,
        preview_frames=preview,
        crop_frames=crop,
        max_pixels=tiny_cfg.max_pixels,
        max_new_tokens=16,
        episodes=2 if quick else 8,
        num_envs=2 if quick else 4,
        seed=seed,
    )
    if not quick:
        mid = mid_config()
        processor = build_processor(mid)
        report["mid"] = compare_rollouts(
            build_model(processor.tokenizer, mid),
            processor,
            preview_frames=preview,
            crop_frames=crop,
            max_pixels=mid.max_pixels,
            max_new_tokens=16,
            episodes=4,
            num_envs=4,
            seed=seed,
        )
    if grpo:
        report["grpo"] = grpo_steps(
            steps=1 if quick else 3,
            batch_questions=1 if quick else 2,
            group_size=2 if quick else 4,
            max_new_tokens=8 if quick else 32,
            seed=seed,
        )
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [
        "model  path   s/episode  gen tokens/s  turns  context tokens  (frames preview/crop, tokens/turn)"
    ]
    for name in ("tiny", "mid"):
        r = report.get(name)
        if r is None:
            continue
        s = r["settings"]
        for path in ("reuse", "full"):
            p = r[path]
            lines.append(
                f"{name:5s}  {path:5s}  {p['s_per_episode']:9.3f}  {p['tokens_per_s']:12.1f}  "
                f"{p['turns_per_episode']:5.1f}  {p['context_tokens']:14.0f}  "
                f"({s['preview_frames']}/{s['crop_frames']}, {s['max_new_tokens']})"
            )
        lines.append(
            f"{name:5s}  rollout speed-up with reuse: {r['ratio']:.2f}x "
            f"(token-identical: {'yes' if r['token_identical'] else 'NO'})"
        )
    g = report.get("grpo")
    if g is not None:
        lines.append("GA-GRPO (tiny)  s/step (median)  rollout s  update s  gen tokens/s")
        for path in ("full", "reuse"):
            p = g[path]
            lines.append(
                f"{path:14s}  {p['seconds_per_step']:15.2f}  {p['rollout_seconds']:9.2f}  "
                f"{p['update_seconds']:8.2f}  {p['generated_tokens_per_s']:12.1f}"
            )
        lines.append(f"GA-GRPO step speed-up with reuse: {g['step_ratio']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model only, few episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--frame-scale", type=float, default=1 / 16, help="fraction of the paper's 512/128 frame budgets"
    )
    parser.add_argument("--no-grpo", action="store_true", help="skip the GA-GRPO step comparison")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    report = run(quick=args.quick, seed=args.seed, frame_scale=args.frame_scale, grpo=not args.no_grpo)
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
