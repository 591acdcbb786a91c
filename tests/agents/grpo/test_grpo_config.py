"""GRPOConfig: YAML in, documented defaults, clear errors naming the file and field."""

from __future__ import annotations

import pytest

from medscope_gym.agents.grpo.config import GRPOConfig
from medscope_gym.errors import ConfigError


def test_defaults_follow_the_paper():
    cfg = GRPOConfig(model="m", out="o")
    assert (cfg.group_size, cfg.questions_per_step, cfg.clip_eps, cfg.kl_coef) == (8, 8, 0.2, 0.0)
    assert (cfg.learning_rate, cfg.lora, cfg.lora_r, cfg.lora_alpha) == (1e-6, True, 64, 128)
    assert cfg.normalise_std is False and cfg.modulation == "binary"


def test_yaml_round_trip_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: ckpt\nout: runs/x\ngroup_size: 4\neval_splits: [val]\nreward: no_evidence\n"
        "learning_rate: 3e-4\n"
    )
    cfg = GRPOConfig.from_yaml(path, max_steps=7, learning_rate=None)
    assert (cfg.group_size, cfg.eval_splits, cfg.reward, cfg.max_steps) == (
        4,
        ("val",),
        "no_evidence",
        7,
    )
    assert (
        cfg.learning_rate == 3e-4
    )  # YAML 1.1 reads "3e-4" as a string; a None override leaves the file's value
    cfg.save(tmp_path / "saved.json")
    assert GRPOConfig.from_yaml(tmp_path / "saved.json") == cfg


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("model: m\nout: o\ngroup_sise: 4\n", r"run\.yaml: unknown GRPOConfig field\(s\): group_sise"),
        ("out: o\n", "missing required field"),
        ("model: m\nout: o\nmodulation: sometimes\n", "modulation must be one of"),
        ("model: m\nout: o\nreward: best\n", "unknown reward preset 'best'"),
        ("model: m\nout: o\nlr: 0.1\n", r"unknown GRPOConfig field\(s\): lr \(now learning_rate\)"),
        ("model: m\nout: o\nreward: {miss_scoring: sometimes}\n", "miss_scoring must be one of"),
        ("model: m\nout: o\ngroup_size: four\n", "group_size must be an integer"),
        ("model: m\nout: o\ngroup_size: 1\n", "group_size must be >= 2"),
        ("model: m\nout: o\nmax_steps: 0\n", "max_steps must be an integer >= 1"),
        ("- a\n- b\n", "must be a mapping"),
        ("model: m\nout: o\nlearning_rate: fast\n", "learning_rate must be a number"),
        ("model: [unclosed\n", "cannot read GRPOConfig file"),
    ],
)
def test_bad_configs_fail_early_and_name_the_problem(tmp_path, text, match):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        GRPOConfig.from_yaml(path)


@pytest.mark.parametrize("name", ["grpo_tiny.yaml", "grpo_paper.yaml", "grpo_ablation_tiny.yaml"])
def test_shipped_configs_load(name):
    from pathlib import Path

    cfg = GRPOConfig.from_yaml(Path(__file__).parents[3] / "configs" / name)
    assert cfg.group_size == 8 and cfg.questions_per_step * cfg.group_size <= 64


def test_any_reward_spec_is_accepted_and_saved_as_given(tmp_path):
    from medscope_gym.rewards import RewardConfig, parse_reward

    path = tmp_path / "run.yaml"
    path.write_text("model: m\nout: o\nreward: {preset: no_iou_bonus, miss_scoring: monotone}\n")
    cfg = GRPOConfig.from_yaml(path)
    assert parse_reward(cfg.reward) == RewardConfig(iou_bonus=0.0, miss_scoring="monotone")
    cfg.save(tmp_path / "saved.yaml")
    assert GRPOConfig.from_yaml(tmp_path / "saved.yaml") == cfg
    assert GRPOConfig(model="m", out="o", reward="graded").reward == "graded"
    graded = GRPOConfig(model="m", out="o", reward=RewardConfig(miss_scoring="graded"))
    graded.save(tmp_path / "graded.json")
    assert parse_reward(GRPOConfig.from_yaml(tmp_path / "graded.json").reward) == graded.reward


def test_train_grpo_flags_come_from_the_fields_and_override_the_file(tmp_path):
    from medscope_gym.cli import build_parser
    from medscope_gym.config import config_from_args

    path = tmp_path / "run.yaml"
    path.write_text("model: m\nout: o\ngroup_size: 4\nlearning_rate: 3e-4\nlora: true\n")
    argv = [
        "train",
        "grpo",
        "--config",
        str(path),
        "--learning-rate",
        "1e-3",
        "--no-lora",
        "--eval-limit",
        "none",
    ]
    args = build_parser().parse_args([*argv, "--eval-splits", "val", "--reward", '{"w_ev": 0.5}'])
    cfg = config_from_args(GRPOConfig, args)
    assert (cfg.model, cfg.group_size, cfg.learning_rate, cfg.lora) == ("m", 4, 1e-3, False)
    assert cfg.eval_limit is None and cfg.eval_splits == ("val",) and cfg.reward == {"w_ev": 0.5}
    with pytest.raises(ConfigError, match="missing required field.*--model"):
        config_from_args(GRPOConfig, build_parser().parse_args(["train", "grpo", "--out", "o"]))
