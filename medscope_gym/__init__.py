"""MedScope-Gym: reinforcement learning on long clinical videos ("thinking with videos").

``import medscope_gym`` registers the Gymnasium ids ``MedScope/ClinVideo-v0`` and
``MedScope/SynthSurg-v0``; the env classes live in the top-level ``envs`` package.
"""

from medscope_gym.registration import ENV_IDS, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "__version__", "register_envs"]

register_envs()
