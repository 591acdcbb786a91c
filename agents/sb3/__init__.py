"""Classic RL on the numeric ClinVideo env with Stable-Baselines3 (``pip install medscope-gym[sb3]``).

Modules import torch and SB3 themselves; importing this package does not.
"""
