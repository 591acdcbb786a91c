"""Vision-language-model agents: a transformers policy with exact token reuse, the rollout engine,
SFT cold start and evaluation. Importing this package does not import torch or transformers.

- :mod:`agents.vlm.tiny`: an offline tiny Qwen2.5-VL checkpoint (``medscope model tiny``).
- :mod:`agents.vlm.encoding`: observations to token chunks (chat-template deltas + processor).
- :mod:`agents.vlm.policy`: :class:`HFVLMPolicy`, :class:`ReferencePolicy`.
- :mod:`agents.vlm.rollout`: N episodes in parallel over a vector env; group mode.
- :mod:`agents.vlm.trajectory`: the trajectory format (tokens, masks, log-probs, frames) and storage.
- :mod:`agents.vlm.batching`, :mod:`agents.vlm.sampling`: model batches and log-probs for learners.
- :mod:`agents.vlm.sft`, :mod:`agents.vlm.evaluate`, :mod:`agents.vlm.cli`: training, evaluation, commands.
"""

from agents.vlm.encoding import ChatEncoder, FrameConfig, MediaInputs
from agents.vlm.policy import HFVLMPolicy, ReferencePolicy, VLMPolicyConfig
from agents.vlm.rollout import EpisodeRequest, group_requests, make_vector_env, rollout, sample_requests
from agents.vlm.sampling import SamplingConfig, token_logprobs
from agents.vlm.trajectory import Trajectory, TurnRecord, load_trajectories, save_trajectories

__all__ = [
    "ChatEncoder",
    "EpisodeRequest",
    "FrameConfig",
    "HFVLMPolicy",
    "MediaInputs",
    "ReferencePolicy",
    "SamplingConfig",
    "Trajectory",
    "TurnRecord",
    "VLMPolicyConfig",
    "group_requests",
    "load_trajectories",
    "make_vector_env",
    "rollout",
    "sample_requests",
    "save_trajectories",
    "token_logprobs",
]
