"""Exceptions raised on broken inputs (suites, videos, configs).

The env never raises on an agent's text; it raises these, early and with the file,
line and field named, when what the *user* gave it is broken.
"""

from __future__ import annotations

__all__ = ["MedScopeError", "SuiteError", "VideoError", "ConfigError"]


class MedScopeError(Exception):
    """Base class of every error MedScope-Gym raises on purpose."""


class SuiteError(MedScopeError, ValueError):
    """A suite folder, one of its lines, or one of its fields is invalid."""


class VideoError(MedScopeError, OSError):
    """A video is missing, unreadable, or its frames cannot be decoded."""


class ConfigError(MedScopeError, ValueError):
    """A configuration value is out of range or of the wrong type."""
