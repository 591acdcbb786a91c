"""Agents for ClinVideoEnv: the policy interface, scripted policies and episode runners."""

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.runner import EpisodeResult, record_from_info, run_episode, run_episodes
from medscope_gym.agents.scripted import (
    SCRIPTED_POLICIES,
    NoToolsPolicy,
    OraclePolicy,
    RandomPolicy,
    SearchingOracle,
    make_scripted_policy,
)

__all__ = [
    "SCRIPTED_POLICIES",
    "EpisodeResult",
    "NoToolsPolicy",
    "OraclePolicy",
    "Policy",
    "RandomPolicy",
    "SearchingOracle",
    "make_scripted_policy",
    "record_from_info",
    "run_episode",
    "run_episodes",
]
