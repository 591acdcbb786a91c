"""What every trainer (SFT, GA-GRPO) shares, one concept per module; each algorithm lives in its package.

- :mod:`medscope_gym.agents.training.accelerator`: device, ``accelerate`` and seeding of a run.
- :mod:`medscope_gym.agents.training.models`: the model a run trains (fresh or resumed, full or LoRA) and
  its final plain checkpoint.
- :mod:`medscope_gym.agents.training.checkpoints`: ``checkpoint-N`` folders: save, find, prune, resume
  (weights, optimizer, scheduler, step, RNG, data-stream position), stale temporaries.
- :mod:`medscope_gym.agents.training.metrics`: the run's metrics log (``metrics.jsonl`` + optional
  TensorBoard) and its progress bar.
- :mod:`medscope_gym.agents.training.streaming`: the seeded, resumable stream of training examples.

Importing this package does not import torch.
"""
