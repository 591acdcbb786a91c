"""The policy interface every agent implements: scripted, Hugging Face model, or remote endpoint.

A policy acts on a batch of episodes at once, one *slot* per parallel env. It sees only
what the env returns through ``reset``/``step``. The one exception is declared, not hidden:
a policy with ``uses_ground_truth = True`` (the oracle) is handed the episode's sample at
``begin`` by the runner, from the env's public ``current_sample``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from medscope_gym.suite import Sample

__all__ = ["Policy"]


class Policy(abc.ABC):
    """Maps each episode's latest observation to its next assistant turn (raw text)."""

    name: ClassVar[str] = "policy"
    uses_ground_truth: ClassVar[bool] = False

    def begin(  # noqa: B027 - optional hook: stateless policies need no per-episode setup
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        """A new episode starts in ``slot`` with its reset observation (override to keep state)."""

    @abc.abstractmethod
    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        """The next assistant turn for each listed slot, in order."""
