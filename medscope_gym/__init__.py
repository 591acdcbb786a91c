"""MedScope-Gym: reinforcement learning on long clinical videos ("thinking with videos").

``import medscope_gym`` registers the Gymnasium ids (``MedScope/ClinVideo-v0``, ``MedScope/SynthSurg-v0``,
...; the env classes live in :mod:`medscope_gym.envs`) and the ``builtin:`` suite scheme.
"""

from medscope_gym.registration import ENV_IDS, register_envs, register_suite_schemes

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "__version__", "register_envs"]

register_envs()
register_suite_schemes()
