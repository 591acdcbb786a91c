"""Typed dataclass configs from what users pass: the config itself, a dict of its fields, or None."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from medscope_gym.errors import ConfigError

__all__ = ["config_from"]

C = TypeVar("C")


def config_from(cls: type[C], value: C | Mapping[str, Any] | None, argument: str) -> C:
    """``cls()`` for None, ``value`` itself, or ``cls(**value)``; unknown fields raise ConfigError.

    ``argument`` names the parameter the value came in through, for the error message.
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
        return cls(**value)
    raise ConfigError(f"{argument} must be a {cls.__name__} or a dict, got {type(value).__name__}")
