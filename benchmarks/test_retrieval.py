"""pytest-benchmark view of ``medscope bench``: tool calls three ways, store builds, env steps.

Run ``pytest benchmarks/ --benchmark-enable`` (the project's default options disable timing, so
a plain ``pytest benchmarks/`` only checks that every benchmark runs). Compare within one run:
``--benchmark-group-by=group`` puts the decord, PyAV and store rows of one operation together.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from benchmarks.retrieval import bench_env, plain_decode_fps
from medscope_gym.protocol import format_answer, format_tool_call
from medscope_gym.store import StoreSettings, build_store, open_tool_video
from medscope_gym.tools import ToolConfig, crop_video, get_frame, preview
from medscope_gym.video import DecordVideo, PyAVVideo

TOOLS = ToolConfig()


def _starts(duration: float, span: float, n: int = 64) -> list[float]:
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, max(duration - span, 1e-3), size=n).tolist()


class _Cycle:
    """Successive arguments for successive benchmark rounds (no call repeats the previous window)."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.k = values, 0

    def __call__(self) -> float:
        self.k += 1
        return self.values[self.k % len(self.values)]


@pytest.mark.parametrize("span", [60.0, 600.0], ids=["60s", "600s"])
@pytest.mark.parametrize("how", ["decord", "pyav", "ours"])
def test_crop_video(benchmark, bench_case, how, span):
    minutes, path, stores, suite, duration = bench_case
    benchmark.group = f"crop_video {span:g}s {minutes:g}min"
    nxt = _Cycle(_starts(duration, span))
    if how == "ours":
        env = bench_env(suite, stores)
        env.reset(seed=0)

        def call():
            s = nxt()
            args = {"start_time": round(s, 2), "end_time": round(s + span, 2)}
            env.step(format_tool_call("crop_video", args))

        benchmark.pedantic(call, rounds=20, warmup_rounds=1)
    else:
        video = DecordVideo(path) if how == "decord" else PyAVVideo(path)

        def call():
            s = nxt()
            crop_video(video, {"start_time": s, "end_time": s + span}, TOOLS)

        benchmark.pedantic(call, rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("how", ["decord", "pyav", "ours"])
def test_get_frame(benchmark, bench_case, how):
    minutes, path, stores, suite, duration = bench_case
    benchmark.group = f"get_frame {minutes:g}min"
    nxt = _Cycle(_starts(duration, 0.0))
    if how == "ours":
        env = bench_env(suite, stores)
        env.reset(seed=0)
        benchmark.pedantic(
            lambda: env.step(format_tool_call("get_frame", {"timestamp": round(nxt(), 2)})),
            rounds=10,
            warmup_rounds=1,
        )
    else:
        video = DecordVideo(path) if how == "decord" else PyAVVideo(path)
        benchmark.pedantic(lambda: get_frame(video, {"timestamp": nxt()}, TOOLS), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("how", ["decord", "pyav", "ours"])
def test_preview(benchmark, bench_case, how):
    minutes, path, stores, *_ = bench_case
    benchmark.group = f"preview {minutes:g}min"
    if how == "ours":
        video = open_tool_video(path, frame_store=stores, settings=StoreSettings())  # what the env opens
        benchmark.pedantic(lambda: preview(video, TOOLS), rounds=10, warmup_rounds=1)
    else:
        video = DecordVideo(path) if how == "decord" else PyAVVideo(path)
        benchmark.pedantic(lambda: preview(video, TOOLS), rounds=1)


@pytest.mark.parametrize("what", ["plain_decode", "store_build"])
def test_store_build_vs_plain_decode(benchmark, bench_case, what, tmp_path):
    minutes, path, *_ = bench_case
    benchmark.group = f"sequential pass {minutes:g}min"
    if what == "plain_decode":
        benchmark.pedantic(lambda: plain_decode_fps(path), rounds=1)
    else:
        runs = iter(range(10**6))
        benchmark.pedantic(lambda: build_store(path, tmp_path / str(next(runs)), StoreSettings()), rounds=1)


@pytest.mark.parametrize("setting", ["single", "sync2", "sync4", "sync8", "async2", "async4", "async8"])
def test_env_steps(benchmark, bench_case, setting):
    minutes, _, stores, suite, duration = bench_case
    benchmark.group = f"env steps {minutes:g}min (crop, get_frame, answer)"
    n = 1 if setting == "single" else int(setting[-1])
    fns = [lambda: bench_env(suite, stores) for _ in range(n)]
    if setting == "single":
        env = fns[0]()
    elif setting.startswith("sync"):
        env = gym.vector.SyncVectorEnv(fns)
    else:
        env = gym.vector.AsyncVectorEnv(fns, shared_memory=False)
    env.reset(seed=0)
    nxt = _Cycle(_starts(duration, 60.0))

    def one_cycle():
        """crop, get_frame, answer (+ the vector envs' autoreset step)."""
        s = nxt()
        actions = [
            format_tool_call("crop_video", {"start_time": round(s, 2), "end_time": round(s + 60, 2)}),
            format_tool_call("get_frame", {"timestamp": round(s + 30, 2)}),
            format_answer("A"),
        ]
        if setting != "single":
            actions.append(format_answer("A"))
        for a in actions:
            out = env.step(a if setting == "single" else (a,) * n)
        if setting == "single" and (out[2] or out[3]):
            env.reset()

    benchmark.pedantic(one_cycle, rounds=5, warmup_rounds=1)
    benchmark.extra_info["env_steps_per_round"] = 4 * n if setting != "single" else 3
    env.close()
