"""Run the testbed recipe for one seed, stage by stage, resumable, into one results table.

Layout of ``OUT/seed-S/``::

    data/{train,rl,heldout}/              testbed suites (training streams fresh per seed; held-out fixed)
    data/heldout-reading/                  the held-out videos asked "which symbol is on screen at t"
    model/                                 the tiny model built from scratch
    stage-1-perception/run                 Stage I: perception warm-up (single-turn, fresh videos)
    stage-2-vcot/run, /eval                Stage II: visual-CoT SFT (crop, frame, answer) from Stage I
    answer-only/run, /eval                 the same SFT without tool calls, from Stage I
    stage-3-grpo/run, /eval                Stage III: GA-GRPO from Stage II
    uniform-frames/run                     the uniform-frames model (``uniform:`` set), from Stage I
    baselines/<name>/metrics.json          no_tools, random, search, oracle, uniform (uniform frames)
    ablation/<variant>/seed-S              the reward ablation (``medscope recipe-ablate``), ablation.md
    results.json, results.md, curves.png

A stage whose ``run/final/`` and ``eval/metrics.json`` (Stage I: ``run/perception.json``) exist is
skipped; a stage killed mid-training resumes from its latest checkpoint (SFT and GA-GRPO: the trainers'
own resume; Stage I: ``PerceptionConfig.save_every``). The table is rewritten after every stage; once
the stages have run, each row is also scored on the shorter and the longer half of the held-out videos
(``by_length``), from its saved episodes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medscope_gym.agents.evaluate import TABLE_COLUMNS
from medscope_gym.agents.recipe.config import RecipeConfig
from medscope_gym.agents.scripted import SearchStyle
from medscope_gym.atomic import atomic_write_figure, atomic_write_text

if TYPE_CHECKING:
    from medscope_gym.agents.grpo.config import GRPOConfig
    from medscope_gym.agents.recipe.perception import PerceptionConfig
    from medscope_gym.agents.rollout.trajectory import Trajectory

__all__ = [
    "COLUMNS",
    "LENGTH_COLUMNS",
    "STAGES",
    "final_of",
    "perception_config",
    "run_recipe",
    "stage_three_config",
    "uniform_frames_baseline",
]

STAGES = ("perception", "vcot", "answer_only", "grpo", "baselines")
#: The results table's metrics: ``medscope eval``'s columns less the per-episode bookkeeping.
COLUMNS = tuple(c for c in TABLE_COLUMNS if c not in ("episodes", "turns", "reward", "format_rate"))
#: The columns of the table by video length (the issue's: answers, evidence found, interval answers).
LENGTH_COLUMNS = ("accuracy", "evidence_R@0.5", "mIoU")
#: Table rows in order: (key, label).
ROWS = (
    ("no_tools", "question/preview only (`no_tools`)"),
    ("random", "random tools (`random`)"),
    ("uniform", "uniform frames"),
    ("answer_only", "answer-only SFT"),
    ("vcot", "Stage II: visual-CoT SFT"),
    ("grpo", "Stage III: GA-GRPO"),
    ("search", "search reference (Stage II's teacher)"),
    ("oracle", "oracle"),
)
_FOLDERS = {
    "perception": "stage-1-perception",
    "vcot": "stage-2-vcot",
    "answer_only": "answer-only",
    "grpo": "stage-3-grpo",
}


def _sft_defaults(cfg: RecipeConfig) -> dict[str, Any]:
    # eval_limit 0: the recipe scores every stage itself, on its held-out suite
    return {
        "decimals": 1,
        "search": cfg.search,
        "threads": cfg.threads,
        "seed": cfg.seed,
        "progress": False,
        "log_every": 50,
        "eval_limit": 0,
    }


def run_recipe(cfg: RecipeConfig) -> dict[str, Any]:
    """Run every configured stage for ``cfg.seed`` (skipping finished ones); returns the results dict."""
    root = Path(cfg.out) / f"seed-{cfg.seed}"
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "recipe.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    results = _load_results(root)
    suites = _build_data(cfg, root)
    model = _build_model(cfg, root)
    start_of = {"perception": model, "vcot": None, "answer_only": None, "grpo": None}
    for stage in cfg.stages:
        if stage == "baselines":
            continue
        start = start_of[stage] or final_of(root, _previous(stage, cfg))
        final = _run_stage(cfg, root, stage, start, suites, results)
        if stage == "perception":
            start_of["vcot"] = start_of["answer_only"] = final
        elif stage == "vcot":
            start_of["grpo"] = final
    if "baselines" in cfg.stages:
        _run_baselines(cfg, root, suites, results)
    _rescore(root, results, cfg.style)
    if cfg.sampled_temperature is not None:
        _run_sampled(cfg, root, suites, results)
    _write_results(cfg, root, results)
    return results


def _previous(stage: str, cfg: RecipeConfig) -> str:
    return {"vcot": "perception", "answer_only": "perception", "grpo": "vcot"}[stage]


def final_of(root: Path, stage: str) -> Path:
    """``stage``'s final checkpoint in the seed folder ``root``; a clear error when it has not finished."""
    final = root / _FOLDERS[stage] / "run" / "final"
    if not final.is_dir():
        raise FileNotFoundError(f"stage {stage} has not finished ({final} is missing); run it first")
    return final


# ----------------------------------------------------------------------------------------- data, model
def _build_data(cfg: RecipeConfig, root: Path) -> dict[str, Path]:
    from medscope_gym.suite import SUITE_FILE
    from medscope_gym.synthetic.testbed import MAIN_TEMPLATES, TestbedConfig, build_testbed_suite

    lo, hi = cfg.train_duration
    plans = {
        # fresh streams per seed, on different videos: a question is never trained on twice (Stage I
        # draws its own videos, agents/recipe/perception.py)
        "train": TestbedConfig(
            cfg.train_videos, lo, hi, 10_000 * cfg.seed + 2, templates=MAIN_TEMPLATES,
            per_video=cfg.per_video, video_prefix="t", events=cfg.events,
        ),
        "rl": TestbedConfig(
            cfg.train_videos, lo, hi, 10_000 * cfg.seed + 3, templates=MAIN_TEMPLATES,
            per_video=cfg.per_video, video_prefix="r", events=cfg.events,
        ),
        "heldout": TestbedConfig(
            cfg.heldout_videos, *cfg.heldout_duration, cfg.heldout_seed, templates=MAIN_TEMPLATES,
            per_video=cfg.per_video, splits=(0.0, 0.5, 0.5), video_prefix="h", events=cfg.events,
        ),
        # the same held-out videos (same seed and durations): which symbol is on screen at a given time
        "heldout-reading": TestbedConfig(
            cfg.heldout_videos, *cfg.heldout_duration, cfg.heldout_seed, templates=("symbol_at",),
            per_video=cfg.per_video, splits=(0.0, 0.5, 0.5), video_prefix="h", events=cfg.events,
        ),
    }  # fmt: skip
    if not cfg.reading_check:
        del plans["heldout-reading"]
    out = {}
    for name, plan in plans.items():
        folder = root / "data" / name
        if not (folder / SUITE_FILE).is_file():
            t0 = time.perf_counter()
            build_testbed_suite(folder, plan)
            print(f"recipe: built {name} suite ({plan.n_videos} videos) in {time.perf_counter() - t0:.1f} s")
        out[name] = folder
    return out


def _build_model(cfg: RecipeConfig, root: Path) -> Path:
    from medscope_gym.agents.vlm.encoding import FrameConfig
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_tiny_model, tiny_policy_config

    folder = root / "model"
    if not (folder / "config.json").is_file():
        tiny = TinyModelConfig(**{"seed": cfg.seed, **cfg.model})
        build_tiny_model(folder, tiny)
        print(f"recipe: built the tiny model at {folder}")
    policy = tiny_policy_config()
    policy.frames = FrameConfig(**cfg.frames)
    policy.sampling.max_new_tokens = cfg.max_new_tokens
    policy.save(folder)
    return folder


# ----------------------------------------------------------------------------------------- stages
def _run_perception(cfg: RecipeConfig, root: Path, start: Path, results: dict) -> Path:
    """Stage I (agents/recipe/perception.py): scored on its own held-out examples, not in episodes (the
    model has not met the tool protocol yet)."""
    from medscope_gym.agents.recipe.perception import run_perception

    run = root / _FOLDERS["perception"] / "run"
    final = run / "final"
    if final.is_dir() and (run / "perception.json").is_file() and "perception" in results["rows"]:
        print("recipe: perception finished earlier, skipped")
        return final
    t0 = time.perf_counter()
    result = run_perception(start, run, perception_config(cfg))
    results["rows"]["perception"] = {
        "heldout": result["heldout"],
        # more than configured where ``reading_until``, ``copy_until`` or ``listing_until`` added some
        "reading_steps": result["reading_steps"],
        "copy_steps": result["copy_steps"],
        "listing_steps": result["listing_steps"],
        "train_s": round(time.perf_counter() - t0, 1),
    }
    _write_results(cfg, root, results)
    return final


def perception_config(cfg: RecipeConfig) -> PerceptionConfig:
    """Stage I's settings: ``cfg.perception`` on the recipe's seed, threads, Stage I lengths and crop
    layout (the rehearsal lays its examples out the same way)."""
    from medscope_gym.agents.recipe.perception import PerceptionConfig

    settings = {
        "seed": cfg.seed,
        "threads": cfg.threads,
        "duration": cfg.stage_one_duration,
        "events": cfg.events,
        "crops_as_frames": bool(cfg.frames.get("crops_as_frames", False)),  # crops as Stage II shows them
        "restate_question": bool(cfg.frames.get("restate_question", False)),  # tool responses, the same
        "search": cfg.search,
        **cfg.perception,
    }
    return PerceptionConfig.from_dict(settings, source="recipe perception")


def _run_stage(
    cfg: RecipeConfig, root: Path, stage: str, start: Path, suites: dict[str, Path], results: dict
) -> Path:
    if stage == "perception":
        return _run_perception(cfg, root, start, results)
    folder = root / _FOLDERS[stage]
    run, final, metrics = folder / "run", folder / "run" / "final", folder / "eval" / "metrics.json"
    if final.is_dir() and metrics.is_file() and stage in results["rows"]:
        print(f"recipe: {stage} finished earlier, skipped")
        return final
    t0 = time.perf_counter()
    if not final.is_dir():
        if stage == "grpo":
            from medscope_gym.agents.grpo.trainer import train_grpo

            train_grpo(stage_three_config(cfg, start, suites, run))
        else:
            from medscope_gym.agents.sft.config import SFTConfig
            from medscope_gym.agents.sft.trainer import train_sft

            overrides = {"vcot": cfg.vcot, "answer_only": cfg.answer_only}[stage]
            sft = {
                **_sft_defaults(cfg),
                "model": str(start),
                "out": str(run),
                "suite": str(suites["train"]),
                "reference": "answer_only" if stage == "answer_only" else "oracle",
                **overrides,
            }
            train_sft(SFTConfig.from_dict(sft, source=f"recipe {stage}"), auxiliary=_rehearsal(cfg, start))
    train_s = time.perf_counter() - t0
    summary = _evaluate(cfg, str(final), suites["heldout"], folder / "eval")
    row = {**_row(summary), "train_s": round(train_s, 1)}
    if stage != "answer_only":
        row.update(_listings(folder / "eval", suites["heldout"], cfg.style))
    if "heldout-reading" in suites and stage != "answer_only":  # Stage II and III
        reading = _evaluate(cfg, str(final), suites["heldout-reading"], folder / "eval-reading")
        row["reading_accuracy"] = reading["overall"].get("accuracy")
        _print_stage(f"{stage} (reading check, time given)", reading)
    row["eval_s"] = round(time.perf_counter() - t0 - train_s, 1)
    results["rows"][stage] = row
    _write_results(cfg, root, results)
    _print_stage(stage, summary)
    return final


def stage_three_config(cfg: RecipeConfig, start: Path, suites: dict[str, Path], out: Path) -> GRPOConfig:
    """Stage III's GA-GRPO settings: ``cfg.grpo`` from ``start`` on the Stage III stream (``suites["rl"]``),
    validated on the held-out val half; full fine-tuning (the tiny model has no LoRA to spare)."""
    from medscope_gym.agents.grpo.config import GRPOConfig

    grpo = {
        "model": str(start),
        "out": str(out),
        "suite": str(suites["rl"]),
        "eval_suite": str(suites["heldout"]),
        "eval_splits": ["val"],
        "eval_at_start": False,
        "lora": False,
        "threads": cfg.threads,
        "seed": cfg.seed,
        "max_new_tokens": cfg.max_new_tokens,
        "tensorboard": False,
        "progress": False,
        **cfg.grpo,
    }
    return GRPOConfig.from_dict(grpo, source="recipe grpo")


def _listings(evaluated: Path, heldout: Path, style: SearchStyle) -> dict[str, float]:
    """The agent's preview and crop listings in its held-out episodes, scored against the captions
    (agents/recipe/listings.py): ``listing_preview`` / ``listing_crop`` exact, ``…_items`` per item;
    ``listing_close``: the close crops after crop listings, both times right."""
    from medscope_gym.agents.recipe.listings import SCORED_KINDS, saved_listing_scores

    scores = saved_listing_scores(evaluated, heldout, style)
    return {
        f"listing_{kind}{suffix}": round(scores[kind][key], 4) if kind in scores else None
        for kind in SCORED_KINDS
        for suffix, key in (("", "exact"), ("_items", "items"))
    }


def _rehearsal(cfg: RecipeConfig, start: Path):
    """Stage I's examples for an SFT stage (``cfg.rehearsal``), or None."""
    if not cfg.rehearsal:
        return None
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import Rehearsal, policy_system_prompt

    stage_one = perception_config(cfg)  # laid out as Stage I's examples
    return Rehearsal(
        AutoProcessor.from_pretrained(start),
        tuple(cfg.rehearsal["skills"]),
        batch_size=int(cfg.rehearsal.get("batch_size", 4)),
        weight=float(cfg.rehearsal.get("weight", 1.0)),
        duration=stage_one.duration,
        crops_as_frames=stage_one.crops_as_frames,
        seed=cfg.seed,
        irregular=stage_one.irregular_times,
        episode=stage_one.episode_layout,
        first_turn=stage_one.first_turn,
        style=stage_one.style,
        restate=stage_one.restate_question,
        events=stage_one.events,
        system_prompt=policy_system_prompt(start),
    )


def _evaluate(
    cfg: RecipeConfig, policy: str, heldout: Path, out: Path, temperature: float = 0.0
) -> dict[str, dict[str, Any]]:
    from medscope_gym.agents.evaluate import EvalConfig, evaluate

    ev = EvalConfig(
        policy=policy,
        suite=str(heldout),
        splits=("val", "test"),
        temperature=temperature,
        out=str(out),
        threads=cfg.threads,
        limit=cfg.eval_limit,
        seed=cfg.seed,
        progress=False,
        max_new_tokens=cfg.max_new_tokens,
    )
    summary, _ = evaluate(ev)
    return summary


def _run_baselines(cfg: RecipeConfig, root: Path, suites: dict[str, Path], results: dict) -> None:
    for name in cfg.baselines:
        out = root / "baselines" / name
        if name in results["rows"] and (out / "metrics.json").is_file():
            continue
        t0 = time.perf_counter()
        extra: dict[str, Any] = {}
        if name == "uniform":
            agent = next((s for s in ("grpo", "vcot") if s in results["rows"]), None)
            if agent is None:
                print("recipe: the uniform-frames baseline needs a finished vcot or grpo stage; skipped")
                continue
            frames = max(1, round(results["rows"][agent]["frames_seen"] - _preview_frames(suites["heldout"])))
            if cfg.uniform:
                model, train_s = _train_uniform_model(cfg, root, suites, frames)
                crops, extra = 1, {"uniform_model": "trained", "train_s": train_s}
            else:
                model = str(root / _FOLDERS["vcot"] / "run" / "final")
                crops = 2 if cfg.vcot.get("reference") == "search" else 1
                extra = {"uniform_model": "vcot"}
            t0 = time.perf_counter()
            summary = uniform_frames_baseline(
                model,
                suites["heldout"],
                frames,
                out,
                crops=crops,
                threads=cfg.threads,
                limit=cfg.eval_limit,
                seed=cfg.seed,
                max_new_tokens=cfg.max_new_tokens,
            )
        else:
            summary = _evaluate(cfg, name, suites["heldout"], out)
        results["rows"][name] = {**_row(summary), **extra, "eval_s": round(time.perf_counter() - t0, 1)}
        _write_results(cfg, root, results)
        _print_stage(name, summary)


def _train_uniform_model(
    cfg: RecipeConfig, root: Path, suites: dict[str, Path], frames: int
) -> tuple[str, float]:
    """The uniform-frames model: Stage I fine-tuned, as the answer-only model is, on the training
    questions answered after one scripted crop of ``frames`` evenly spread frames (SFT's "uniform"
    reference; ``cfg.uniform`` sets the rest). Returns its final checkpoint and its training seconds
    (0 when it had finished earlier)."""
    from medscope_gym.agents.sft.config import SFTConfig
    from medscope_gym.agents.sft.trainer import train_sft

    run = root / "uniform-frames" / "run"
    t0 = time.perf_counter()
    if not (run / "final").is_dir():
        start = final_of(root, "perception")
        sft = {
            **_sft_defaults(cfg),
            "model": str(start),
            "out": str(run),
            "suite": str(suites["train"]),
            "reference": "uniform",
            "uniform_crops": 1,
            "uniform_frames": frames,
            **cfg.uniform,
        }
        train_sft(SFTConfig.from_dict(sft, source="recipe uniform"), auxiliary=_rehearsal(cfg, start))
    return str(run / "final"), round(time.perf_counter() - t0, 1)


def _eval_folder(root: Path, key: str) -> Path:
    return root / _FOLDERS[key] / "eval" if key in _FOLDERS else root / "baselines" / key


def _rescore(root: Path, results: dict, style: SearchStyle) -> None:
    """Rows missing a column (metrics added since they were scored) or their split by video length are
    recomputed from their saved episodes, their listings in the run's ``style``; nothing is replayed."""
    from medscope_gym.agents.evaluate import summarise_trajectories
    from medscope_gym.agents.rollout.trajectory import load_trajectories

    for key, row in results["rows"].items():
        saved = _eval_folder(root, key) / "trajectories"
        if key == "perception" or not saved.exists():
            continue
        incomplete = not all(c in row for c in COLUMNS)
        if incomplete or "by_length" not in row:
            episodes = load_trajectories(saved, frames=False)  # the scores read no pixels
            if incomplete:
                row.update(_row(summarise_trajectories(episodes)))
            if "by_length" not in row:
                row["by_length"] = _by_length(episodes)
        if key in ("vcot", "grpo") and "listing_preview" not in row:
            row.update(_listings(saved.parent, root / "data" / "heldout", style))


def _run_sampled(cfg: RecipeConfig, root: Path, suites: dict[str, Path], results: dict) -> None:
    """The trained models once more on the held-out questions, sampling at ``cfg.sampled_temperature``."""
    for key in ("answer_only", "vcot", "grpo"):
        row = results["rows"].get(key)
        if row is None or "sampled" in row:
            continue
        final = root / _FOLDERS[key] / "run" / "final"
        out = root / _FOLDERS[key] / "eval-sampled"
        summary = _evaluate(cfg, str(final), suites["heldout"], out, temperature=cfg.sampled_temperature)
        row["sampled"] = {**_row(summary), "temperature": cfg.sampled_temperature}
        row["sampled"].pop("by_task", None)
        _write_results(cfg, root, results)
        _print_stage(f"{key} (sampled, temperature {cfg.sampled_temperature})", summary)


def _preview_frames(heldout: Path) -> int:
    from medscope_gym.suite import Suite
    from medscope_gym.tools import ToolConfig

    return ToolConfig.from_any(Suite.load(heldout).tool_settings()).preview_max_frames


def uniform_frames_baseline(
    model: str,
    suite: Path | str,
    frames: int,
    out: Path,
    *,
    crops: int = 1,
    threads: int | None = 1,
    limit: int | None = None,
    seed: int = 0,
    max_new_tokens: int | None = None,
) -> dict[str, dict[str, Any]]:
    """The uniform-frames baseline: about ``frames`` frames spread evenly over the whole video, then the
    model answers.

    Each episode opens with ``crops`` scripted ``crop_video`` calls whose frames interleave into one
    even grid over the video (:func:`~medscope_gym.agents.recipe.uniform.interleaved_crops`; the env
    caps each crop at ``round(frames / crops)`` frames). ``crops`` is where the model answers: 1 for a
    model that answers after one look, 2 for one trained on the search reference, which answers after
    its close crop. The env then allows no further tool call, so the model's next turn (greedy) has to
    answer. ``frames`` is the trained agent's mean number of tool frames, so both look at as many
    frames: the agent where it chose, the baseline evenly.
    """
    from medscope_gym.agents.evaluate import summarise_trajectories
    from medscope_gym.agents.recipe.uniform import UniformThenModel
    from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
    from medscope_gym.agents.rollout.trajectory import save_trajectories
    from medscope_gym.agents.vlm.policy import HFVLMPolicy, VLMPolicyConfig
    from medscope_gym.envs.clinvideo import ClinVideoEnv
    from medscope_gym.suite import Suite
    from medscope_gym.tools import ToolConfig

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    loaded = Suite.load(suite)
    ids = [s.id for s in loaded if s.split in ("val", "test")][:limit]
    per_crop = max(1, round(frames / crops))
    config = VLMPolicyConfig.load(model) or VLMPolicyConfig()
    config.frames.max_crop_frames = max(config.frames.max_crop_frames, per_crop)  # the env caps each crop
    config.sampling.temperature = 0.0
    config.seed = seed
    if max_new_tokens is not None:
        config.sampling.max_new_tokens = max_new_tokens
    policy = UniformThenModel(HFVLMPolicy.from_pretrained(model, config=config), crops, per_crop)
    tools = dataclasses.replace(ToolConfig.from_any(loaded.tool_settings()), crop_max_frames=per_crop)
    envs = make_vector_env(lambda: ClinVideoEnv(loaded, tools=tools, max_tool_calls=crops), min(4, len(ids)))
    try:
        trajectories = rollout(policy, envs, sample_requests(ids, seed=seed))
    finally:
        envs.close()
    summary = summarise_trajectories(trajectories)
    save_trajectories(out / "trajectories", trajectories)
    atomic_write_text(
        out / "metrics.json",
        json.dumps(
            {"policy": f"uniform:{crops}x{per_crop}:{model}", "suite": str(suite), "summary": summary},
            indent=2,
        )
        + "\n",
    )
    return summary


# ----------------------------------------------------------------------------------------- results
def _row(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    overall = summary["overall"]
    row = {c: overall.get(c) for c in COLUMNS}
    row["episodes"] = overall.get("episodes")
    row["by_task"] = {t: {c: r.get(c) for c in COLUMNS} for t, r in summary.items() if t != "overall"}
    return row


def _by_length(episodes: list[Trajectory]) -> dict[str, Any]:
    """A row's episodes and ``COLUMNS`` on the shorter and on the longer half of the held-out videos, and the
    length that splits them (:func:`~medscope_gym.agents.evaluate.summarise_by_length`)."""
    from medscope_gym.agents.evaluate import summarise_by_length

    split = summarise_by_length(episodes)
    halves = {
        half: {c: r.get(c) for c in ("episodes", *COLUMNS)} for half, r in split.items() if half != "edge_s"
    }
    return {"edge_s": split["edge_s"], **halves}


def _print_stage(stage: str, summary: dict[str, dict[str, Any]]) -> None:
    from medscope_gym.agents.evaluate import format_summary

    print(f"recipe: held-out metrics after {stage}:\n{format_summary(summary)}", flush=True)


def _load_results(root: Path) -> dict[str, Any]:
    path = root / "results.json"
    if path.is_file():
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("rows"), dict):
            return data
    return {"rows": {}}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table_row(label: str, row: dict[str, Any]) -> str:
    cells = [_fmt(row.get(c)) for c in (*COLUMNS, "reading_accuracy", "train_s")]
    return f"| {label} | " + " | ".join(cells) + " |"


def _label(key: str, label: str, row: dict[str, Any]) -> str:
    """A row's label; the uniform-frames row says which model answered."""
    model = row.get("uniform_model") if key == "uniform" else None
    suffix = {"trained": ", model trained on them", "vcot": " + Stage II model"}
    return label + suffix.get(model, "") if model else label


def format_results(results: dict[str, Any]) -> str:
    """The Markdown table: one row per stage/baseline that has run, the columns of ``COLUMNS``."""
    head = "| row | " + " | ".join(COLUMNS) + " | reading | train s |"
    lines = [head, "|---" * (len(COLUMNS) + 3) + "|"]
    lines += [
        _table_row(_label(key, label, results["rows"][key]), results["rows"][key])
        for key, label in ROWS
        if key in results["rows"]
    ]
    sampled = [(label, results["rows"][key]["sampled"]) for key, label in ROWS
               if "sampled" in results["rows"].get(key, {})]  # fmt: skip
    if sampled:
        lines += ["", f"Sampled (temperature {sampled[0][1].get('temperature')}):", "", head, lines[1]]
        lines += [_table_row(label, row) for label, row in sampled]
    listed = [
        (label, results["rows"][key])
        for key, label in ROWS
        if "listing_preview" in results["rows"].get(key, {})
    ]
    if listed:
        lines += [
            "",
            "Listings in the held-out episodes (exact / items right; the close crop: both / each of its"
            " times right; - where none was written):",
            "",
        ]
        lines += ["| row | preview | crop | close crop after it |", "|---|---|---|---|"]
        lines += [
            f"| {label} | {_fmt(row.get('listing_preview'))} / {_fmt(row.get('listing_preview_items'))} "
            f"| {_fmt(row.get('listing_crop'))} / {_fmt(row.get('listing_crop_items'))} "
            f"| {_fmt(row.get('listing_close'))} / {_fmt(row.get('listing_close_items'))} |"
            for label, row in listed
        ]
    split = [(_label(key, label, results["rows"][key]), results["rows"][key]["by_length"])
             for key, label in ROWS if "by_length" in results["rows"].get(key, {})]  # fmt: skip
    if split:
        cells = [(c, half) for c in LENGTH_COLUMNS for half in ("shorter", "longer")]
        lines += [
            "",
            f"By video length (held-out videos up to {split[0][1]['edge_s']:g} s, then the longer ones;"
            " - where a half has nothing to average):",
            "",
            "| row | " + " | ".join(f"{c}, {half}" for c, half in cells) + " |",
            "|---" + "|---:" * len(cells) + "|",
        ]
        lines += [
            f"| {label} | " + " | ".join(_fmt(part.get(half, {}).get(c)) for c, half in cells) + " |"
            for label, part in split
        ]
    stage1 = results["rows"].get("perception")
    if stage1 is not None:
        scores = ", ".join(f"{skill} {_fmt(acc)}" for skill, acc in stage1["heldout"].items())
        lines.append(
            f"\nStage I, perception warm-up ({_fmt(stage1.get('train_s'))} s): held-out single-turn "
            f"accuracy {scores}."
        )
    return "\n".join(lines)


def _write_results(cfg: RecipeConfig, root: Path, results: dict[str, Any]) -> None:
    results["seed"] = cfg.seed
    results["command"] = f"medscope recipe <config> --seed {cfg.seed}"
    atomic_write_text(root / "results.json", json.dumps(results, indent=2) + "\n")
    text = (
        f"# Recipe results, seed {cfg.seed}\n\nHeld-out: val + test of `data/heldout` "
        f"(greedy). Columns: docs/metrics.md; reading: accuracy on the same videos' questions "
        f"'which symbol is on screen at t?' (`data/heldout-reading`): no search needed.\n\n"
        f"{format_results(results)}\n"
    )
    atomic_write_text(root / "results.md", text)
    _plot_curves(root)


def _plot_curves(root: Path) -> None:
    """Training curves of every stage that has run (loss of the SFT stages, reward of GA-GRPO)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    from medscope_gym.agents.training.metrics import read_metrics

    runs = [
        (s, root / f / "run") for s, f in _FOLDERS.items() if (root / f / "run" / "metrics.jsonl").is_file()
    ]
    if not runs:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for stage, run in runs:
        rows = read_metrics(run)
        key = "train/reward" if stage == "grpo" else "train/loss"
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) is not None]
        if pts:
            ax = axes[1] if stage == "grpo" else axes[0]
            ax.plot(*zip(*pts), label=stage)
    axes[0].set_title("SFT stages: assistant-token loss")
    axes[0].set_yscale("log")
    axes[1].set_title("GA-GRPO: mean reward")
    for ax in axes:
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    try:
        atomic_write_figure(root / "curves.png", fig, dpi=90)
    finally:
        plt.close(fig)
