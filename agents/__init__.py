"""Agents for ClinVideoEnv: the policy interface, scripted policies and episode runners."""

from agents.policy import Policy
from agents.runner import EpisodeResult, record_from_info, run_episode, run_episodes
from agents.scripted import SCRIPTED_POLICIES, NoToolsPolicy, OraclePolicy, RandomPolicy, make_scripted_policy

__all__ = [
    "SCRIPTED_POLICIES",
    "EpisodeResult",
    "NoToolsPolicy",
    "OraclePolicy",
    "Policy",
    "RandomPolicy",
    "make_scripted_policy",
    "record_from_info",
    "run_episode",
    "run_episodes",
]
