"""``medscope recipe-summary``: mean ± std over the seeds' results.json, cells some seeds lack marked."""

from __future__ import annotations

import json

import pytest

from medscope_gym.agents.recipe.summary import format_summary_table, load_seeds, summarise_seeds
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
