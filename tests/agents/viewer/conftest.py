"""Two small evaluation folders of the built-in suite (oracle and random on the same questions)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def eval_runs(tmp_path_factory):
    """(oracle folder, random folder): ``medscope eval --out`` of both policies on 8 val/test questions."""
    from medscope_gym.agents.evaluate import EvalConfig, evaluate

    root = tmp_path_factory.mktemp("viewer-runs")
    for policy in ("oracle", "random"):
        evaluate(
            EvalConfig(policy=policy, splits=("val", "test"), limit=8, out=str(root / policy), progress=False)
        )
    return root / "oracle", root / "random"
