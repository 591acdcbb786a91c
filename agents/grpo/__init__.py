"""GA-GRPO: grounding-aware group-relative policy optimisation on ClinVideoEnv (see docs/ga-grpo.md).

- :mod:`medscope_gym.agents.grpo.config`: :class:`GRPOConfig`, the typed run configuration (YAML).
- :mod:`medscope_gym.agents.grpo.advantages`: group-relative advantages and their evidence modulation.
- :mod:`medscope_gym.agents.grpo.loss`: the token-mean PPO-clipped surrogate and the k3 KL.
- :mod:`medscope_gym.agents.grpo.trainer`: :func:`train_grpo`, the training loop (rollouts, advantages,
  update, bookkeeping); devices, checkpoints, metrics.jsonl / TensorBoard and the data stream come from
  :mod:`medscope_gym.agents.training`.
- :mod:`medscope_gym.agents.grpo.plots`: training curves.
- :mod:`medscope_gym.agents.grpo.ablation`: the paper's reward ablation as one command.

Importing this package does not import torch.
"""

from medscope_gym.agents.grpo.advantages import evidence_factors, group_advantages, modulate
from medscope_gym.agents.grpo.config import GRPOConfig

__all__ = ["GRPOConfig", "evidence_factors", "group_advantages", "modulate"]
