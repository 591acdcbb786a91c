"""GRPOConfig: YAML in, documented defaults, clear errors naming the file and field."""

from __future__ import annotations

import pytest

from medscope_gym.agents.grpo.config import GRPOConfig
from medscope_gym.errors import ConfigError


def test_defaults_follow_the_paper():
    cfg = GRPOConfig(model="m", out="o")
    assert (cfg.group_size, cfg.questions_per_step, cfg.clip_eps, cfg.kl_coef) == (8, 8, 0.2, 0.0)
    assert (cfg.lr, cfg.lora, cfg.lora_r, cfg.lora_alpha) == (1e-6, True, 64, 128)
    assert cfg.normalise_std is False and cfg.modulation == "binary"


def test_yaml_round_trip_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: ckpt\nout: runs/x\ngroup_size: 4\neval_splits: [val]\nreward_preset: no_evidence\nlr: 3e-4\n"
    )
    cfg = GRPOConfig.from_yaml(path, max_steps=7, lr=None)
    assert (cfg.group_size, cfg.eval_splits, cfg.reward_preset, cfg.max_steps) == (
        4,
        ("val",),
        "no_evidence",
        7,
    )
    assert cfg.lr == 3e-4  # YAML 1.1 reads "3e-4" as a string; a None override leaves the file's value
    cfg.save(tmp_path / "saved.json")
    assert GRPOConfig.from_yaml(tmp_path / "saved.json") == cfg


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("model: m\nout: o\ngroup_sise: 4\n", r"run\.yaml: unknown GRPOConfig field\(s\): group_sise"),
        ("out: o\n", "missing required field"),
        ("model: m\nout: o\nmodulation: sometimes\n", "modulation must be one of"),
        ("model: m\nout: o\nreward_preset: best\n", "reward_preset 'best'"),
        ("model: m\nout: o\ngroup_size: 1\n", "group_size must be >= 2"),
        ("model: m\nout: o\nmax_steps: 0\n", "max_steps must be an integer >= 1"),
        ("- a\n- b\n", "must be a mapping"),
        ("model: m\nout: o\nlr: fast\n", "lr must be a number"),
        ("model: [unclosed\n", "cannot read GRPO config"),
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
