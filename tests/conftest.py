"""Session-wide fixtures: an isolated cache for built-in suites, and small synthetic suites built once."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Build built-in suites into a per-session folder, never into the user's cache."""
    previous = os.environ.get("MEDSCOPE_CACHE")
    os.environ["MEDSCOPE_CACHE"] = str(tmp_path_factory.mktemp("medscope_cache"))
    yield
    if previous is None:
        os.environ.pop("MEDSCOPE_CACHE", None)
    else:
        os.environ["MEDSCOPE_CACHE"] = previous
