"""The commands: medscope model tiny, medscope train sft, medscope eval; and the well-formed metric."""

from __future__ import annotations

import json

import pytest

from medscope_gym.cli import main

torch = pytest.importorskip("torch")


def test_model_tiny_writes_a_loadable_checkpoint(tmp_path, capsys):
    from medscope_gym.agents.vlm.policy import HFVLMPolicy

    assert main(["model", "tiny", str(tmp_path / "m"), "--hidden", "32", "--layers", "1"]) == 0
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
                "--split",
                "val,test",
                "--limit",
                "3",
                "--num-envs",
                "2",
                "--quiet",
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
                "--data",
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
                "--quiet",
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
                "--quiet",
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
        main(["eval", "--policy", "no-such-policy", "--limit", "1", "--quiet"])


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
