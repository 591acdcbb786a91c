"""The shared config machinery: validators, YAML round trips, unknown fields, flags derived from fields."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pytest

from medscope_gym.config import (
    Config,
    add_config_arguments,
    check,
    config_from_args,
    config_from_dict,
    field_docs,
    load_config,
    non_negative_float,
    non_negative_int,
    one_of,
    positive_float,
    positive_int,
    probability,
    save_config,
)
from medscope_gym.errors import ConfigError
from medscope_gym.rewards import GRADED_EVIDENCE, RewardConfig, RewardSpec, parse_reward


@dataclass
class Inner(Config):
    """A nested config."""

    size: int = 2
    """How big."""


@dataclass
class Demo(Config):
    """A config with one field of every kind the flags support."""

    RENAMED: ClassVar[dict[str, str]] = {"lr": "learning_rate"}

    model: str
    """Checkpoint folder (required)."""
    learning_rate: float = 1e-4
    """Peak learning rate; 50% of it after warmup."""
    max_steps: int = 10
    """Optimizer steps."""
    lora: bool = False
    """Train LoRA adapters."""
    limit: int | None = None
    """First N samples only."""
    mode: Literal["binary", "off"] = "binary"
    """Modulation."""
    splits: tuple[str, ...] = ("val", "test")
    """Held-out splits."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam betas."""
    reward: RewardSpec = "paper"
    """Env reward."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra env arguments."""
    inner: Inner | None = None
    """Nested settings."""
    undocumented: float = 0.5

    def __post_init__(self) -> None:
        check(self, positive_int, "max_steps")
        check(self, positive_float, "learning_rate")
        check(self, non_negative_int, "limit", optional=True)
        parse_reward(self.reward)


# ---------------------------------------------------------------------------------------------- validators
@pytest.mark.parametrize(
    ("validator", "good", "bad", "message"),
    [
        (positive_int, [1, 7], [0, -1, 1.0, True, "3", None], "must be an integer >= 1"),
        (non_negative_int, [0, 3], [-1, 0.5, False], "must be an integer >= 0"),
        (
            positive_float,
            [1e-6, 2, 3.5],
            [0, -1.0, float("nan"), float("inf"), True, "1"],
            "must be a finite number > 0",
        ),
        (non_negative_float, [0, 0.0, 2.5], [-0.1, float("nan"), None], "must be a finite number >= 0"),
        (probability, [0, 0.5, 1], [-0.01, 1.01, float("nan"), "0.5"], r"must be a number in \[0, 1\]"),
        (one_of(("a", "b")), ["a", "b"], ["c", None], "must be one of a, b"),
    ],
)
def test_validators_accept_good_values_and_name_the_field_on_bad_ones(validator, good, bad, message):
    for value in good:
        assert validator(value, "x") == value
    for value in bad:
        with pytest.raises(ConfigError, match=f"^x {message}, got"):
            validator(value, "x")


def test_check_applies_a_validator_to_several_fields_and_can_skip_none():
    demo = Demo(model="m")
    check(demo, positive_int, "max_steps")
    check(demo, positive_int, "limit", optional=True)
    with pytest.raises(ConfigError, match="limit must be an integer >= 1, got None"):
        check(demo, positive_int, "max_steps", "limit")
    with pytest.raises(ConfigError, match="max_steps must be an integer >= 1"):
        Demo(model="m", max_steps=0)


def test_config_errors_are_value_errors_too():
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ConfigError, match="iou_step"):
        RewardConfig(iou_step=0.0)


# ------------------------------------------------------------------------------------------------ files
def test_yaml_and_json_round_trip(tmp_path):
    demo = Demo(
        model="m",
        learning_rate=3e-4,
        limit=4,
        mode="off",
        splits=("val",),
        reward={"preset": "no_iou_bonus", "miss_scoring": "monotone"},
        env_kwargs={"config": {"bins": 80}},
        inner=Inner(size=5),
    )
    for name in ("run.yaml", "run.json"):
        demo.save(tmp_path / name)
        assert Demo.from_yaml(tmp_path / name) == demo
    assert demo.to_dict()["splits"] == ["val"] and demo.to_dict()["inner"] == {"size": 5}


def test_yaml_strings_become_numbers_and_lists_tuples(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: m\nlearning_rate: 1e-3\nsplits: [train]\nbetas: [0.8, 0.9]\nmax_steps: 3\n")
    demo = load_config(Demo, path, max_steps=None)  # None overrides leave the file's value
    assert (demo.learning_rate, demo.splits, demo.betas, demo.max_steps) == (1e-3, ("train",), (0.8, 0.9), 3)
    assert load_config(Demo, path, max_steps=9).max_steps == 9


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("model: m\nmax_stpes: 3\n", r"run\.yaml: unknown Demo field\(s\): max_stpes$"),
        ("model: m\nlr: 0.1\n", r"run\.yaml: unknown Demo field\(s\): lr \(now learning_rate\)"),
        ("max_steps: 3\n", r"run\.yaml: missing required field\(s\): model"),
        ("model: m\nmax_steps: three\n", r"run\.yaml: max_steps must be an integer, got 'three'"),
        ("model: m\nlora: maybe\n", r"run\.yaml: lora must be true or false"),
        ("model: m\nmode: sometimes\n", r"run\.yaml: mode must be one of 'binary', 'off'"),
        ("model: m\nbetas: [0.9]\n", r"run\.yaml: betas must be a list"),
        ("model: m\nmax_steps: 0\n", r"run\.yaml: max_steps must be an integer >= 1"),
        ("model: m\nreward: generous\n", r"run\.yaml: unknown reward preset 'generous'"),
        ("model: m\ninner: {sise: 3}\n", r"run\.yaml: .*unknown Inner field\(s\): sise"),
        ("- a\n", "must be a mapping"),
        ("model: [unclosed\n", r"cannot read Demo file .*run\.yaml"),
    ],
)
def test_bad_files_raise_config_errors_naming_the_file_and_field(tmp_path, text, match):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Demo.from_yaml(path)


def test_plain_dataclasses_work_too(tmp_path):
    @dataclass
    class Plain:
        width: int = 3

    assert config_from_dict(Plain, {"width": 4}) == Plain(4)
    save_config(Plain(5), tmp_path / "p.yaml")
    assert load_config(Plain, tmp_path / "p.yaml") == Plain(5)
    with pytest.raises(ConfigError, match="unknown Plain field"):
        config_from_dict(Plain, {"height": 1})


def test_field_docs_are_the_strings_under_the_fields():
    docs = field_docs(Demo)
    assert docs["max_steps"] == "Optimizer steps." and "undocumented" not in docs
    assert field_docs(Inner) == {"size": "How big."}


# ------------------------------------------------------------------------------------------------ flags
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo")
    add_config_arguments(parser, Demo)
    return parser


def test_flags_are_derived_from_the_fields_with_help_and_defaults():
    text = _parser().format_help()
    for flag in (
        "--config",
        "--model",
        "--learning-rate",
        "--max-steps",
        "--lora",
        "--no-lora",
        "--limit",
        "--mode {binary,off}",
        "--splits",
        "--betas",
        "--reward NAME|JSON",
        "--env-kwargs JSON",
        "--inner JSON",
        "--undocumented",
    ):
        assert flag in text, flag
    assert "Peak learning rate; 50% of it after warmup. (default: 0.0001)" in " ".join(text.split())
    assert "(required)" in text and "(default: val,test)" in text and "accepts none" in text


def test_given_flags_override_the_file_and_others_keep_it(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: from-file\nmax_steps: 5\nlora: true\nlimit: 3\n")
    args = _parser().parse_args(
        [
            "--config",
            str(path),
            "--learning-rate",
            "2e-3",
            "--no-lora",
            "--limit",
            "none",
            "--mode",
            "off",
            "--splits",
            "train,val",
            "--betas",
            "0.8,0.95",
            "--reward",
            '{"preset": "paper", "miss_scoring": "graded"}',
            "--env-kwargs",
            '{"frame_store": null}',
            "--inner",
            '{"size": 7}',
        ]
    )
    demo = config_from_args(Demo, args)
    assert (demo.model, demo.max_steps, demo.learning_rate, demo.lora, demo.limit) == (
        "from-file",
        5,
        2e-3,
        False,
        None,
    )
    assert (demo.mode, demo.splits, demo.betas, demo.inner) == (
        "off",
        ("train", "val"),
        (0.8, 0.95),
        Inner(7),
    )
    assert parse_reward(demo.reward) == GRADED_EVIDENCE and demo.env_kwargs == {"frame_store": None}
    assert config_from_args(Demo, _parser().parse_args(["--model", "m"])) == Demo(model="m")


def test_flag_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--mode", "sometimes"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["--betas", "0.9"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["--env-kwargs", "[1]"])
    with pytest.raises(ConfigError, match=r"command line: missing required field\(s\): model \(give --model"):
        config_from_args(Demo, _parser().parse_args([]))
    with pytest.raises(ConfigError, match="command line: max_steps must be an integer >= 1"):
        config_from_args(Demo, _parser().parse_args(["--model", "m", "--max-steps", "0"]))
    path = tmp_path / "run.yaml"
    path.write_text("model: m\nmax_stpes: 1\n")
    with pytest.raises(ConfigError, match=r"run\.yaml.*unknown Demo field\(s\): max_stpes"):
        config_from_args(Demo, _parser().parse_args(["--config", str(path)]))


# ---------------------------------------------------------------------------------------------- rewards
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("paper", RewardConfig()),
        ("graded", GRADED_EVIDENCE),
        ("monotone", RewardConfig(miss_scoring="monotone")),
        ("no_iou_bonus", RewardConfig(iou_bonus=0.0)),
        ({"w_ev": 0.5}, RewardConfig(w_ev=0.5)),
        (
            {"preset": "no_evidence", "miss_scoring": "graded"},
            RewardConfig(evidence_mode="off", miss_scoring="graded"),
        ),
        (RewardConfig(frame_window=2.0), RewardConfig(frame_window=2.0)),
    ],
)
def test_one_reward_parser_reads_names_mappings_and_configs(spec, expected):
    assert parse_reward(spec) == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("generous", "unknown reward preset 'generous'"),
        ({"w_evidence": 1.0}, r"unknown RewardConfig field\(s\): w_evidence"),
        ({"preset": 3}, "reward preset must be a name"),
        ({"iou_threshold": 0.0}, "iou_threshold"),
        (1.0, "a reward must be a name"),
    ],
)
def test_bad_reward_specs_raise_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_reward(spec)
