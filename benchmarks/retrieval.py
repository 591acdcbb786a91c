"""``medscope bench``: tool-call latency, env throughput, store build speed and memory, in one run.

Every ratio in the table compares numbers measured in the same run on the same files, so
machine load shifts both sides alike. Baselines: "decord" and "PyAV" are the tools called on
a directly decoding :class:`~medscope_gym.video.Video` (a reader kept open across calls, as
the env did before frame stores); "ours" is a tool call through ``ClinVideoEnv.step`` with
the frame store (crops, preview) and PyAV exact decoding (get_frame).

Measurement code of the source checkout (see :mod:`benchmarks`); ``medscope bench`` loads it from there.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import gymnasium as gym
import numpy as np

from benchmarks.videos import BenchVideoSpec, bench_video
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.protocol import format_answer, format_tool_call
from medscope_gym.store import StoreSettings, ensure_store, open_tool_video, store_settings
from medscope_gym.suite import Sample, Suite, write_suite
from medscope_gym.tools import ToolConfig, crop_video, get_frame, preview
from medscope_gym.video import DecordVideo, PyAVVideo

__all__ = [
    "BenchConfig",
    "bench_env",
    "format_report",
    "machine_description",
    "memory_probe",
    "one_sample_suite",
    "plain_decode_fps",
    "run_bench",
    "run_build_bench",
]

_CHECKOUT = Path(__file__).resolve().parent.parent  # the repository root: benchmarks/ is importable from it


@dataclass(frozen=True)
class BenchConfig:
    """What ``medscope bench`` measures; the defaults are the full run of docs/results.md."""

    minutes: tuple[float, ...] = (1.0, 10.0, 60.0, 120.0)
    """Lengths of the generated videos."""
    repeats: int = 15
    """Timed calls per operation for the fast paths (median reported)."""
    naive_repeats: int = 3
    """Timed calls per operation for the direct-decoding baselines (each can take seconds)."""
    vector_copies: tuple[int, ...] = (2, 4, 8)
    """Sync/AsyncVectorEnv sizes for the env steps/s rows."""
    env_minutes: float = 10.0
    """Video the env steps/s rows run on (the longest one below it if absent)."""
    env_vector_steps: int = 24
    """Timed vector steps per env steps/s row (after one warm-up step)."""
    build_pairs: int = 3
    """Plain decode / store build pairs per video, run back to back (the table shows the median ratio)."""
    video: BenchVideoSpec = field(default_factory=BenchVideoSpec)
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """The smoke-test run: 1- and 10-minute videos, few repeats, 2 vector copies."""
        base = {
            "minutes": (1.0, 10.0),
            "repeats": 5,
            "naive_repeats": 1,
            "vector_copies": (2,),
            "env_vector_steps": 8,
            "build_pairs": 1,
        }
        return cls(**{**base, **overrides})


# ---------------------------------------------------------------------------------- machine


def machine_description() -> dict[str, Any]:
    """CPU model, logical cores, RAM and load, for the table header."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    import decord  # optional (the [decord] extra); the direct-decoding baseline needs it

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gib": round(ram, 1),
        "load_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "decord": decord.__version__,
    }


# ---------------------------------------------------------------------------------- helpers


def _median_ms(fn: Callable[[int], object], repeats: int) -> float:
    times = []
    for k in range(repeats):
        t0 = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def one_sample_suite(root: Path, video: Path, duration: float, fps: float) -> Path:
    """A suite folder holding one choice question about ``video`` (linked, not copied)."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    link = root / "videos" / video.name
    if not link.exists():
        os.symlink(video, link)
    sample = Sample(
        id="bench",
        video=f"videos/{video.name}",
        duration=duration,
        fps=fps,
        question="Which instrument is used first?",
        answer="A",
        answer_type="choice",
        task="bench",
        evidence=((duration * 0.25, duration * 0.3),),
        options=("Grasper", "Hook"),
    )
    write_suite(root, [sample])
    return root


def bench_env(suite: Path, store_root: Path | None, **kw: Any) -> ClinVideoEnv:
    """A ClinVideoEnv on ``suite`` with stores under ``store_root`` (None: direct decoding) and no budgets."""
    big = 10**9
    return ClinVideoEnv(
        suite, frame_store=store_root, max_turns=big, max_tool_calls=big, max_tool_frames=big, **kw
    )


def _crop_text(start: float, end: float) -> str:
    return format_tool_call("crop_video", {"start_time": round(start, 2), "end_time": round(end, 2)})


def _frame_text(t: float) -> str:
    return format_tool_call("get_frame", {"timestamp": round(t, 2)})


def plain_decode_fps(path: Path) -> float:
    """Decode every frame once without colour conversion: the speed limit of any sequential pass."""
    t0 = time.perf_counter()
    with av.open(str(path)) as container:
        n = sum(1 for _ in container.decode(video=0))
    return n / (time.perf_counter() - t0)


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, from ``/proc/stat``; 0.0 elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """``fn()``, its wall and CPU seconds (this process, all threads) and the cores other processes used."""
    busy, cpu, t0 = _busy_cpu_s(), time.process_time(), time.perf_counter()
    value = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
    others = max(0.0, _busy_cpu_s() - busy - cpu) / wall if busy else float("nan")
    return value, wall, cpu, others


def _build_pairs(minutes: float, path: Path, store_root: Path, work: Path, pairs: int) -> dict:
    """Plain decode, then a store build, ``pairs`` times back to back on the same file.

    Each pair gives one ratio (build fps / plain fps); pairs keep both sides under nearly the
    same load on a shared machine. The last build stays in ``store_root`` for the latency rows.
    """
    rows, pairs = [], max(1, pairs)
    for k in range(pairs):
        root = store_root if k == pairs - 1 else work / f"build-{minutes:g}-{k}"
        plain, plain_s, plain_cpu, plain_others = _timed(lambda: plain_decode_fps(path))
        store, build_s, build_cpu, build_others = _timed(
            lambda r=root: ensure_store(path, r, StoreSettings())
        )
        frames = json.loads((store / "manifest.json").read_text())["num_frames"]
        rows.append(
            {
                "plain_fps": plain,
                "build_fps": frames / build_s,
                "build_s": build_s,
                "frames": frames,
                "ratio": frames / build_s / plain,
                "cpu_ratio": plain_cpu / build_cpu,
                "others_cores": (plain_others * plain_s + build_others * build_s) / (plain_s + build_s),
            }
        )
        if root != store_root:
            shutil.rmtree(root, ignore_errors=True)
    med = {
        key: statistics.median(r[key] for r in rows)
        for key in ("plain_fps", "build_fps", "build_s", "ratio", "cpu_ratio", "others_cores")
    }
    return {
        "video": f"{minutes:g} min",
        "frames": rows[0]["frames"],
        **med,
        "ratios": [r["ratio"] for r in rows],
        "pairs": rows,
    }


# ---------------------------------------------------------------------------------- measurements


def _latency_rows(minutes: float, path: Path, work: Path, cfg: BenchConfig) -> tuple[list[dict], dict]:
    """Build the store (timed against a plain decode), then time each tool three ways."""
    store_root = work / "stores"
    build = _build_pairs(minutes, path, store_root, work, cfg.build_pairs)

    tools = ToolConfig()
    pyav = PyAVVideo(path)
    duration = pyav.duration
    suite = one_sample_suite(work / f"suite-{minutes:g}", path, duration, cfg.video.fps)
    env = bench_env(suite, store_root)
    env.reset(seed=0)
    rng = np.random.default_rng([cfg.seed, int(minutes * 60)])
    rows = []
    decord = DecordVideo(path)
    for op, window in (
        ("crop_video 60 s", 60.0),
        ("crop_video 600 s", 600.0),
        ("get_frame", None),
        ("preview", None),
    ):
        span = min(window or 0.0, duration)
        starts = rng.uniform(0.0, max(duration - span, 1e-3), size=max(cfg.repeats, cfg.naive_repeats) + 1)
        if window is not None:

            def direct(video, k, s=starts, span=span):
                crop_video(video, {"start_time": s[k], "end_time": s[k] + span}, tools)

            def ours(k, s=starts, span=span):
                env.step(_crop_text(s[k], s[k] + span))
        elif op == "get_frame":

            def direct(video, k, s=starts):
                get_frame(video, {"timestamp": s[k]}, tools)

            def ours(k, s=starts):
                env.step(_frame_text(s[k]))
        else:

            def direct(video, k):
                preview(video, tools)

            # the same StoredVideo the env serves its preview from (same store, backend and grid)
            stored = open_tool_video(path, frame_store=store_root, settings=store_settings(tools))

            def ours(k, v=stored):
                preview(v, tools)

        row = {"video": f"{minutes:g} min", "op": op if span == (window or span) else f"{op} (whole video)"}
        if op == "crop_video 60 s":  # warm-up once: the readers' first decode
            direct(decord, -1)
            direct(pyav, -1)
        reps = 1 if op == "preview" else cfg.naive_repeats  # a direct preview of 2 h takes a minute
        row["decord_ms"] = _median_ms(lambda k, f=direct: f(decord, k), reps)
        row["pyav_ms"] = _median_ms(lambda k, f=direct: f(pyav, k), reps)
        ours(-1)  # warm-up: page in the store, open the exact decoder once
        row["ours_ms"] = _median_ms(ours, cfg.repeats)
        rows.append(row)
        env.reset(seed=0)  # keeps the per-episode logs short; not timed
    decord.close()
    pyav.close()
    env.close()
    return rows, build


def _interleaved_crops(suites: dict[float, Path], store_root: Path, cfg: BenchConfig) -> list[dict]:
    """crop_video 60 s through the env, one call per video in turn, so load drifts hit every length alike."""
    envs = {m: bench_env(suite, store_root) for m, suite in suites.items()}
    times: dict[float, list[float]] = {m: [] for m in suites}
    rng = np.random.default_rng(cfg.seed)
    for env in envs.values():
        env.reset(seed=0)
        env.step(_crop_text(0.0, 60.0))  # warm-up
    for k in range(3 * cfg.repeats):
        for m, env in envs.items():
            d = env.unwrapped.current_sample.duration
            s = float(rng.uniform(0.0, max(d - 60.0, 1e-3)))
            t0 = time.perf_counter()
            env.step(_crop_text(s, s + 60.0))
            times[m].append(time.perf_counter() - t0)
            if k % 8 == 7:
                env.reset(seed=0)  # keeps the episode logs short; not timed
    for env in envs.values():
        env.close()
    return [{"video": f"{m:g} min", "ours_ms": statistics.median(t) * 1000.0} for m, t in times.items()]


def _vector_rows(suite: Path, store_root: Path, cfg: BenchConfig) -> list[dict]:
    """Env steps/s with a fixed script per episode: crop 60 s, get_frame, answer (then autoreset)."""
    rows = []
    settings = [("single env", 1, None)]
    settings += [(f"SyncVectorEnv ×{n}", n, "sync") for n in cfg.vector_copies]
    settings += [(f"AsyncVectorEnv ×{n}", n, "async") for n in cfg.vector_copies]
    for label, n, kind in settings:

        def make(i: int = 0):
            return lambda: bench_env(suite, store_root)

        if kind is None:
            env = make()()
        elif kind == "sync":
            env = gym.vector.SyncVectorEnv([make(i) for i in range(n)])
        else:
            env = gym.vector.AsyncVectorEnv([make(i) for i in range(n)], shared_memory=False)
        env.reset(seed=cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        duration = env.unwrapped.suite[0].duration if kind is None else None
        duration = duration or _suite_duration(suite)

        cycle = 3 if kind is None else 4  # vector envs spend a 4th step on the autoreset

        def script(step: int, d=duration, rng=rng, cycle=cycle) -> str:
            phase = step % cycle
            if phase == 0:
                s = float(rng.uniform(0, max(d - 60.0, 1e-3)))
                return _crop_text(s, s + 60.0)
            if phase == 1:
                return _frame_text(float(rng.uniform(0, d)))
            return format_answer("A")

        steps = 0
        for warm in range(1 + cfg.env_vector_steps):
            actions = script(warm) if kind is None else tuple(script(warm) for _ in range(n))
            if warm == 1:
                t0 = time.perf_counter()
            result = env.step(actions)
            if kind is None and (result[2] or result[3]):
                env.reset()
            if warm >= 1:
                steps += n
        elapsed = time.perf_counter() - t0
        env.close()
        rows.append({"setting": label, "copies": n, "steps_per_s": steps / elapsed})
    return rows


def _suite_duration(suite: Path) -> float:
    return Suite.load(suite)[0].duration


def memory_probe(suite: str, store_root: str | None, backend: str, calls: int) -> float:
    """Reset, then ``calls`` random crops and get_frames; the process's peak RSS in MiB.

    Run in a fresh interpreter (see :func:`_peak_rss`) so the number is the env's own footprint.
    """
    env = bench_env(Path(suite), Path(store_root) if store_root else None, video_backend=backend)
    env.reset(seed=0)
    d = env.unwrapped.current_sample.duration
    rng = np.random.default_rng(1)
    for _ in range(calls):
        s = float(rng.uniform(0, max(d - 60.0, 1e-3)))
        env.step(_crop_text(s, s + 60.0))
        env.step(_frame_text(float(rng.uniform(0, d))))
    env.close()
    return _peak_rss_mib()


def _peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux carries that over from
    the parent across fork and exec, so a child of a big process would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_rss(suite: Path, store_root: Path | None, backend: str, calls: int) -> float:
    code = (
        "import sys; from benchmarks.retrieval import memory_probe; "
        "print(memory_probe(sys.argv[1], sys.argv[2] or None, sys.argv[3], int(sys.argv[4])))"
    )
    path = os.pathsep.join(p for p in (str(_CHECKOUT), os.environ.get("PYTHONPATH", "")) if p)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(Path(suite).resolve()),
            str(Path(store_root).resolve()) if store_root else "",
            backend,
            str(calls),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONPATH": path},
    )
    return float(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- report


def run_bench(
    cfg: BenchConfig, work_dir: str | os.PathLike[str] | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run every measurement of ``cfg``; returns the results as a JSON-ready dict.

    Stores are built into a fresh temporary folder (the build is one of the measurements);
    the generated videos are cached (see :func:`benchmarks.videos.bench_video`).
    """
    machine = machine_description()
    work = Path(tempfile.mkdtemp(prefix="medscope-bench-", dir=work_dir))
    try:
        latency, builds, memory, suites = [], [], [], {}
        for minutes in cfg.minutes:
            log(f"[bench] {minutes:g}-minute video: rendering if needed …")
            path = bench_video(minutes, cfg.video)
            log(f"[bench] {minutes:g}-minute video: store build and tool latencies …")
            rows, build = _latency_rows(minutes, path, work, cfg)
            latency += rows
            builds.append(build)
            suites[minutes] = work / f"suite-{minutes:g}"
            log(f"[bench] {minutes:g}-minute video: peak memory …")
            memory.append(
                {
                    "video": f"{minutes:g} min",
                    "ours_mib": _peak_rss(suites[minutes], work / "stores", "pyav", 20),
                    "decord_mib": _peak_rss(suites[minutes], None, "decord", 20),
                }
            )
        log("[bench] crop_video 60 s on every video, interleaved …")
        interleaved = _interleaved_crops(suites, work / "stores", cfg)
        env_minutes = max([m for m in cfg.minutes if m <= cfg.env_minutes] or [min(cfg.minutes)])
        log(f"[bench] env steps/s on the {env_minutes:g}-minute video …")
        vector = _vector_rows(suites[env_minutes], work / "stores", cfg)
        machine["load_1min_end"] = round(os.getloadavg()[0], 2)
        return {
            "machine": machine,
            "config": asdict(cfg),
            "latency": latency,
            "build": builds,
            "memory": memory,
            "env": vector,
            "env_video": f"{env_minutes:g} min",
            "interleaved": interleaved,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_build_bench(
    cfg: BenchConfig, work_dir: str | os.PathLike[str] | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Only the store build vs plain decode pairs of :func:`run_bench` (``medscope bench --build-only``)."""
    machine = machine_description()
    work = Path(tempfile.mkdtemp(prefix="medscope-bench-", dir=work_dir))
    try:
        builds = []
        for minutes in cfg.minutes:
            log(f"[bench] {minutes:g}-minute video: rendering if needed …")
            path = bench_video(minutes, cfg.video)
            log(f"[bench] {minutes:g}-minute video: {cfg.build_pairs} plain decode / store build pairs …")
            builds.append(_build_pairs(minutes, path, work / "stores", work, cfg.build_pairs))
            shutil.rmtree(work / "stores", ignore_errors=True)
        machine["load_1min_end"] = round(os.getloadavg()[0], 2)
        return {"machine": machine, "config": asdict(cfg), "build": builds}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def format_report(result: dict[str, Any]) -> str:
    """The markdown table ``medscope bench`` prints (and docs/results.md shows)."""
    m, c = result["machine"], result["config"]
    v = c["video"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} logical cores, {m['ram_gib']} GiB RAM; load {m['load_1min']} at "
        f"start, {m.get('load_1min_end', '?')} at end; Python {m['python']}, PyAV {m['pyav']} (libavcodec "
        f"{m['ffmpeg']}), decord {m['decord']}.",
        f"Videos: generated H.264 {v['width']}×{v['height']} at {v['fps']:g} fps, keyframe every "
        f"{v['keyframe_interval']} frames."
        + (
            f" Medians of {c['repeats']} calls (ours) and {c['naive_repeats']} (direct decoding; 1 for a "
            "direct preview). Tool defaults: 1 fps, ≤ 128 frames, ≤ 224² pixels; get_frame: 3 native frames."
            if result.get("latency")
            else ""
        ),
    ]
    if result.get("latency"):
        lines += [
            "",
            "| video | operation | decord direct (ms) | PyAV direct (ms) | ours (ms) | decord / ours "
            "| PyAV / ours |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
    for r in result.get("latency", []):
        lines.append(
            f"| {r['video']} | {r['op']} | {r['decord_ms']:.1f} | {r['pyav_ms']:.1f} | {r['ours_ms']:.2f} "
            f"| {r['decord_ms'] / r['ours_ms']:.0f}× | {r['pyav_ms'] / r['ours_ms']:.0f}× |"
        )
    pairs = c.get("build_pairs", 1)
    lines += [
        "",
        "| video | frames | plain decode (fps) | store build (fps) "
        f"| build / plain (median of {pairs}) | each pair | build / plain per CPU second "
        "| other processes (cores) | build time (s) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for b in result["build"]:
        each = " / ".join(f"{r:.0%}" for r in b.get("ratios", [b["build_fps"] / b["plain_fps"]]))
        lines.append(
            f"| {b['video']} | {b['frames']} | {b['plain_fps']:.0f} | {b['build_fps']:.0f} "
            f"| {b.get('ratio', b['build_fps'] / b['plain_fps']):.0%} | {each} "
            f"| {b.get('cpu_ratio', float('nan')):.0%} | {b.get('others_cores', float('nan')):.2f} "
            f"| {b['build_s']:.1f} |"
        )
    if "memory" not in result:
        return "\n".join(lines)
    lines += [
        "",
        "| video | env peak RSS, ours (MiB) | env peak RSS, decord direct (MiB) |",
        "|---|---:|---:|",
    ]
    for r in result["memory"]:
        lines.append(f"| {r['video']} | {r['ours_mib']:.0f} | {r['decord_mib']:.0f} |")
    lines += [
        "",
        f"| env ({result['env_video']} video; crop 60 s, get_frame, answer) | env steps/s |",
        "|---|---:|",
    ]
    for r in result["env"]:
        lines.append(f"| {r['setting']} | {r['steps_per_s']:.1f} |")
    inter = result.get("interleaved") or []
    if inter:
        lines += [
            "",
            "| crop_video 60 s through the env, videos interleaved | ours (ms) | vs the first |",
            "|---|---:|---:|",
        ]
        for r in inter:
            lines.append(f"| {r['video']} | {r['ours_ms']:.2f} | {r['ours_ms'] / inter[0]['ours_ms']:.2f}× |")
    return "\n".join(lines)
