"""``medscope recipe-summary``: mean ± std over the seeds' results.json, cells some seeds lack marked,
and the stages' orderings as paired per-seed differences."""

from __future__ import annotations

import json
import math

import pytest

from medscope_gym.agents.recipe.summary import (
    format_orderings,
    format_summary_table,
    load_seeds,
    summarise_orderings,
    summarise_seeds,
)
from medscope_gym.cli import main


def _write(root, seed, vcot_acc, grounded=True):
    row = {"accuracy": vcot_acc, "well_formed": 1.0, "reading_accuracy": 0.5}
    listings = {"listing_preview": seed / 10, "listing_preview_items": 0.5, "listing_crop": None}
    listings |= {"listing_close": seed / 4, "listing_close_items": 0.5}
    if grounded:
        row["R@0.5"] = 0.25
    rows = {
        "vcot": {**row, **listings, "sampled": {"accuracy": vcot_acc / 2, "temperature": 1.0}},
        "oracle": {"accuracy": 1.0},
        "perception": {"heldout": {"frames": 0.5 + seed / 10, "crop": 0.25}},
    }
    (root / f"seed-{seed}").mkdir(parents=True)
    (root / f"seed-{seed}" / "results.json").write_text(json.dumps({"seed": seed, "rows": rows}))


def test_mean_std_over_seeds_and_partial_cells(tmp_path, capsys):
    for seed, acc in ((0, 0.2), (1, 0.4), (2, 0.6)):
        _write(tmp_path, seed, acc, grounded=seed != 2)
    seeds = load_seeds(tmp_path)
    greedy = summarise_seeds(seeds)
    mean, std, n = greedy["vcot"]["accuracy"]
    assert (round(mean, 6), round(std, 6), n) == (0.4, 0.2, 3)  # sample standard deviation
    assert greedy["vcot"]["R@0.5"][2] == 2
    assert summarise_seeds(seeds, sampled=True)["vcot"]["accuracy"][0] == pytest.approx(0.2)
    text = format_summary_table(seeds)
    assert "0.400 ± 0.200" in text and "0.250 ± 0.000 (n=2)" in text
    assert "Sampled:" in text and "frames 0.600 ± 0.100" in text
    # the listings line: one row per stage that wrote listings; none written is a dash, not a zero
    assert (
        "| Stage II: visual-CoT SFT | 0.100 ± 0.100 | 0.500 ± 0.000 | – | – | 0.250 ± 0.250 | 0.500 ± 0.000 |"
        in text
    )
    assert main(["recipe-summary", str(tmp_path)]) == 0
    assert "| Stage II: visual-CoT SFT |" in capsys.readouterr().out


def test_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="seed-"):
        load_seeds(tmp_path)


def _write_stages(root, seed, answer_only, vcot, grpo):
    rows = {
        "answer_only": {"accuracy": answer_only, "sampled": {"accuracy": answer_only}},
        "vcot": {"accuracy": vcot, "evidence_R@0.5": 0.5, "sampled": {"accuracy": vcot / 2}},
        "grpo": {"accuracy": grpo, "evidence_R@0.5": 0.5 + seed / 10},
    }
    (root / f"seed-{seed}").mkdir(parents=True)
    (root / f"seed-{seed}" / "results.json").write_text(json.dumps({"seed": seed, "rows": rows}))


def test_orderings_are_paired_differences_per_seed_with_their_standard_error(tmp_path, capsys):
    # seeds far apart, each step small but the same sign on every seed: the paired reading sees it
    for seed, (a, v, g) in enumerate(((0.1, 0.3, 0.35), (0.2, 0.8, 0.81), (0.1, 0.5, 0.47))):
        _write_stages(tmp_path, seed, a, v, g)
    seeds = load_seeds(tmp_path)
    found = {(o["lower"], o["higher"], o["metric"]): o for o in summarise_orderings(seeds)}
    step = found[("vcot", "grpo", "accuracy")]
    assert step["diffs"] == pytest.approx({0: 0.05, 1: 0.01, 2: -0.03})
    assert step["mean"] == pytest.approx(0.01) and step["n"] == 3
    assert step["se"] == pytest.approx(0.04 / math.sqrt(3))  # std of (0.05, 0.01, -0.03) is 0.04
    assert found[("vcot", "grpo", "evidence_R@0.5")]["diffs"] == pytest.approx({0: 0.0, 1: 0.1, 2: 0.2})
    assert found[("answer_only", "vcot", "accuracy")]["mean"] == pytest.approx(0.4)
    assert ("uniform", "vcot", "accuracy") not in found  # no seed has the row: no line, not a zero
    # sampled: only the rows that were sampled (Stage III was not here)
    sampled = {(o["lower"], o["higher"]): o for o in summarise_orderings(seeds, sampled=True)}
    assert set(sampled) == {("answer_only", "vcot")}
    assert sampled[("answer_only", "vcot")]["diffs"] == pytest.approx({0: 0.05, 1: 0.2, 2: 0.15})
    text = format_orderings(seeds)
    assert (
        "| Stage II: visual-CoT SFT → Stage III: GA-GRPO | accuracy | 0: +0.050, 1: +0.010, 2: -0.030 |"
        in text
    )
    assert "+0.010 ± 0.040 | 0.023 | +0.4 |" in text and "Orderings, sampled" in text
    assert main(["recipe-summary", str(tmp_path)]) == 0
    assert "Orderings, greedy" in capsys.readouterr().out


def test_one_seed_has_no_standard_error(tmp_path):
    _write_stages(tmp_path, 0, 0.1, 0.3, 0.35)
    found = summarise_orderings(load_seeds(tmp_path))
    assert all(o["se"] is None and o["n"] == 1 for o in found)
    assert "| +0.050 ± 0.000 | – | – |" in format_orderings(load_seeds(tmp_path))


def test_orderings_on_the_longer_videos_read_each_rows_longer_half(tmp_path):
    for seed, (a, v, g) in enumerate(((0.1, 0.3, 0.35), (0.2, 0.8, 0.81), (0.1, 0.5, 0.47))):
        _write_stages(tmp_path, seed, a, v, g)
        path = tmp_path / f"seed-{seed}" / "results.json"
        data = json.loads(path.read_text())
        for key, row in data["rows"].items():  # the longer half: every row 0.1 lower, Stage III 0.2 lower
            drop = 0.2 if key == "grpo" else 0.1
            row["by_length"] = {"edge_s": 300.0, "longer": {"accuracy": row["accuracy"] - drop}}
        path.write_text(json.dumps(data))
    seeds = load_seeds(tmp_path)
    longer = {(o["lower"], o["higher"], o["metric"]): o for o in summarise_orderings(seeds, half="longer")}
    assert set(longer) == {("answer_only", "vcot", "accuracy"), ("vcot", "grpo", "accuracy")}
    assert longer[("vcot", "grpo", "accuracy")]["diffs"] == pytest.approx({0: -0.05, 1: -0.09, 2: -0.13})
    assert longer[("answer_only", "vcot", "accuracy")]["mean"] == pytest.approx(0.4)
    text = format_orderings(seeds)
    assert "Orderings, greedy, on the longer half of the held-out videos" in text
    assert "| accuracy | 0: -0.050, 1: -0.090, 2: -0.130 |" in text
