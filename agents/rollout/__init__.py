"""The multi-turn rollout engine and what every learner shares with it.

- :mod:`medscope_gym.agents.rollout.engine`: N episodes in parallel over a vector env; group mode.
- :mod:`medscope_gym.agents.rollout.trajectory`: the trajectory format (tokens, masks, log-probs,
  frames) and its storage.
- :mod:`medscope_gym.agents.rollout.batching`: trajectories to padded model batches.
- :mod:`medscope_gym.agents.rollout.generation`: the turn-generation interface (token in, token out).

Any :class:`~medscope_gym.agents.policy.Policy` plays through the engine; it talks to the env only
through ``reset``/``step`` of a Gymnasium vector env. Importing this package does not import torch.
"""

from medscope_gym.agents.rollout.engine import (
    EpisodeRequest,
    group_requests,
    make_vector_env,
    rollout,
    sample_requests,
)
from medscope_gym.agents.rollout.trajectory import (
    MediaInputs,
    Trajectory,
    TurnRecord,
    load_trajectories,
    save_trajectories,
)

__all__ = [
    "EpisodeRequest",
    "MediaInputs",
    "Trajectory",
    "TurnRecord",
    "group_requests",
    "load_trajectories",
    "make_vector_env",
    "rollout",
    "sample_requests",
    "save_trajectories",
]
