"""Run a policy on an env episode by episode, through ``reset``/``step`` only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from medscope_gym.agents.policy import Policy
from medscope_gym.metrics import EpisodeRecord

__all__ = ["EpisodeResult", "run_episode", "run_episodes", "record_from_info"]


@dataclass
class EpisodeResult:
    """One finished episode: what the agent said, what the env answered, and the final info."""

    actions: list[str] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    final_info: dict[str, Any] = field(default_factory=dict)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False


def run_episode(
    env: gym.Env, policy: Policy, *, seed: int | None = None, options: dict | None = None
) -> EpisodeResult:
    """Play one episode of ``policy`` on ``env`` (slot 0)."""
    obs, info = env.reset(seed=seed, options=options)
    sample = env.unwrapped.current_sample if policy.uses_ground_truth else None
    policy.begin(0, obs, info, sample)
    result = EpisodeResult(observations=[obs["text"]])
    while True:
        action = policy.act([0], [obs], [info])[0]
        obs, reward, terminated, truncated, info = env.step(action)
        result.actions.append(action)
        result.observations.append(obs["text"])
        if terminated or truncated:
            result.reward, result.terminated, result.truncated, result.final_info = (
                float(reward),
                terminated,
                truncated,
                info,
            )
            return result


def run_episodes(env: gym.Env, policy: Policy, episodes: int, seed: int = 0) -> list[EpisodeResult]:
    """``episodes`` episodes; the first reset is seeded, later ones continue the env's RNG."""
    return [run_episode(env, policy, seed=seed if i == 0 else None) for i in range(episodes)]


def record_from_info(info: dict[str, Any]) -> EpisodeRecord:
    """The metrics record of a finished episode, from the env's final ``info``."""
    ep = info["episode_summary"]
    return EpisodeRecord(
        sample_id=ep["sample_id"],
        task=ep["task"],
        accuracy=float(info["reward_parts"]["accuracy"]),
        predicted_interval=tuple(ep["predicted_interval"]) if ep["predicted_interval"] else None,
        inspected_interval=tuple(ep["inspected_interval"]) if ep["inspected_interval"] else None,
        evidence=tuple(tuple(w) for w in info["ground_truth"]["evidence"]),
        tool_calls=int(ep["tool_calls"]),
        frames_seen=int(ep["frames_seen"]),
        turns=int(ep["turns"]),
        reward=float(info["reward_parts"]["total"]),
        format_ok=bool(info["format"]["ok"]),
    )
