"""Scripted-policy baselines of a suite, per task against chance (``medscope suite stats --policies``).

Whether the questions need the evidence: ``no_tools`` (answers from the question and the preview alone)
should stay near chance, ``oracle`` near 1. The env plays them, so this lives above the env, not in the
suite pipeline (:mod:`medscope_gym.suite.stats` holds the statistics that need no env).
"""

from __future__ import annotations

from collections.abc import Sequence

from medscope_gym.agents.runner import run_episode
from medscope_gym.agents.scripted import make_scripted_policy
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.suite import Suite
from medscope_gym.suite.stats import score_by_task

__all__ = ["policy_scores"]


def policy_scores(
    suite: Suite,
    policies: Sequence[str],
    *,
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    frame_store: str | None = "auto",
) -> dict[str, dict[str, dict[str, float]]]:
    """Accuracy of scripted policies (``oracle``, ``no_tools``, ``random``) played through ``ClinVideoEnv``
    on every sample (or the first ``limit``), per task, with chance alongside. ``frame_store`` is the
    env's argument (None decodes every tool call directly)."""
    chosen = [s for s in suite if split is None or s.split == split][:limit]
    env = ClinVideoEnv(Suite(suite.root, chosen), frame_store=frame_store)
    out = {}
    try:
        for name in policies:
            policy = make_scripted_policy(name, seed=seed)
            scores = []
            for i in range(len(chosen)):
                result = run_episode(env, policy, seed=seed + i, options={"sample_index": i})
                scores.append(float(result.final_info["reward_parts"]["accuracy"]))
            out[name] = score_by_task(chosen, scores)
    finally:
        env.close()
    return out
