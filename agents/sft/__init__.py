"""Supervised fine-tuning (the visual-CoT cold start) on reference and on-policy recovery trajectories.

- :mod:`medscope_gym.agents.sft.config`: :class:`SFTConfig`, the run configuration.
- :mod:`medscope_gym.agents.sft.trainer`: :func:`train_sft`, the training loop (devices, checkpoints, metrics
  and the data stream come from :mod:`medscope_gym.agents.training`).
- :mod:`medscope_gym.agents.sft.dagger`: episodes the model opens and the reference policy finishes.

Importing this package does not import torch.
"""
