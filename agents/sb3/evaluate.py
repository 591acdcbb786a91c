"""Held-out evaluation of SB3 models and scripted baselines on the same multiple-choice questions.

Every question of the evaluation split is played once. Trained models act greedily through
the numeric env; the scripted baselines (``random``, ``no_tools``) act through the text env on
the same samples, so both are scored by the same base-env reward and the same metrics.

Evidence recall: for these questions the agent predicts no interval, so the paper's grounding
R@k is taken over the evidence it *inspected*: ``evidence_R@k`` is the share of episodes whose
last ``crop_video`` interval (the one R_crop scores) has IoU >= k with a ground-truth window (for
a ground-truth moment: the crop contains it, as in R_crop and ``evidence_mIoU``). An episode
without a crop counts as a miss. Reported with the metrics (docs/metrics.md) of
:func:`medscope_gym.metrics.summarise`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from medscope_gym.agents.runner import record_from_info, run_episode
from medscope_gym.agents.scripted import make_scripted_policy
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.envs.numeric import NumericClinVideoEnv
from medscope_gym.metrics import EpisodeRecord, evidence_recall, summarise

__all__ = ["evaluate_model", "evaluate_scripted", "evidence_recall", "summarise_with_evidence"]


def summarise_with_evidence(records: Sequence[EpisodeRecord]) -> dict[str, float | None]:
    """:func:`~medscope_gym.metrics.summarise`, which includes ``evidence_R@k`` (kept for old callers)."""
    return summarise(records)


def evaluate_model(
    model: Any, env: NumericClinVideoEnv | gym.Env, *, deterministic: bool = True
) -> tuple[list[EpisodeRecord], list[dict[str, Any]]]:
    """Play each of the numeric wrapper's ``samples`` once with ``model.predict``; returns records and
    final infos. ``env`` is a :class:`NumericClinVideoEnv` or what ``gym.make`` returns around one."""
    records, infos = [], []
    for index, sample in enumerate(env.get_wrapper_attr("samples")):
        obs, info = env.reset(seed=index, options={"sample_id": sample.id})
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, _reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        records.append(record_from_info(info))
        infos.append(info)
    return records, infos


def evaluate_scripted(
    name: str, env: ClinVideoEnv, sample_ids: Sequence[str], seed: int = 0
) -> list[EpisodeRecord]:
    """Play a scripted policy (``random``, ``no_tools``, ``oracle``) once on each listed sample."""
    policy = make_scripted_policy(name, seed=seed)
    return [
        record_from_info(run_episode(env, policy, seed=seed + i, options={"sample_id": sid}).final_info)
        for i, sid in enumerate(sample_ids)
    ]
