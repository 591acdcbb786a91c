"""``medscope recipe-ablate``: the reward variants as Stage IIIs from a micro recipe's Stage II."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medscope_gym.agents.recipe import RecipeConfig, run_recipe
from medscope_gym.agents.recipe.ablation import run_recipe_ablation
from medscope_gym.agents.recipe.summary import format_ablation_summary, load_ablations
from medscope_gym.cli import main

MICRO = Path(__file__).resolve().parents[2] / "configs" / "recipe_micro.yaml"

#: Run settings that differ by design between the recipe's Stage III and an ablation variant.
_PER_RUN = {"out", "eval_splits", "eval_at_start", "reward", "modulation"}


def test_variants_train_from_stage_two_score_every_heldout_question_and_resume(tmp_path, capsys):
    cfg = RecipeConfig.from_yaml(MICRO, out=str(tmp_path), seed=0, stages=("perception", "vcot", "grpo"))
    with pytest.raises(FileNotFoundError, match="stage vcot has not finished"):
        run_recipe_ablation(cfg, ["paper"])
    run_recipe(cfg)
    root = tmp_path / "seed-0"

    result = run_recipe_ablation(cfg, ["paper", "no_evidence"])
    assert set(result["runs"]) == {"paper", "no_evidence"} and result["seeds"] == [0]
    assert set(result["table"]) == {"start", "paper", "no_evidence"}  # Stage II scored once, first
    for variant, reward in (("paper", "paper"), ("no_evidence", "no_evidence")):
        run = root / "ablation" / variant / "seed-0"
        assert (run / "final").is_dir()
        config = json.loads((run / "config.json").read_text())
        assert config["model"] == str(root / "stage-2-vcot" / "run" / "final")
        assert config["reward"] == reward and config["eval_splits"] == ["val", "test"]
        # the recipe's own Stage III settings otherwise: same stream, seed, steps, rate, held-out suite
        stage_three = json.loads((root / "stage-3-grpo" / "run" / "config.json").read_text())
        assert {k: v for k, v in config.items() if k not in _PER_RUN} == {
            k: v for k, v in stage_three.items() if k not in _PER_RUN
        }

    # every held-out question (val + test), as in the recipe's table, not Stage III's val half alone
    def episodes(path: Path) -> int:
        summary = json.loads(path.read_text())["summary"]
        return summary.get("overall", summary)["episodes"]

    scored = episodes(root / "ablation" / "paper" / "seed-0" / "eval.json")
    assert scored == episodes(root / "stage-2-vcot" / "eval" / "metrics.json") == 4
    assert episodes(root / "stage-3-grpo" / "run" / "eval.json") < scored
    assert (root / "ablation" / "ablation.md").read_text().startswith("| variant |")
    capsys.readouterr()

    # the command again: finished variants are reused, not retrained
    args = f"recipe-ablate {MICRO} --out {tmp_path} --seed 0 --variants paper,no_evidence".split()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "grpo: held-out evaluation" not in printed and "| no_evidence |" in printed
    again = json.loads((root / "ablation" / "ablation.json").read_text())
    assert again["runs"] == json.loads(json.dumps(result["runs"]))

    ablations = load_ablations(tmp_path)
    assert set(ablations) == {0} and set(ablations[0]) == {"start", "paper", "no_evidence"}
    text = format_ablation_summary(ablations)
    assert "| no_evidence |" in text and "paper − no_evidence, evidence_R@0.5, per seed:" in text
    assert main(["recipe-summary", str(tmp_path)]) == 0
    assert "Reward ablation, seeds 0" in capsys.readouterr().out


def test_no_ablation_adds_nothing_to_the_summary(tmp_path):
    assert load_ablations(tmp_path) == {} and format_ablation_summary({}) == ""


def test_ablation_summary_is_mean_std_over_seeds_and_paired_differences(tmp_path):
    for seed, (paper, plain) in enumerate(((0.5, 0.25), (0.75, 0.75), (1.0, 0.5))):
        row = {"evidence_R@0.5": [paper, 0.0], "accuracy": [0.5, 0.0]}
        table = {"start": {"evidence_R@0.5": [0.25, 0.0]}, "paper": row}
        table["no_evidence"] = {"evidence_R@0.5": [plain, 0.0], "accuracy": [0.25, 0.0]}
        (tmp_path / f"seed-{seed}" / "ablation").mkdir(parents=True)
        (tmp_path / f"seed-{seed}" / "ablation" / "ablation.json").write_text(json.dumps({"table": table}))
    text = format_ablation_summary(load_ablations(tmp_path))
    assert "| paper | 0.500 ± 0.000 |" in text and "0.750 ± 0.250" in text
    assert "per seed: 0: +0.250, 1: +0.000, 2: +0.500; mean +0.250 ± 0.250." in text
