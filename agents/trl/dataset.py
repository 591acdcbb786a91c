"""A suite's questions as a TRL prompt dataset for ``GRPOTrainer(environment_factory=...)``.

Each row is one question: a conversational ``prompt`` (the system prompt and an empty user turn) and the
question's ``sample_id``. TRL calls ``reset(**row)`` on each rollout's environment and appends what it
returns to that empty user turn, so the model sees exactly the env's reset observation (question,
options, answer form, preview) rather than a second rendering of it. ``question``, ``task`` and
``answer_type`` are carried for logging and per-task reward functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medscope_gym.protocol import SYSTEM_PROMPT
from medscope_gym.suite import Suite

__all__ = ["build_dataset", "dataset_rows"]


def dataset_rows(
    suite: str | Path | Any,
    *,
    split: str | None = "train",
    system_prompt: str = SYSTEM_PROMPT,
    sample_ids: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """The rows of :func:`build_dataset` as plain dicts (suite order, or the order of ``sample_ids``)."""
    loaded = suite if isinstance(suite, Suite) else Suite.from_spec(suite, split=split)
    if isinstance(suite, Suite) and split is not None:
        loaded = Suite(suite.root, [s for s in suite if s.split == split])
    samples = list(loaded) if sample_ids is None else [loaded.by_id(sid) for sid in sample_ids]
    if not samples:
        raise ValueError(f"no samples in split {split!r} of suite {str(loaded.root)!r}")
    return [
        {
            "prompt": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": ""},
            ],
            "sample_id": s.id,
            "question": s.question,
            "task": s.task,
            "answer_type": s.answer_type,
        }
        for s in samples
    ]


def build_dataset(
    suite: str | Path | Any,
    *,
    split: str | None = "train",
    system_prompt: str = SYSTEM_PROMPT,
    sample_ids: Iterable[str] | None = None,
):
    """A ``datasets.Dataset`` of the suite's questions (see the module docstring for the columns).

    Args:
        suite: suite folder, ``"builtin:NAME"`` or a loaded ``Suite``.
        split: keep one split (it must match the environment factory's); None keeps all.
        system_prompt: the system message (default: the protocol's, with the tool schemas; the tiny
            checkpoint is used with its shorter ``TINY_SYSTEM_PROMPT``).
        sample_ids: keep these questions, in this order.
    """
    from datasets import Dataset

    return Dataset.from_list(
        dataset_rows(suite, split=split, system_prompt=system_prompt, sample_ids=sample_ids)
    )
