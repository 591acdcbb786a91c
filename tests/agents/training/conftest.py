"""Training-scaffold tests run the tiny model on one thread (fixtures in tests/agents/conftest.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training scaffold needs the [vlm] extra (torch, transformers)")


@pytest.fixture(scope="session", autouse=True)
def _one_thread(one_thread):
    """Every training test runs on one thread."""
