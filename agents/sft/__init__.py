"""Supervised fine-tuning (the visual-CoT cold start) on reference and on-policy recovery trajectories.

- :mod:`medscope_gym.agents.sft.trainer`: :func:`train_sft` and its :class:`SFTConfig`.
- :mod:`medscope_gym.agents.sft.dagger`: episodes the model opens and the reference policy finishes.

Importing this package does not import torch.
"""
