"""Train a Stable-Baselines3 agent on the numeric env, then evaluate it on held-out questions.

One call writes, into ``out``: ``model.zip`` (SB3 format), ``episodes.jsonl`` (every training
episode's reward parts), ``curve.png`` (learning curves), ``results.json`` (held-out metrics of
the model and the scripted baselines) and ``config.json``. Files are written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from medscope_gym.atomic import atomic_write_text
from medscope_gym.config import (
    Config,
    check,
    non_negative_float,
    one_of,
    positive_float,
    positive_int,
    probability,
)
from medscope_gym.rewards import RewardSpec, parse_reward

__all__ = ["ALGOS", "NUMERIC_ENV_ID", "POLICIES", "TrainConfig", "make_vec_env", "train"]

NUMERIC_ENV_ID = "MedScope/SynthSurg-Numeric-v0"

Algo = Literal["ppo", "a2c"]
ALGOS: tuple[str, ...] = get_args(Algo)
#: ``timeline``: :class:`~medscope_gym.agents.sb3.policy.TimelinePolicy`; ``mlp``: SB3's ``MultiInputPolicy``
#: over :class:`~medscope_gym.agents.sb3.extractor.TimelineExtractor` features (a linear head per action
#: component).
PolicyName = Literal["timeline", "mlp"]
POLICIES: tuple[str, ...] = get_args(PolicyName)
VecKind = Literal["dummy", "subproc"]
Split = Literal["train", "val", "test"]
Baseline = Literal["random", "no_tools", "oracle"]


@dataclass
class TrainConfig(Config):
    """Everything one SB3 training run depends on (``medscope train sb3``; docs/classic-rl.md).

    The defaults are the settings behind the measured results.
    """

    RENAMED: ClassVar[dict[str, str]] = {
        "out_dir": "out",
        "steps": "max_steps",
        "n_envs": "num_envs",
        "torch_threads": "threads",
        "verbose": "progress",
        "env_id": "env",
    }

    out: str = "runs/sb3"
    """Run folder: model.zip, episodes.jsonl, curve.png, results.json, config.json."""
    algo: Algo = "ppo"
    """Stable-Baselines3 algorithm."""
    env: str = NUMERIC_ENV_ID
    """A registered numeric env id."""
    suite: str | None = None
    """Suite folder or ``builtin:NAME``; None keeps the env id's default suite."""
    max_steps: int = 60_000
    """Environment steps (summed over the parallel envs)."""
    time_limit_s: float | None = None
    """Stop training early after this many seconds of wall time (the model so far is kept)."""
    cpu_limit_s: float | None = None
    """Stop training early after this process has used this many seconds of CPU time (on a shared
    machine a fairer budget than wall time; with ``threads=1`` and DummyVecEnv it is one core)."""
    seed: int = 0
    """Seed of the model, the envs and the baselines."""
    num_envs: int = 4
    """Parallel envs."""
    vec: VecKind = "dummy"
    """``dummy`` (all envs in this process: the default suite decodes nothing after its frame stores
    are built, so the network is the cost) or ``subproc`` (one process per env)."""
    policy: PolicyName = "timeline"
    """timeline: TimelinePolicy; mlp: SB3's MultiInputPolicy on the same features."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    n_steps: int = 64
    """Steps per env per rollout (PPO/A2C)."""
    batch_size: int = 128
    """PPO minibatch size."""
    n_epochs: int = 3
    """PPO passes over each rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    clip_range: float = 0.2
    """PPO ratio clip."""
    reward: RewardSpec = "graded"
    """Reward of the base env (docs/rewards.md): ``graded`` (:data:`~medscope_gym.rewards.GRADED_EVIDENCE`:
    crop misses score IoU/h0 instead of −1), another name (``paper``, ``monotone``, ...) or a mapping of
    RewardConfig fields."""
    train_split: str = "train"
    """Questions the agent is trained on."""
    eval_split: Split | None = "test"
    """Held-out split to evaluate on; None skips evaluation."""
    baselines: tuple[Baseline, ...] = ("random", "no_tools")
    """Scripted policies evaluated on the same held-out questions."""
    threads: int | None = 1
    """torch CPU threads (None: torch's default)."""
    progress: bool = True
    """Print a progress line every 2000 steps."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Further keyword arguments for the env (e.g. ``config`` of the numeric env)."""

    def __post_init__(self) -> None:
        self.baselines = tuple(self.baselines)
        check(self, one_of(ALGOS), "algo")
        check(self, one_of(POLICIES), "policy")
        check(self, one_of(get_args(VecKind)), "vec")
        check(self, one_of(get_args(Split)), "eval_split", optional=True)
        for name in self.baselines:
            one_of(get_args(Baseline))(name, "baselines")
        check(self, positive_int, "max_steps", "num_envs", "n_steps", "batch_size", "n_epochs")
        check(self, positive_int, "threads", optional=True)
        check(self, positive_float, "learning_rate", "time_limit_s", "cpu_limit_s", optional=True)
        check(self, probability, "gamma", "gae_lambda")
        check(self, non_negative_float, "ent_coef", "clip_range")
        parse_reward(self.reward)


def _env_kwargs(cfg: TrainConfig, split: str | None) -> dict[str, Any]:
    kwargs = dict(cfg.env_kwargs)
    kwargs["reward"] = parse_reward(cfg.reward)
    if cfg.suite is not None:
        kwargs["suite"] = cfg.suite
    if split is not None:
        kwargs["split"] = split
    return kwargs


def _make_env(env_id: str, kwargs: dict[str, Any]):
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor

    import medscope_gym  # noqa: F401 - registers the ids in worker processes

    # SB3 reads info["episode"] as Monitor's {"r", "l", "t"}; the env's own summary is in
    # info["episode_summary"], so the two never collide.
    return Monitor(gym.make(env_id, **kwargs))


def make_vec_env(env_id: str, n_envs: int, *, vec: str = "dummy", seed: int = 0, **kwargs: Any):
    """``n_envs`` copies of ``Monitor(gym.make(env_id, **kwargs))`` in an SB3 DummyVecEnv or SubprocVecEnv.

    Subprocess workers build their own env (and video decoders) in the worker process.
    """
    from functools import partial

    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    fns = [partial(_make_env, env_id, dict(kwargs)) for _ in range(n_envs)]
    venv = SubprocVecEnv(fns, start_method="forkserver") if vec == "subproc" else DummyVecEnv(fns)
    venv.seed(seed)
    return venv


def _episode_logger(
    log: list[dict[str, Any]], time_limit_s: float | None, verbose: bool, cpu_limit_s: float | None = None
):
    """An SB3 callback that records each finished episode's reward parts and enforces the time limits."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeLogger(BaseCallback):
        def _on_training_start(self) -> None:
            self.started = time.monotonic()
            self.cpu_started = time.process_time()
            self.next_report = 0

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"]):
                if done and "reward_parts" in info:
                    parts = info["reward_parts"]
                    log.append(
                        {
                            "timesteps": int(self.num_timesteps),
                            "seconds": time.monotonic() - self.started,
                            "cpu_seconds": time.process_time() - self.cpu_started,
                            **{k: float(v) for k, v in parts.items()},
                            "task": info["task"],
                            "tool_calls": int(info["tool_calls"]),
                            "turns": int(info["turn"]),
                        }
                    )
            if verbose and self.num_timesteps >= self.next_report and log:
                recent = log[-200:]
                mean = {
                    k: sum(e[k] for e in recent) / len(recent) for k in ("total", "accuracy", "crop", "frame")
                }
                wall, cpu = time.monotonic() - self.started, time.process_time() - self.cpu_started
                print(
                    f"[sb3] steps {self.num_timesteps:>7d}  episodes {len(log):>6d}  "
                    f"{wall:6.0f} s  cpu {cpu:6.0f} s  "
                    f"reward {mean['total']:.2f}  "
                    f"acc {mean['accuracy']:.2f}  crop {mean['crop']:.2f}  frame {mean['frame']:.2f}",
                    flush=True,
                )
                self.next_report = self.num_timesteps + 2000
            if cpu_limit_s is not None and time.process_time() - self.cpu_started >= cpu_limit_s:
                return False
            return time_limit_s is None or time.monotonic() - self.started < time_limit_s

    return EpisodeLogger()


def _build_model(cfg: TrainConfig, venv):
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.logger import Logger

    from medscope_gym.agents.sb3.extractor import TimelineExtractor
    from medscope_gym.agents.sb3.policy import TimelinePolicy

    if cfg.policy == "timeline":
        policy, policy_kwargs = TimelinePolicy, {}
    else:
        policy, policy_kwargs = (
            "MultiInputPolicy",
            {"features_extractor_class": TimelineExtractor, "net_arch": {"pi": [64], "vf": [64]}},
        )
    common = {
        "learning_rate": cfg.learning_rate,
        "n_steps": cfg.n_steps,
        "gamma": cfg.gamma,
        "gae_lambda": cfg.gae_lambda,
        "ent_coef": cfg.ent_coef,
        "policy_kwargs": policy_kwargs,
        "seed": cfg.seed,
        "verbose": 0,
        "device": "cpu",
    }
    if cfg.algo == "ppo":
        model = PPO(
            policy,
            venv,
            batch_size=cfg.batch_size,
            n_epochs=cfg.n_epochs,
            clip_range=cfg.clip_range,
            **common,
        )
    else:
        model = A2C(policy, venv, **common)
    # our callback logs the episodes; SB3's default logger would leave an empty SB3-<date> folder in
    # the system's temporary directory at every learn()
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def _save_model(model, path: Path) -> None:
    """SB3 writes a zip; write it beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".zip", dir=path.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, save, plot and evaluate; returns the content of ``results.json``."""
    import torch

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.suite is None and cfg.env == NUMERIC_ENV_ID:
        from medscope_gym.envs.numeric_suite import numeric_suite_path

        # Build (or find) the default suite once here, not in every worker process.
        cfg = replace(cfg, suite=str(numeric_suite_path()))
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=1) + "\n")
    venv = make_vec_env(
        cfg.env, cfg.num_envs, vec=cfg.vec, seed=cfg.seed, **_env_kwargs(cfg, cfg.train_split)
    )
    log: list[dict[str, Any]] = []
    started, cpu_started = time.monotonic(), time.process_time()
    try:
        model = _build_model(cfg, venv)
        callback = _episode_logger(log, cfg.time_limit_s, cfg.progress, cfg.cpu_limit_s)
        model.learn(total_timesteps=cfg.max_steps, callback=callback)
    finally:
        venv.close()
    train_seconds, train_cpu = time.monotonic() - started, time.process_time() - cpu_started
    _save_model(model, out / "model.zip")
    atomic_write_text(out / "episodes.jsonl", "".join(json.dumps(e) + "\n" for e in log))

    results: dict[str, Any] = {
        "algo": cfg.algo,
        "policy": cfg.policy,
        "seed": cfg.seed,
        "train_steps": int(model.num_timesteps),
        "train_episodes": len(log),
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "eval": {},
    }
    if cfg.eval_split is not None:
        results["eval"] = evaluate_all(model, cfg)
    from medscope_gym.agents.sb3.curve import plot_learning_curves

    baselines = {
        f"{name} (held-out)": results["eval"][name] for name in cfg.baselines if name in results["eval"]
    }
    plot_learning_curves(
        {f"{cfg.algo} seed {cfg.seed}": log},
        out / "curve.png",
        baselines={k: _as_parts(v) for k, v in baselines.items()},
    )
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    return results


def _as_parts(summary: dict[str, Any]) -> dict[str, float | None]:
    """Metric summary → the reward-part names the curve panels use."""
    return {"total": summary.get("reward"), "accuracy": summary.get("accuracy")}


def evaluate_all(model, cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """Held-out metrics of ``model`` and of each scripted baseline, on the same questions."""
    import gymnasium as gym

    import medscope_gym  # noqa: F401
    from medscope_gym.agents.sb3.evaluate import evaluate_model, evaluate_scripted, summarise_with_evidence

    env = gym.make(cfg.env, **_env_kwargs(cfg, cfg.eval_split))  # the numeric wrapper under gym.make's
    try:
        records, _ = evaluate_model(model, env)
        ids = [s.id for s in env.get_wrapper_attr("samples")]
        base = env.unwrapped  # the ClinVideoEnv the numeric wrapper translates for
        out = {cfg.algo: summarise_with_evidence(records)}
        for name in cfg.baselines:
            out[name] = summarise_with_evidence(evaluate_scripted(name, base, ids, seed=cfg.seed))
    finally:
        env.close()
    return out
