"""Evaluate any policy on a suite: the §8 metrics per task and overall, plus the trajectories.

A policy is named by a scripted name (``oracle``, ``no_tools``, ``random``) or by a checkpoint folder
(loaded as :class:`~medscope_gym.agents.vlm.policy.HFVLMPolicy`). Every episode runs through the rollout
engine
over a vector env, so scripted and model policies are measured by the same code. On top of the
library's metrics (``medscope_gym.metrics.summarise``) the report adds ``well_formed``: the share of
episodes whose every turn parsed in the strict per-turn format and that ended with an answer, i.e. the
syntax alone, separately from ``format_rate`` (which also fails episodes whose tool arguments the env
rejected, e.g. an empty interval).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
from medscope_gym.agents.rollout.trajectory import Trajectory, save_trajectories
from medscope_gym.metrics import format_table, summarise_by_task
from medscope_gym.protocol import check_trajectory_format, parse_turn

__all__ = ["EvalConfig", "evaluate", "is_well_formed", "make_policy", "summarise_trajectories"]

#: Columns printed by ``medscope eval`` (all metrics are still saved to metrics.json).
TABLE_COLUMNS = (
    "episodes",
    "accuracy",
    "R@0.3",
    "R@0.5",
    "R@0.7",
    "mIoU",
    "evidence_mIoU",
    "tool_calls",
    "frames_seen",
    "turns",
    "reward",
    "format_rate",
    "well_formed",
)


@dataclass
class EvalConfig:
    """Settings of ``medscope eval``."""

    policy: str
    """"oracle" | "no_tools" | "random" | a checkpoint folder."""
    suite: str = "builtin:synthsurg-small"
    splits: tuple[str, ...] = ("test",)
    """Splits whose samples are played (each once per ``repeats``)."""
    repeats: int = 1
    """Episodes per sample (sampled policies differ between repeats)."""
    num_envs: int = 4
    """Parallel episodes (one batched generate per turn for a model)."""
    seed: int = 0
    limit: int | None = None
    """Play only the first ``limit`` samples (quick looks)."""
    temperature: float | None = None
    """Override the checkpoint's sampling temperature (0: greedy)."""
    max_new_tokens: int | None = None
    """Override the checkpoint's longest turn in tokens."""
    out: str | None = None
    """Folder for trajectories/ and metrics.json (None: nothing saved)."""
    device: str = "auto"
    progress: bool = True


def make_policy(
    name: str,
    seed: int = 0,
    temperature: float | None = None,
    device: str = "auto",
    max_new_tokens: int | None = None,
) -> Policy:
    """A scripted policy by name, or an HFVLMPolicy from a checkpoint folder."""
    from medscope_gym.agents.scripted import SCRIPTED_POLICIES, make_scripted_policy

    if name in SCRIPTED_POLICIES:
        return make_scripted_policy(name, seed=seed)
    if not Path(name).is_dir():
        raise ValueError(
            f"--policy must be one of {', '.join(SCRIPTED_POLICIES)} or a checkpoint folder, got {name!r}"
        )
    from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig

    config = VLMPolicyConfig.load(name) or VLMPolicyConfig()
    config.device = device
    config.seed = seed
    if temperature is not None:
        config.sampling.temperature = temperature
    if max_new_tokens is not None:
        config.sampling.max_new_tokens = max_new_tokens
    return HFVLMPolicy.from_pretrained(name, config=config)


def is_well_formed(traj: Trajectory) -> bool:
    """Every turn in the strict per-turn format, the trajectory grammar holds, and it ends in an answer."""
    texts = [t.action_text for t in traj.turns]
    if not texts or not traj.terminated:
        return False
    return all(parse_turn(t).format_ok for t in texts) and check_trajectory_format(texts).ok


def summarise_trajectories(trajectories: Sequence[Trajectory]) -> dict[str, dict[str, Any]]:
    """summarise_by_task over the episodes, plus ``well_formed`` per task and overall."""
    summary = summarise_by_task([t.record() for t in trajectories])
    for task, row in summary.items():
        chosen = [t for t in trajectories if task == "overall" or t.task == task]
        row["well_formed"] = sum(map(is_well_formed, chosen)) / len(chosen) if chosen else None
    return summary


def evaluate(cfg: EvalConfig) -> tuple[dict[str, dict[str, Any]], list[Trajectory]]:
    """Play the policy on the chosen splits; returns (summary by task, trajectories)."""
    from medscope_gym.envs.clinvideo import ClinVideoEnv
    from medscope_gym.suite import Suite

    suite = Suite.from_spec(cfg.suite)
    ids = [s.id for s in suite if s.split in cfg.splits]
    if cfg.limit is not None:
        ids = ids[: cfg.limit]
    if not ids:
        raise ValueError(f"suite {cfg.suite!r} has no samples in splits {cfg.splits}")
    policy = make_policy(cfg.policy, cfg.seed, cfg.temperature, cfg.device, cfg.max_new_tokens)
    requests = sample_requests([sid for _ in range(cfg.repeats) for sid in ids], seed=cfg.seed)
    envs = make_vector_env(lambda: ClinVideoEnv(suite), min(cfg.num_envs, len(requests)))
    try:
        trajectories = rollout(policy, envs, requests, progress=cfg.progress)
    finally:
        envs.close()
    summary = summarise_trajectories(trajectories)
    if cfg.out:
        out = Path(cfg.out)
        save_trajectories(out / "trajectories", trajectories)
        from medscope_gym.atomic import atomic_write_text

        atomic_write_text(
            out / "metrics.json",
            json.dumps(
                {"policy": cfg.policy, "suite": cfg.suite, "splits": list(cfg.splits), "summary": summary},
                indent=2,
            )
            + "\n",
        )
    return summary, trajectories


def format_summary(summary: dict[str, dict[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """The per-task table (rows: overall, then each task)."""
    return format_table(summary, columns=columns)
