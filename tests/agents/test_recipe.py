"""``medscope recipe`` end to end on the micro config: every stage, the whole table, resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

from medscope_gym.agents.recipe import RecipeConfig, run_recipe
from medscope_gym.agents.recipe.runner import COLUMNS, ROWS

MICRO = Path(__file__).resolve().parents[2] / "configs" / "recipe_micro.yaml"


def test_recipe_micro_runs_every_stage_and_resumes(tmp_path, capsys):
    cfg = RecipeConfig.from_yaml(MICRO, out=str(tmp_path / "recipe"), seed=0)
    t0 = time.perf_counter()
    results = run_recipe(cfg)
    first = time.perf_counter() - t0
    root = tmp_path / "recipe" / "seed-0"
    assert set(results["rows"]) == {key for key, _ in ROWS}
    for row in results["rows"].values():
        assert set(COLUMNS) <= set(row)
    assert results["rows"]["oracle"]["accuracy"] == 1.0
    table = (root / "results.md").read_text()
    for _, label in ROWS:
        assert label in table
    assert all(c in table for c in COLUMNS)
    assert json.loads((root / "results.json").read_text())["rows"].keys() == results["rows"].keys()
    for stage in ("stage-1-perception", "stage-2-vcot", "answer-only", "stage-3-grpo"):
        assert (root / stage / "run" / "final").is_dir() and (
            root / stage / "eval" / "metrics.json"
        ).is_file()
    assert (root / "curves.png").is_file()
    capsys.readouterr()

    t0 = time.perf_counter()
    again = run_recipe(cfg)
    out = capsys.readouterr().out
    for stage in ("perception", "vcot", "answer_only", "grpo"):
        assert f"recipe: {stage} finished earlier, skipped" in out
    assert again["rows"] == results["rows"]
    assert time.perf_counter() - t0 < first
