"""``medscope recipe`` end to end on the micro config: every stage, the whole table, resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

from medscope_gym.agents.recipe import RecipeConfig, run_recipe
from medscope_gym.agents.recipe.runner import COLUMNS, ROWS

_FOLDER = {"vcot": "stage-2-vcot", "grpo": "stage-3-grpo"}

MICRO = Path(__file__).resolve().parents[2] / "configs" / "recipe_micro.yaml"


def test_recipe_micro_runs_every_stage_and_resumes(tmp_path, capsys):
    cfg = RecipeConfig.from_yaml(MICRO, out=str(tmp_path / "recipe"), seed=0)
    t0 = time.perf_counter()
    results = run_recipe(cfg)
    first = time.perf_counter() - t0
    root = tmp_path / "recipe" / "seed-0"
    assert (root / "data" / "heldout-reading" / "suite.jsonl").is_file()
    assert set(results["rows"]) == {key for key, _ in ROWS} | {"perception"}
    for key, _ in ROWS:
        assert set(COLUMNS) <= set(results["rows"][key])
    stage1 = results["rows"]["perception"]
    assert {"copy", "symbol", "frames", "crop", "highlights", "highlights@episode", "select"} <= set(
        stage1["heldout"]
    )
    assert (stage1["reading_steps"], stage1["copy_steps"], stage1["listing_steps"]) == (1, 1, 2)
    perception = json.loads((root / "stage-1-perception" / "run" / "perception.json").read_text())
    assert perception["heldout"] == stage1["heldout"]
    # Stage I on every length the agent meets: the shortest training to the longest held-out video
    assert perception["config"]["duration"] == [60.0, 100.0]
    assert results["rows"]["oracle"]["accuracy"] == 1.0
    for stage in ("vcot", "grpo"):  # the reading check: held-out "which symbol at t"
        assert 0.0 <= results["rows"][stage]["reading_accuracy"] <= 1.0
        assert (root / _FOLDER[stage] / "eval-reading" / "metrics.json").is_file()
    assert "reading_accuracy" not in results["rows"]["answer_only"]
    for stage in ("vcot", "grpo"):  # the agent's listings, scored in its held-out episodes
        listed = [
            results["rows"][stage][f"listing_{k}"]
            for k in ("preview", "preview_items", "crop", "crop_items", "close", "close_items")
        ]
        assert all(v is None or 0.0 <= v <= 1.0 for v in listed)
    assert "listing_preview" not in results["rows"]["answer_only"]
    assert "Stage I, perception warm-up" in (root / "results.md").read_text()
    assert "Listings in the held-out episodes" in (root / "results.md").read_text()
    table = (root / "results.md").read_text()
    for _, label in ROWS:
        assert label in table
    assert all(c in table for c in COLUMNS)
    assert json.loads((root / "results.json").read_text())["rows"].keys() == results["rows"].keys()
    for stage in ("stage-2-vcot", "answer-only", "stage-3-grpo"):
        assert (root / stage / "run" / "final").is_dir() and (
            root / stage / "eval" / "metrics.json"
        ).is_file()
    assert (root / "curves.png").is_file()
    # the uniform-frames baseline: a model trained from Stage I to answer after one crop of evenly
    # spread frames, as many as the agent's tool frames, scored on such a crop
    uniform = json.loads((root / "baselines" / "uniform" / "metrics.json").read_text())
    assert uniform["policy"].endswith(str(root / "uniform-frames" / "run" / "final"))
    trained = json.loads((root / "uniform-frames" / "run" / "config.json").read_text())
    assert trained["reference"] == "uniform" and trained["model"].endswith("stage-1-perception/run/final")
    frames = round(results["rows"]["grpo"]["frames_seen"] - 16)
    assert uniform["policy"].startswith(f"uniform:1x{max(1, frames)}:")
    assert results["rows"]["uniform"]["uniform_model"] == "trained"
    assert "uniform frames, model trained on them" in (root / "results.md").read_text()
    for stage in ("stage-2-vcot", "answer-only", "uniform-frames"):  # Stage I rehearsed beside the SFTs
        logged = [
            json.loads(line) for line in (root / stage / "run" / "metrics.jsonl").read_text().splitlines()
        ]
        assert [row["train/auxiliary_loss"] > 0 for row in logged if "train/loss" in row] == [True, True]
    perception = (root / "stage-1-perception" / "run" / "metrics.jsonl").read_text().splitlines()
    elapsed = [json.loads(line)["train/elapsed_s"] for line in perception]  # what each phase costs
    assert len(elapsed) >= 1 and elapsed == sorted(elapsed) and elapsed[0] > 0
    capsys.readouterr()

    for key in ("answer_only", "vcot", "grpo"):  # sampled too, at the configured temperature
        assert results["rows"][key]["sampled"]["temperature"] == 1.0
        assert (root / _FOLDER.get(key, "answer-only") / "eval-sampled" / "metrics.json").is_file()
    assert "Sampled (temperature 1.0)" in table
    # every row split by held-out video length, the halves together the whole held-out set
    for key, _ in ROWS:
        row = results["rows"][key]
        halves = [row["by_length"][h] for h in ("shorter", "longer") if h in row["by_length"]]
        assert sum(h["episodes"] for h in halves) == row["episodes"]
        assert all(set(COLUMNS) <= set(h) for h in halves)
    assert "By video length (held-out videos up to" in table
    # a column added after a row was scored is recomputed from the saved episodes, not replayed
    saved = json.loads((root / "results.json").read_text())
    del saved["rows"]["vcot"]["evidence_R@0.5"], saved["rows"]["grpo"]["listing_preview"]
    del saved["rows"]["answer_only"]["by_length"]
    (root / "results.json").write_text(json.dumps(saved))

    t0 = time.perf_counter()
    again = run_recipe(cfg)
    out = capsys.readouterr().out
    for stage in ("perception", "vcot", "answer_only", "grpo"):
        assert f"recipe: {stage} finished earlier, skipped" in out
    assert again["rows"] == results["rows"]
    assert time.perf_counter() - t0 < first


def _untimed(value):
    """A results table without its wall-clock fields, at any depth (those differ from run to run)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in {"train_s", "eval_s", "seconds"}}
    return value


def test_recipe_micro_rerun_with_the_same_seed_gives_the_same_table(tmp_path, capsys):
    """A second run from nothing with the same seed: same data, model, training and scores."""
    tables = []
    for run in ("first", "second"):
        cfg = RecipeConfig.from_yaml(MICRO, out=str(tmp_path / run), seed=1, stages=("perception", "vcot"))
        tables.append(_untimed(run_recipe(cfg)["rows"]))
    capsys.readouterr()
    assert set(tables[0]) == {"perception", "vcot"}
    assert tables[0] == tables[1]
