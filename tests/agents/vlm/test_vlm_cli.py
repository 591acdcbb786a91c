"""The commands: medscope model tiny, medscope train sft, medscope eval; and the well-formed metric."""

from __future__ import annotations

import json

import pytest

from medscope_gym.cli import main

torch = pytest.importorskip("torch")


def test_model_tiny_writes_a_loadable_checkpoint(tmp_path, capsys):
    from medscope_gym.agents.vlm.policy import HFVLMPolicy

    assert main(["model", "tiny", str(tmp_path / "m"), "--text-hidden", "32", "--text-layers", "1"]) == 0
    assert "hidden 32, 1 layers" in capsys.readouterr().out
    policy = HFVLMPolicy.from_pretrained(tmp_path / "m")
    assert policy.model.config.text_config.hidden_size == 32
    assert policy.model.config.text_config.num_hidden_layers == 1


def test_eval_oracle_prints_metrics_and_saves_trajectories(tmp_path, capsys, suite):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--policy",
                "oracle",
                "--splits",
                "val,test",
                "--limit",
                "3",
                "--num-envs",
                "2",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "overall" in printed and "well_formed" in printed
    metrics = json.loads((out / "metrics.json").read_text())["summary"]
    assert metrics["overall"]["episodes"] == 3
    assert metrics["overall"]["accuracy"] == 1.0 and metrics["overall"]["well_formed"] == 1.0
    assert (out / "trajectories" / "trajectories.jsonl").read_text().count("\n") == 3


def test_eval_of_a_checkpoint_and_sft_from_the_command_line(tmp_path, capsys, tiny_dir):
    run = tmp_path / "sft"
    assert (
        main(
            [
                "train",
                "sft",
                "--model",
                str(tiny_dir),
                "--suite",
                "builtin:synthsurg-small",
                "--out",
                str(run),
                "--limit",
                "1",
                "--max-steps",
                "1",
                "--on-policy-repeats",
                "1",
                "--on-policy-turns",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (run / "final" / "model.safetensors").exists()
    from medscope_gym.agents.rollout.trajectory import load_trajectories

    # one oracle episode and one the model opened for exactly one (not imitated) turn
    data = load_trajectories(run / "data")
    assert [[t.imitate for t in traj.turns][:2] for traj in data] == [[True, True], [False, True]]
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--policy",
                str(run / "final"),
                "--limit",
                "1",
                "--max-new-tokens",
                "8",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())["summary"]["overall"]
    assert metrics["episodes"] == 1 and metrics["well_formed"] == 0.0  # 8 tokens cannot make a valid turn


def test_eval_rejects_an_unknown_policy(capsys):
    with pytest.raises(ValueError, match="checkpoint folder"):
        main(["eval", "--policy", "no-such-policy", "--limit", "1", "--no-progress"])


def test_well_formed_is_the_strict_syntax_of_every_turn():
    from medscope_gym.agents.evaluate import is_well_formed
    from medscope_gym.agents.rollout.trajectory import Trajectory, TurnRecord

    call = '<think>look</think>\n<tool_call>{"name": "get_frame", "arguments": {"timestamp": 3}}</tool_call>'
    answer = "<think>seen</think>\n<answer>B</answer>"

    def traj(*texts, terminated=True):
        return Trajectory(
            uid="u",
            sample_id="s",
            task="t",
            policy="p",
            terminated=terminated,
            turns=[TurnRecord(observation_text="", action_text=t) for t in texts],
        )

    assert is_well_formed(traj(call, answer))
    assert not is_well_formed(traj(call, answer, terminated=False))
    assert not is_well_formed(traj("<answer>B</answer>"))  # no think
    assert not is_well_formed(traj(call.replace("}}", "}"), answer))  # invalid JSON
    assert not is_well_formed(traj(call, "<think>x</think><answer>B</answer>trailing"))


def test_sft_eval_and_tiny_flags_are_their_config_fields(tmp_path):
    from medscope_gym.agents.evaluate import EvalConfig
    from medscope_gym.agents.sft.config import SFTConfig
    from medscope_gym.agents.vlm.tiny import TinyModelConfig
    from medscope_gym.cli import build_parser
    from medscope_gym.config import config_from_args
    from medscope_gym.errors import ConfigError
    from medscope_gym.rewards import parse_reward

    parser = build_parser()
    path = tmp_path / "sft.yaml"
    path.write_text("model: m\nout: o\nlearning_rate: 3e-3\nmax_steps: 5\nlora: true\n")
    args = parser.parse_args(["train", "sft", "--config", str(path), "--max-steps", "7", "--no-lora"])
    cfg = config_from_args(SFTConfig, args)
    assert (cfg.model, cfg.learning_rate, cfg.max_steps, cfg.lora) == ("m", 3e-3, 7, False)
    assert cfg.suite == "builtin:synthsurg-small" and cfg.train_split == "train" and cfg.progress
    path.write_text("model: m\nout: o\ndata: builtin:x\n")
    with pytest.raises(ConfigError, match=r"unknown SFTConfig field\(s\): data \(now suite\)"):
        config_from_args(SFTConfig, parser.parse_args(["train", "sft", "--config", str(path)]))
    with pytest.raises(ConfigError, match="recovery_rate must be a number in"):
        config_from_args(
            SFTConfig,
            parser.parse_args(["train", "sft", "--model", "m", "--out", "o", "--recovery-rate", "2"]),
        )

    argv = [
        "eval",
        "--policy",
        "oracle",
        "--splits",
        "val,test",
        "--reward",
        '{"preset": "paper", "w_ev": 0.5}',
    ]
    ev = config_from_args(EvalConfig, parser.parse_args([*argv, "--threads", "1", "--no-progress"]))
    assert ev.splits == ("val", "test") and parse_reward(ev.reward).w_ev == 0.5 and not ev.progress
    assert ev.threads == 1 and ev.limit is None
    with pytest.raises(ConfigError, match="unknown reward preset"):
        config_from_args(
            EvalConfig, parser.parse_args(["eval", "--policy", "oracle", "--reward", "generous"])
        )

    tiny = parser.parse_args(
        ["model", "tiny", "out", "--text-hidden", "32", "--vision-full-attention", "0,1"]
    )
    cfg_tiny = config_from_args(TinyModelConfig, tiny)
    assert (cfg_tiny.text_hidden, cfg_tiny.vision_full_attention, tiny.out) == (32, (0, 1), "out")


def test_eval_plays_with_any_reward_spec(tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["eval", "--policy", "oracle", "--limit", "2", "--no-progress", "--out", str(out)]
    assert main([*argv, "--reward", "no_evidence"]) == 0
    overall = json.loads((out / "metrics.json").read_text())["summary"]["overall"]
    assert overall["accuracy"] == 1.0 and overall["reward"] == 2.0  # accuracy + format, no evidence part
    assert main(["eval", "--policy", "oracle", "--limit", "1", "--reward", "nonsense"]) == 2
    assert "unknown reward preset 'nonsense'" in capsys.readouterr().err
