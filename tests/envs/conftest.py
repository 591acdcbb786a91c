"""Env fixtures: the built-in synthetic suite (built once per session) and small hand-made suites."""

from __future__ import annotations

import shutil

import pytest

from medscope_gym.suite import Suite


@pytest.fixture(scope="session")
def builtin_suite() -> Suite:
    return Suite.from_spec("builtin:synthsurg-small")


@pytest.fixture
def suite_copy(tmp_path, builtin_suite):
    """A writable copy of the built-in suite folder (tests corrupt it)."""
    dst = tmp_path / "suite"
    shutil.copytree(builtin_suite.root, dst)
    return dst
