"""The policy interface every agent implements: scripted, Hugging Face model, or remote endpoint.

A policy acts on a batch of episodes at once, one *slot* per parallel env. It sees only
what the env returns through ``reset``/``step``. The one exception is declared, not hidden:
a policy with ``uses_ground_truth = True`` (the oracle) is handed the episode's sample at
``begin`` by the runner, from the env's public ``current_sample``.

Optional capabilities are declared here with neutral defaults, so the rollout engine asks the
interface instead of probing attributes:

- ``records_turns``: the policy hands over each finished episode's own turn records (with their
  tokens where it has them) through :meth:`Policy.take_turns`;
- :meth:`Policy.imitate_last`: a reference policy marks its deliberate mistakes, which SFT must not
  learn;
- :attr:`Policy.label`, :meth:`Policy.sampling_settings`: what a trajectory records about who played
  it and how;
- :meth:`Policy.usage`: what a served policy's endpoint reported (tokens, failed requests).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from medscope_gym.suite import Sample

if TYPE_CHECKING:  # the trajectory format imports the runner, which imports this interface
    from medscope_gym.agents.rollout.trajectory import TurnRecord

__all__ = ["Policy"]


class Policy(abc.ABC):
    """Maps each episode's latest observation to its next assistant turn (raw text)."""

    name: ClassVar[str] = "policy"
    uses_ground_truth: ClassVar[bool] = False
    """True when the runner must hand the policy the episode's sample (ground truth) at ``begin``."""
    records_turns: ClassVar[bool] = False
    """True when :meth:`take_turns` returns the policy's own turn records (tokens, log-probs, failures)."""

    @property
    def label(self) -> str:
        """What trajectories record as the policy (model policies: their checkpoint's folder name)."""
        return self.name

    def begin(  # noqa: B027 - optional hook: stateless policies need no per-episode setup
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        """A new episode starts in ``slot`` with its reset observation (override to keep state)."""

    @abc.abstractmethod
    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        """The next assistant turn for each listed slot, in order."""

    def take_turns(self, slot: int) -> list[TurnRecord]:
        """The finished episode's turn records in ``slot`` (only when ``records_turns``)."""
        raise NotImplementedError(f"{type(self).__name__} does not record turns (records_turns is False)")

    def episode_sample(self, sample: Sample | None) -> Sample:
        """``sample``, which a policy that ``uses_ground_truth`` is given at :meth:`begin`; a clear error
        when the caller did not pass it."""
        if sample is None:
            raise ValueError(
                f"policy {self.name!r} reads the ground truth and needs the episode's sample "
                "(the runner passes env.unwrapped.current_sample)"
            )
        return sample

    def imitate_last(self, slot: int) -> bool:
        """Whether the turn just produced in ``slot`` is one to learn from (False: a deliberate mistake)."""
        return True

    def sampling_settings(self) -> dict[str, Any] | None:
        """The sampling settings the turns were drawn with, as a dict (None: not sampled from a model)."""
        return None

    def usage(self) -> dict[str, dict[str, int]] | None:
        """Counts per task and ``overall`` that a served policy's endpoint reported (None: a local policy)."""
        return None
