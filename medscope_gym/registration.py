"""Environment ids registered on ``import medscope_gym`` (entry-point strings: no import cycle)."""

from __future__ import annotations

import gymnasium as gym

__all__ = ["ENV_IDS", "register_envs"]

ENV_IDS: dict[str, dict] = {
    # A user's suite folder: gym.make("MedScope/ClinVideo-v0", suite="path/to/suite").
    "MedScope/ClinVideo-v0": {"entry_point": "medscope_gym.envs.clinvideo:ClinVideoEnv", "kwargs": {}},
    # The small built-in synthetic suite, generated into a cache folder on first use.
    "MedScope/SynthSurg-v0": {
        "entry_point": "medscope_gym.envs.clinvideo:ClinVideoEnv",
        "kwargs": {"suite": "builtin:synthsurg-small"},
    },
    # The synthetic benchmark: 30 procedures of 10-60 min, every question template and filter. Built into
    # the cache on first make (minutes); "heavy" marks ids too costly for per-id test parametrisations.
    "MedScope/SynthSurg-Bench-v0": {
        "entry_point": "medscope_gym.envs.clinvideo:ClinVideoEnv",
        "kwargs": {"suite": "builtin:synthsurg-bench"},
        "heavy": True,
    },
    # Numeric (Box / MultiDiscrete) view for Stable-Baselines3, on the numeric benchmark suite by default.
    "MedScope/SynthSurg-Numeric-v0": {
        "entry_point": "medscope_gym.envs.numeric:NumericClinVideoEnv",
        "kwargs": {},
    },
}


def register_envs() -> None:
    """Register every id once; re-importing the package does not re-register."""
    for env_id, spec in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=spec["entry_point"], kwargs=dict(spec["kwargs"]))
