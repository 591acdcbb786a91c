"""The multi-turn rollout engine: N episodes in parallel over a Gymnasium vector env.

Each slot of the vector env plays the episodes it is handed (:class:`EpisodeRequest`: which sample,
which seed, which group); the policy acts on all running slots in one batch per turn (one batched
``generate`` for a VLM). A slot whose episode ends is reset at once to the next request with a masked
``reset`` (``options={"sample_id": ..., "reset_mask": ...}``), so the env's NEXT_STEP autoreset never
picks a sample on its own for a live slot. Once the queue is empty, idle slots are fed a one-turn
filler answer whose episodes are discarded. Only ``reset``/``step`` (and ``get_attr("current_sample")``
for policies that declare ``uses_ground_truth``) touch the env.

Group mode (:func:`group_requests`) asks for G rollouts of the same question with identical resets
(same ``sample_id``, same seed), the unit GA-GRPO computes group advantages over.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.rollout.trajectory import Trajectory, TurnRecord

__all__ = ["EpisodeRequest", "group_requests", "make_vector_env", "rollout", "sample_requests"]

#: Action given to idle slots once the request queue is empty (their episodes are discarded).
FILLER_ACTION = "<think>idle</think><answer>-</answer>"


@dataclass(frozen=True)
class EpisodeRequest:
    """One episode to play: its sample (None: the env draws one), reset seed and group."""

    sample_id: str | None = None
    seed: int | None = None
    group: int | None = None
    group_index: int = 0


def sample_requests(sample_ids: Sequence[str], seed: int = 0) -> list[EpisodeRequest]:
    """One episode per sample id."""
    return [EpisodeRequest(sample_id=sid, seed=seed + i) for i, sid in enumerate(sample_ids)]


def group_requests(sample_ids: Sequence[str], group_size: int, seed: int = 0) -> list[EpisodeRequest]:
    """``group_size`` rollouts per sample id from identical resets (same sample, same seed)."""
    return [
        EpisodeRequest(sample_id=sid, seed=seed + q, group=q, group_index=g)
        for q, sid in enumerate(sample_ids)
        for g in range(group_size)
    ]


def make_vector_env(
    env_fn: Callable[[], gym.Env], num_envs: int, asynchronous: bool = False
) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` copies (async: one process each, no shared memory for frame sequences)."""
    if asynchronous:
        return gym.vector.AsyncVectorEnv([env_fn] * num_envs, shared_memory=False)
    return gym.vector.SyncVectorEnv([env_fn] * num_envs)


@dataclass
class _Running:
    request: EpisodeRequest
    obs: dict[str, Any]
    info: dict[str, Any]
    texts: list[str]
    rewards: list[float]


def rollout(
    policy: Policy,
    envs: gym.vector.VectorEnv,
    requests: Sequence[EpisodeRequest],
    *,
    progress: bool = False,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory]:
    """Play every request with ``policy`` on ``envs``; trajectories come back in request order."""
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode != AutoresetMode.NEXT_STEP:
        raise ValueError(f"rollout needs a NEXT_STEP autoreset vector env, got {mode}")
    n = envs.num_envs
    queue = deque(enumerate(requests))
    results: dict[int, Trajectory] = {}
    running: list[tuple[int, _Running] | None] = [None] * n
    bar = _progress(len(requests), progress)

    def start(slot: int, obs: dict[str, Any], info: dict[str, Any], index: int, req: EpisodeRequest) -> None:
        sample = envs.get_attr("current_sample")[slot] if policy.uses_ground_truth else None
        policy.begin(slot, obs, info, sample)
        running[slot] = (index, _Running(req, obs, info, [], []))

    # The first reset must cover every slot (a vector env cannot mask-reset before it); slots whose
    # request differs from the first one are then reset again to their own request.
    if not queue:
        return []
    first = [queue.popleft() for _ in range(min(n, len(queue)))]
    obs_b, info_b = envs.reset(seed=_seed_list(first[0][1].seed, n), options=_options(first[0][1]))
    for slot, (index, req) in enumerate(first):
        if slot > 0 and (
            req.sample_id is None or (req.sample_id, req.seed) != (first[0][1].sample_id, first[0][1].seed)
        ):
            obs_b, info_b = _masked_reset(envs, slot, req)
        start(slot, _slot_obs(obs_b, slot), _slot_info(info_b, slot), index, req)

    # gymnasium 1.4's AsyncVectorEnv (shared_memory=False) does not clear a worker's autoreset flag on
    # reset, so a slot reset right after its episode ended would be reset again, at random, by the next
    # step. There a finished slot idles through one step (absorbing the autoreset) before its reset.
    deferred = isinstance(envs, gym.vector.AsyncVectorEnv)
    to_reset: list[int] = []
    while any(r is not None for r in running) or (to_reset and queue):
        active = [slot for slot in range(n) if running[slot] is not None]
        texts = (
            policy.act(active, [running[s][1].obs for s in active], [running[s][1].info for s in active])
            if active
            else []
        )
        actions = [FILLER_ACTION] * n
        for slot, text in zip(active, texts):
            actions[slot] = text
        obs_b, rew_b, term_b, trunc_b, info_b = envs.step(tuple(actions))
        finished = []
        for slot, text in zip(active, texts):
            index, run = running[slot]
            run.texts.append(text)
            run.rewards.append(float(rew_b[slot]))
            run.obs, run.info = _slot_obs(obs_b, slot), _slot_info(info_b, slot)
            if term_b[slot] or trunc_b[slot]:
                traj = _finish(policy, slot, run, bool(term_b[slot]), bool(trunc_b[slot]))
                results[index] = traj
                running[slot] = None
                finished.append(slot)
                if on_episode is not None:
                    on_episode(traj)
                bar.update(1)
        ready, to_reset = (to_reset, finished) if deferred else (finished, [])
        for slot in ready:
            if queue:
                index, req = queue.popleft()
                obs_r, info_r = _masked_reset(envs, slot, req)
                start(slot, _slot_obs(obs_r, slot), _slot_info(info_r, slot), index, req)
    bar.close()
    return [results[i] for i in range(len(requests))]


def _finish(policy: Policy, slot: int, run: _Running, terminated: bool, truncated: bool) -> Trajectory:
    if policy.records_turns:
        turns: list[TurnRecord] = policy.take_turns(slot)
    else:  # a text-only policy: keep what it said, no tokens
        turns = [TurnRecord(observation_text="", action_text=t, finish="text") for t in run.texts]
    for turn, reward in zip(turns, run.rewards):
        turn.reward = reward
    info = _jsonable(run.info)
    req = run.request
    return Trajectory(
        uid=uuid.uuid4().hex[:16],
        sample_id=str(info["sample_id"]),
        task=str(info["task"]),
        policy=policy.label,
        turns=turns,
        group=req.group,
        group_index=req.group_index,
        seed=req.seed,
        sampling=policy.sampling_settings(),
        reward=float(sum(run.rewards)),
        terminated=terminated,
        truncated=truncated,
        final_info=info,
        final_text=str(run.obs["text"]),
    )


def _masked_reset(envs: gym.vector.VectorEnv, slot: int, req: EpisodeRequest):
    mask = np.zeros(envs.num_envs, dtype=np.bool_)
    mask[slot] = True
    seeds = [None] * envs.num_envs
    seeds[slot] = req.seed
    options = _options(req)
    options["reset_mask"] = mask
    return envs.reset(seed=seeds, options=options)


def _options(req: EpisodeRequest) -> dict[str, Any]:
    return {"sample_id": req.sample_id} if req.sample_id is not None else {}


def _seed_list(seed: int | None, n: int) -> list[int | None]:
    return [seed] * n


def _slot_obs(obs: dict[str, Any], slot: int) -> dict[str, Any]:
    return {key: value[slot] for key, value in obs.items()}


def _slot_info(info: dict[str, Any], slot: int) -> dict[str, Any]:
    """Slot ``slot``'s entries of a vector env's batched info (keys present only where ``_key`` is set)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[slot]:
            continue
        out[key] = _slot_info(value, slot) if isinstance(value, dict) else value[slot]
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="episodes", unit="ep")
