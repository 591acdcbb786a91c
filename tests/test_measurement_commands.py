"""``medscope bench`` and ``medscope profile``: thin commands over benchmarks/ of the source checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import medscope_gym.cli as cli
from medscope_gym.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def test_the_commands_load_the_checkouts_benchmarks_package():
    module = cli._benchmarks("retrieval")
    assert Path(module.__file__).resolve().parent == ROOT / "benchmarks"
    assert {"bench_env", "one_sample_suite", "plain_decode_fps", "run_bench"} <= set(module.__all__)
    help_text = build_parser()._subparsers._group_actions[0].choices["profile"].format_help()
    assert "--arch" in help_text and "--group-size" in help_text  # ProfileConfig's fields


@pytest.mark.parametrize("argv", [["bench", "--quick"], ["profile", "--arch", "tiny", "--device", "cpu"]])
def test_without_a_source_checkout_the_commands_say_what_they_need(argv, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "_CHECKOUT", tmp_path)  # an installed wheel: no benchmarks/ beside the package
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "benchmarks/ of a MedScope-Gym source checkout" in err and "pip install -e ." in err


@pytest.mark.parametrize(
    "old",
    [
        "medscope_gym.store.bench",
        "medscope_gym.store.benchvideos",
        "medscope_gym.agents.grpo.profile",
        "medscope_gym.agents.trl.throughput",
    ],
)
def test_measurement_code_is_not_in_the_library(old):
    assert importlib.util.find_spec(old) is None
