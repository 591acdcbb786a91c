"""What ``import medscope_gym`` registers: the Gymnasium env ids (entry-point strings: the core does not
import the envs) and the ``builtin:`` suite scheme of :meth:`~medscope_gym.suite.Suite.from_spec`."""

from __future__ import annotations

import os

import gymnasium as gym

from medscope_gym.suite.suite import register_spec_scheme

__all__ = ["ENV_IDS", "register_envs", "register_suite_schemes"]

ENV_IDS: dict[str, dict] = {
    # A user's suite folder: gym.make("MedScope/ClinVideo-v0", suite="path/to/suite").
    "MedScope/ClinVideo-v0": {"entry_point": "medscope_gym.envs.clinvideo:ClinVideoEnv", "kwargs": {}},
    # The small built-in synthetic suite, generated into a cache folder on first use.
    "MedScope/SynthSurg-v0": {
        "entry_point": "medscope_gym.envs.clinvideo:ClinVideoEnv",
        "kwargs": {"suite": "builtin:synthsurg-small"},
    },
    # The synthetic benchmark: 30 procedures of 10-60 min, every question template and filter. Built into
    # the cache on first make (minutes).
    "MedScope/SynthSurg-Bench-v0": {
        "entry_point": "medscope_gym.envs.clinvideo:ClinVideoEnv",
        "kwargs": {"suite": "builtin:synthsurg-bench"},
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


def _builtin_suite(name: str) -> str | os.PathLike[str]:
    """Folder of the built-in synthetic suite ``name``, built into the cache on first use."""
    # Imported when a builtin: suite is loaded, not on `import medscope_gym`: the generator pulls in
    # PyAV and the renderer.
    from medscope_gym.synthetic import builtin_suite_path

    return builtin_suite_path(name)


def register_suite_schemes() -> None:
    """``Suite.from_spec("builtin:NAME")``: the built-in synthetic suites (medscope_gym.synthetic)."""
    register_spec_scheme("builtin", _builtin_suite)
