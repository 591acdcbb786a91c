"""Evaluate any policy on a suite: the metrics of docs/metrics.md per task and overall, plus the trajectories.

A policy is named by a scripted name (``oracle``, ``no_tools``, ``random``), by a checkpoint folder
(loaded as :class:`~medscope_gym.agents.vlm.policy.HFVLMPolicy`) or as ``openai:MODEL``, a model
served by an OpenAI-compatible endpoint at ``base_url``
(:class:`~medscope_gym.agents.openai_policy.OpenAIChatPolicy`; its token usage and failed requests join
the summary). Every episode runs through the rollout
engine
over a vector env, so scripted and model policies are measured by the same code. On top of the
library's metrics (``medscope_gym.metrics.summarise``) the report adds ``well_formed``: the share of
episodes whose every turn parsed in the strict per-turn format and that ended with an answer, i.e. the
syntax alone, separately from ``format_rate`` (which also fails episodes whose tool arguments the env
rejected, e.g. an empty interval).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
from medscope_gym.agents.rollout.trajectory import Trajectory, save_trajectories
from medscope_gym.config import Config, check, non_negative_float, non_negative_int, positive_int
from medscope_gym.errors import ConfigError
from medscope_gym.metrics import format_table, summarise_by_task
from medscope_gym.protocol import check_trajectory_format, parse_turn
from medscope_gym.rewards import RewardSpec, parse_reward

__all__ = [
    "EvalConfig",
    "evaluate",
    "is_well_formed",
    "make_policy",
    "summarise_by_length",
    "summarise_trajectories",
]

#: ``--policy openai:MODEL`` plays MODEL through an OpenAI-compatible endpoint.
OPENAI_PREFIX = "openai:"
#: Columns added for an endpoint policy: what the endpoint reported, totals per task.
USAGE_COLUMNS = ("prompt_tokens", "completion_tokens", "failed_requests")

#: Columns printed by ``medscope eval`` (all metrics are still saved to metrics.json).
TABLE_COLUMNS = (
    "episodes",
    "accuracy",
    "R@0.3",
    "R@0.5",
    "R@0.7",
    "mIoU",
    "evidence_mIoU",
    "evidence_R@0.5",
    "tool_calls",
    "frames_seen",
    "turns",
    "reward",
    "format_rate",
    "well_formed",
)


@dataclass
class EvalConfig(Config):
    """Settings of ``medscope eval`` (docs/agents.md lists the fields)."""

    RENAMED: ClassVar[dict[str, str]] = {"split": "splits"}

    policy: str
    """"oracle" | "no_tools" | "random" | a checkpoint folder | "openai:MODEL" (an endpoint at base_url)."""
    suite: str = "builtin:synthsurg-small"
    """Suite folder or ``builtin:NAME``."""
    splits: tuple[str, ...] = ("test",)
    """Splits whose samples are played (each once per ``repeats``)."""
    reward: RewardSpec = "paper"
    """Env reward (docs/rewards.md): a name (paper, no_evidence, graded, monotone, ...) or a mapping of
    RewardConfig fields, e.g. {"preset": "paper", "miss_scoring": "monotone"}."""
    repeats: int = 1
    """Episodes per sample (sampled policies differ between repeats)."""
    num_envs: int = 4
    """Parallel episodes (one batched generate per turn for a model)."""
    seed: int = 0
    """Seed of the episodes and of the policy's sampling."""
    limit: int | None = None
    """Play only the first ``limit`` samples (quick looks)."""
    temperature: float | None = None
    """Override the checkpoint's sampling temperature (0: greedy)."""
    max_new_tokens: int | None = None
    """Override the checkpoint's longest turn in tokens."""
    base_url: str | None = None
    """API root of an ``openai:MODEL`` policy, e.g. http://127.0.0.1:8000/v1 (None: $OPENAI_BASE_URL, else
    https://api.openai.com/v1)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the endpoint's API key (unset: no key is sent)."""
    max_frames: int = 32
    """Frames of the preview and of each crop sent to an endpoint (evenly thinned)."""
    native_tools: bool = False
    """Send the tool schemas as ``tools=`` and map the endpoint's native tool calls to the text protocol."""
    out: str | None = None
    """Folder for trajectories/ and metrics.json (None: nothing saved). A policy that keeps no turn records
    of its own (scripted, endpoint) has each observation's text and frame thumbnails recorded for the
    viewer (docs/viewer.md)."""
    html: bool = False
    """Also write ``out``/report.html, the episode viewer's page of this evaluation (needs ``out``)."""
    device: str = "auto"
    """"auto": CUDA when available, else CPU; or cpu | cuda | cuda:N."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        self.splits = tuple(self.splits)
        parse_reward(self.reward)
        check(self, positive_int, "repeats", "num_envs")
        check(self, non_negative_int, "limit", optional=True)
        check(self, positive_int, "max_new_tokens", "threads", optional=True)
        check(self, positive_int, "max_frames")
        check(self, non_negative_float, "temperature", optional=True)
        if self.html and not self.out:
            raise ConfigError("html needs out: the report is written next to the trajectories")


def make_policy(
    name: str,
    seed: int = 0,
    temperature: float | None = None,
    device: str = "auto",
    max_new_tokens: int | None = None,
    *,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    max_frames: int = 32,
    native_tools: bool = False,
) -> Policy:
    """A scripted policy by name, an HFVLMPolicy from a checkpoint folder, or ``openai:MODEL``: an
    OpenAIChatPolicy on the endpoint at ``base_url`` (the other keywords configure only that one)."""
    from medscope_gym.agents.scripted import SCRIPTED_POLICIES, make_scripted_policy

    if name.startswith(OPENAI_PREFIX):
        from medscope_gym.agents.openai_policy import OpenAIChatPolicy, OpenAIPolicyConfig

        config = OpenAIPolicyConfig(
            model=name[len(OPENAI_PREFIX) :],
            base_url=base_url,
            api_key_env=api_key_env or None,
            seed=seed,
            max_frames=max_frames,
            native_tools=native_tools,
        )
        if temperature is not None:
            config.temperature = temperature
        if max_new_tokens is not None:
            config.max_tokens = max_new_tokens
        return OpenAIChatPolicy(config)
    if name in SCRIPTED_POLICIES:
        return make_scripted_policy(name, seed=seed)
    if not Path(name).is_dir():
        raise ValueError(
            f"--policy must be one of {', '.join(SCRIPTED_POLICIES)}, a checkpoint folder or "
            f"{OPENAI_PREFIX}MODEL, got {name!r}"
        )
    from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig

    config = VLMPolicyConfig.load(name) or VLMPolicyConfig()
    config.device = device
    config.seed = seed
    if temperature is not None:
        config.sampling.temperature = temperature
    if max_new_tokens is not None:
        config.sampling.max_new_tokens = max_new_tokens
    return HFVLMPolicy.from_pretrained(name, config=config)


def is_well_formed(traj: Trajectory) -> bool:
    """Every turn in the strict per-turn format, the trajectory grammar holds, and it ends in an answer."""
    texts = [t.action_text for t in traj.turns]
    if not texts or not traj.terminated:
        return False
    return all(parse_turn(t).format_ok for t in texts) and check_trajectory_format(texts).ok


def summarise_trajectories(trajectories: Sequence[Trajectory]) -> dict[str, dict[str, Any]]:
    """summarise_by_task over the episodes, plus ``well_formed`` per task and overall."""
    summary = summarise_by_task([t.record() for t in trajectories])
    for task, row in summary.items():
        chosen = [t for t in trajectories if task == "overall" or t.task == task]
        row["well_formed"] = sum(map(is_well_formed, chosen)) / len(chosen) if chosen else None
    return summary


def summarise_by_length(trajectories: Sequence[Trajectory]) -> dict[str, Any]:
    """:func:`summarise_trajectories`' overall row on the shorter and on the longer half of the videos.

    The halves split at the median of the videos' distinct durations (a video at the median is in the
    shorter half), so each holds about as many videos whatever the lengths drawn: whether an agent's
    looking holds up as videos grow longer. Returns ``{"edge_s": median, "shorter": row, "longer":
    row}``, a half without episodes left out.
    """
    durations = []
    for traj in trajectories:
        duration = traj.final_info.get("duration")
        if duration is None:
            raise ValueError(f"episode {traj.uid} ({traj.sample_id}) has no video duration in its final info")
        durations.append(float(duration))
    if not durations:
        raise ValueError("no episodes to split by video length")
    edge = float(statistics.median(sorted(set(durations))))
    halves = {
        "shorter": [t for t, d in zip(trajectories, durations) if d <= edge],
        "longer": [t for t, d in zip(trajectories, durations) if d > edge],
    }
    return {"edge_s": edge} | {
        name: summarise_trajectories(part)["overall"] for name, part in halves.items() if part
    }


def evaluate(cfg: EvalConfig) -> tuple[dict[str, dict[str, Any]], list[Trajectory]]:
    """Play the policy on the chosen splits; returns (summary by task, trajectories)."""
    from medscope_gym.envs.clinvideo import ClinVideoEnv
    from medscope_gym.suite import Suite

    if cfg.threads is not None:
        import torch

        torch.set_num_threads(cfg.threads)
    if Path(cfg.policy).is_dir():  # a checkpoint: no per-load progress bars from transformers
        from medscope_gym.agents.training.metrics import quiet_transformers

        quiet_transformers()
    suite = Suite.from_spec(cfg.suite)
    ids = [s.id for s in suite if s.split in cfg.splits]
    if cfg.limit is not None:
        ids = ids[: cfg.limit]
    if not ids:
        raise ValueError(f"suite {cfg.suite!r} has no samples in splits {cfg.splits}")
    policy = make_policy(
        cfg.policy,
        cfg.seed,
        cfg.temperature,
        cfg.device,
        cfg.max_new_tokens,
        base_url=cfg.base_url,
        api_key_env=cfg.api_key_env,
        max_frames=cfg.max_frames,
        native_tools=cfg.native_tools,
    )
    if cfg.out and not policy.records_turns:  # keep what the policy saw, for the viewer
        from medscope_gym.agents.viewer.recording import RecordingPolicy

        policy = RecordingPolicy(policy)
    requests = sample_requests([sid for _ in range(cfg.repeats) for sid in ids], seed=cfg.seed)
    envs = make_vector_env(lambda: ClinVideoEnv(suite, reward=cfg.reward), min(cfg.num_envs, len(requests)))
    try:
        trajectories = rollout(policy, envs, requests, progress=cfg.progress)
    finally:
        envs.close()
    summary = summarise_trajectories(trajectories)
    usage = _endpoint_usage(policy, summary)
    if cfg.out:
        out = Path(cfg.out)
        save_trajectories(out / "trajectories", trajectories)
        from medscope_gym.atomic import atomic_write_text

        atomic_write_text(
            out / "metrics.json",
            json.dumps(
                {
                    "policy": cfg.policy,
                    "suite": cfg.suite,
                    "splits": list(cfg.splits),
                    "summary": summary,
                    **({"usage": usage} if usage is not None else {}),
                },
                indent=2,
            )
            + "\n",
        )
    return summary, trajectories


def _endpoint_usage(policy: Policy, summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]] | None:
    """An endpoint policy's counts (tokens the endpoint reported, failed requests), also put in the
    summary rows; None for other policies."""
    usage = policy.usage()
    if usage is None:
        return None
    for task, row in summary.items():
        counts = usage.get(task, {})
        row.update({key: counts.get(key, 0) for key in USAGE_COLUMNS})
    return usage


def format_summary(summary: dict[str, dict[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """The metrics table of ``medscope eval`` and ``medscope play`` (docs/metrics.md): one row per task
    (overall first) or per policy; endpoint policies add their usage columns."""
    if any("prompt_tokens" in row for row in summary.values()):
        columns = [*columns, *(c for c in USAGE_COLUMNS if c not in columns)]
    return format_table(summary, columns=columns)
