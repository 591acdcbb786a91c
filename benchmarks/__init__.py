"""Measurement code of MedScope-Gym: retrieval, device profile, trainer throughput (docs/benchmarks.md).

A package of the source checkout, not of the installed library (``pip install medscope-gym`` does not
ship it): it measures every layer of the library (env, agents, TRL) from above, so nothing in
``medscope_gym`` imports it. ``medscope bench`` and ``medscope profile`` load it from the checkout an
editable install points at (``pip install -e .``); ``python -m benchmarks.report`` and ``pytest
benchmarks/`` run it from the repository root.

- :mod:`benchmarks.retrieval`: ``medscope bench`` (tool calls, env steps/s, store builds, memory);
- :mod:`benchmarks.videos`: the generated benchmark videos, rendered once into the cache;
- :mod:`benchmarks.device_profile`: ``medscope profile`` (rollout and one GA-GRPO step at real size);
- :mod:`benchmarks.trl_throughput` and :mod:`benchmarks.grpo_throughput`: our GA-GRPO step against TRL's.
"""
