"""SB3 on the numeric env: policy shapes, vectorised envs, a short PPO run end to end, metrics, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medscope_gym.agents.sb3.curve import plot_learning_curves, rolling_mean
from medscope_gym.agents.sb3.evaluate import evidence_recall, summarise_with_evidence
from medscope_gym.agents.sb3.extractor import TimelineExtractor
from medscope_gym.agents.sb3.policy import TimelineActionHead, TimelinePolicy
from medscope_gym.agents.sb3.train import TrainConfig, make_vec_env, train
from medscope_gym.envs.numeric import NumericClinVideoEnv
from medscope_gym.errors import ConfigError
from medscope_gym.metrics import EpisodeRecord
from medscope_gym.rewards import GRADED_EVIDENCE, PRESETS, crop_reward, parse_reward

ENV_ID = "MedScope/SynthSurg-Numeric-v0"


def _batch(space, n: int) -> dict[str, torch.Tensor]:
    return {
        k: torch.as_tensor(np.stack([s.sample() for _ in range(n)])).float() for k, s in space.spaces.items()
    }


def test_extractor_layout_and_policy_logits(sb3_suite):
    env = NumericClinVideoEnv(suite=sb3_suite)
    extractor = TimelineExtractor(env.observation_space)
    features = extractor(_batch(env.observation_space, 3))
    assert features.shape == (3, extractor.layout.total)
    glob, timeline, scores = extractor.layout.split(features)
    assert timeline.shape == (3, extractor.layout.map_channels, env.config.bins) and scores.shape == (3, 4)
    head = TimelineActionHead(extractor.layout, env.action_space.nvec)
    assert head(features).shape == (3, int(env.action_space.nvec.sum()))
    with pytest.raises(ValueError, match="does not match"):
        TimelineActionHead(extractor.layout, [3, env.config.bins + 1, 8, 4])
    env.close()


def test_the_timeline_head_is_shift_equivariant(sb3_suite):
    """Moving a feature along the timeline moves the start-bin logit with it."""
    env = NumericClinVideoEnv(suite=sb3_suite)
    layout = TimelineExtractor(env.observation_space).layout
    head = TimelineActionHead(layout, env.action_space.nvec)
    features = torch.zeros(2, layout.total)
    g, bins = layout.global_dim, layout.bins
    features[0, g + 10] = 5.0  # channel 0, bin 10
    features[1, g + 30] = 5.0  # channel 0, bin 30
    start = head(features)[:, 3 : 3 + bins].detach()
    torch.testing.assert_close(start[0, 2:18], start[1, 22:38])
    assert start[0, 8:13].abs().max() > 0
    env.close()


def test_vectorised_envs_dummy_and_subprocess(sb3_suite):
    for vec in ("dummy", "subproc"):
        venv = make_vec_env(ENV_ID, 2, vec=vec, seed=0, suite=sb3_suite)
        obs = venv.reset()
        assert obs["preview"].shape[0] == 2
        finished = 0
        for _ in range(8):
            actions = np.stack([venv.action_space.sample() for _ in range(2)])
            actions[:, 0] = 0  # answer at once: every step ends an episode
            obs, rewards, dones, infos = venv.step(actions)
            assert dones.all() and all("reward_parts" in i and "terminal_observation" in i for i in infos)
            assert all(r == i["reward_parts"]["total"] for r, i in zip(rewards, infos))
            finished += int(dones.sum())
        venv.close()
        assert finished == 16


def test_ppo_smoke_run_writes_model_curve_and_held_out_results(sb3_suite, tmp_path, monkeypatch):
    import tempfile

    from stable_baselines3 import PPO

    system_tmp = tmp_path / "system-tmp"  # SB3's default logger would make an SB3-<date> folder here
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)

    # Decoding straight from the files (no frame store) keeps this test about SB3 and the numeric env.
    cfg = TrainConfig(
        out=str(tmp_path / "run"),
        suite=sb3_suite,
        max_steps=256,
        num_envs=2,
        vec="dummy",
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        seed=1,
        progress=False,
        env_kwargs={"frame_store": None},
    )
    results = train(cfg)
    out = tmp_path / "run"
    assert results["train_steps"] >= 256 and results["train_episodes"] > 0
    assert set(results["eval"]) == {"ppo", "random", "no_tools"}
    for name, summary in results["eval"].items():
        assert summary["episodes"] > 0 and 0.0 <= summary["accuracy"] <= 1.0, name
        assert "evidence_R@0.5" in summary
    assert json.loads((out / "results.json").read_text())["seed"] == 1
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(log) == results["train_episodes"] and {"total", "accuracy", "crop", "frame"} <= set(log[0])
    model = PPO.load(out / "model.zip", device="cpu")
    assert isinstance(model.policy, TimelinePolicy)
    assert list(system_tmp.glob("SB3-*")) == []


def test_the_plain_multi_input_policy_also_trains(sb3_suite, tmp_path):
    cfg = TrainConfig(
        out=str(tmp_path / "mlp"),
        suite=sb3_suite,
        max_steps=64,
        num_envs=2,
        vec="dummy",
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        policy="mlp",
        eval_split=None,
        progress=False,
        env_kwargs={"frame_store": None},
    )
    results = train(cfg)
    assert results["train_steps"] >= 64 and results["eval"] == {}


def test_evidence_recall_uses_the_last_crop_and_counts_no_crop_as_a_miss():
    def record(crop, evidence=((10.0, 14.0),)):
        return EpisodeRecord("s", "t", 1.0, None, crop, evidence, 1, 10, 2, 1.0, True)

    records = [
        record((10.0, 14.0)),
        record((11.0, 13.0)),
        record((0.0, 40.0)),
        record(None),
        record((5.0, 6.0), ((5.5, 5.5),)),
    ]
    assert evidence_recall(records, 0.5) == pytest.approx(3 / 5)
    assert evidence_recall(records, 0.7) == pytest.approx(2 / 5)
    assert evidence_recall([], 0.5) is None
    summary = summarise_with_evidence(records)
    assert summary["evidence_R@0.5"] == pytest.approx(0.6) and summary["episodes"] == 5


def test_rolling_mean_and_curve_png(tmp_path):
    np.testing.assert_allclose(rolling_mean([1, 3, 5, 7], 2), [1, 2, 4, 6])
    log = [
        {"timesteps": i, "total": float(i % 3), "accuracy": 0.5, "format": 1.0, "crop": 0.0, "frame": 1.0}
        for i in range(50)
    ]
    plot_learning_curves({"run": log}, tmp_path / "c.png", window=10, baselines={"random": {"total": 1.0}})
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_train_config_is_validated():
    with pytest.raises(ConfigError):
        TrainConfig(algo="dqn")
    with pytest.raises(ConfigError):
        TrainConfig(policy="transformer")
    with pytest.raises(ConfigError, match="unknown reward"):
        TrainConfig(reward="generous")


def test_the_graded_reward_pays_every_bit_of_overlap_and_keeps_the_paper_hits():
    gt = [(10.0, 20.0)]
    assert parse_reward("graded") == GRADED_EVIDENCE and parse_reward("paper") == PRESETS["paper"]
    scores = [crop_reward((10.0 - k * 0.1, 10.0 - k * 0.1 + 8.0), gt, GRADED_EVIDENCE) for k in range(120)]
    assert all(a >= b - 1e-12 for a, b in zip(scores, scores[1:]))  # less overlap, never more reward
    assert scores[-1] == 0.0 and min(scores) >= 0.0  # a total miss scores like no crop
    assert crop_reward((12.0, 18.0), gt, GRADED_EVIDENCE) == crop_reward((12.0, 18.0), gt, PRESETS["paper"])
    assert crop_reward((10.0, 13.0), gt, GRADED_EVIDENCE) == pytest.approx(0.3 / 0.5)
    assert crop_reward((10.0, 13.0), gt, PRESETS["paper"]) == -1.0


def test_cli_registers_train_sb3():
    from medscope_gym.cli import build_parser

    args = build_parser().parse_args(["train", "sb3", "--algo", "ppo", "--max-steps", "10", "--seed", "2"])
    assert args.algo == "ppo" and args.max_steps == 10 and args.seed == 2 and callable(args.func)


def test_train_sb3_reads_a_config_file_and_flags_override(tmp_path):
    from medscope_gym.cli import build_parser
    from medscope_gym.config import config_from_args

    path = tmp_path / "sb3.yaml"
    path.write_text(
        "out: runs/x\nmax_steps: 500\nnum_envs: 2\nreward: {preset: paper, miss_scoring: monotone}\n"
    )
    argv = [
        "train",
        "sb3",
        "--config",
        str(path),
        "--num-envs",
        "3",
        "--baselines",
        "oracle",
        "--eval-split",
        "none",
    ]
    args = build_parser().parse_args([*argv, "--env-kwargs", '{"frame_store": null}', "--no-progress"])
    cfg = config_from_args(TrainConfig, args)
    assert (cfg.out, cfg.max_steps, cfg.num_envs, cfg.baselines, cfg.eval_split) == (
        "runs/x",
        500,
        3,
        ("oracle",),
        None,
    )
    assert parse_reward(cfg.reward).miss_scoring == "monotone" and cfg.env_kwargs == {"frame_store": None}
    assert cfg.progress is False and cfg.threads == 1
    path.write_text("steps: 10\nn_envs: 2\n")
    with pytest.raises(ConfigError, match=r"n_envs \(now num_envs\), steps \(now max_steps\)"):
        config_from_args(TrainConfig, build_parser().parse_args(["train", "sb3", "--config", str(path)]))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "sb3", "--baselines", "random,expert"])
