"""TRL reward functions that read the env's reward parts of each rollout.

The env owns the reward: :func:`medscope_gym.agents.trl.environment.score_rollout` replays each rollout
through
ClinVideoEnv and returns its ``info["reward_parts"]``. :func:`env_reward_funcs` turns that into TRL reward
functions, one per part, with weights for ``GRPOConfig(reward_weights=...)``: weight 1 on ``total`` (the
env's weighted sum under its reward preset, so GRPO optimises exactly the env's trajectory reward) and
weight 0 on the parts, which TRL then only logs (``rewards/medscope_accuracy/mean``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from medscope_gym.agents.trl.environment import score_rollout

__all__ = ["REWARD_PARTS", "env_reward_funcs"]

#: The env's reward parts (``info["reward_parts"]`` keys), total first.
REWARD_PARTS: tuple[str, ...] = ("total", "accuracy", "format", "evidence", "crop", "frame")


def env_reward_funcs(
    parts: Sequence[str] = REWARD_PARTS,
) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """Reward functions named ``medscope_<part>`` and their weights (1 for ``total``, 0 for the others).

    Pass the functions as ``reward_funcs`` and the weights as ``GRPOConfig(reward_weights=...)``. The
    ``total`` function also logs through TRL's ``log_metric``: the share of rollouts that end without an
    answer, with rebuilt turn texts, and whose live tool results differ from the replay, and the mean
    number of successful tool calls per rollout.
    """
    unknown = [p for p in parts if p not in REWARD_PARTS]
    if unknown or not parts:
        raise ValueError(f"parts must be a non-empty subset of {REWARD_PARTS}, got {list(parts)}")
    funcs = [_part_reward(p) for p in parts]
    return funcs, [1.0 if p == "total" else 0.0 for p in parts]


def _part_reward(part: str) -> Callable[..., list[float]]:
    def reward(completions: list[Any], environments: list[Any] | None = None, **kwargs: Any) -> list[float]:
        if environments is None:
            raise ValueError(
                "the medscope rewards need TRL's environments: train with "
                "environment_factory=clinvideo_environment_factory(...)"
            )
        results = [score_rollout(env, completion) for env, completion in zip(environments, completions)]
        log_metric = kwargs.get("log_metric")
        if part == "total" and log_metric is not None and results:
            n = len(results)
            log_metric("medscope/no_answer", sum(r.info.get("answer") is None for r in results) / n)
            log_metric("medscope/rebuilt_turns", sum(r.reconstructed_turns > 0 for r in results) / n)
            log_metric("medscope/live_replay_mismatch", sum(not r.live_matches_replay for r in results) / n)
            tool_calls = sum(r.info["episode_summary"]["tool_calls"] for r in results)
            log_metric("medscope/tool_calls", tool_calls / n)
        return [float(r.reward_parts[part]) for r in results]

    reward.__name__ = reward.__qualname__ = f"medscope_{part}"
    return reward
