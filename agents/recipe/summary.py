"""Several seeds of the recipe as one table: mean ± standard deviation per row and column.

``medscope recipe-summary OUT`` reads every ``OUT/seed-S/results.json`` and prints the greedy table,
the sampled one, the reading check and Stage I's per-skill scores (docs/results.md, "Testbed recipe"),
the orderings the method claims as paired differences per seed (answer-only → Stage II → Stage III,
with their standard errors; also on the longer half of the held-out videos), then the reward ablation
of every seed that ran one (``OUT/seed-S/ablation/ablation.json``, ``medscope recipe-ablate``).
A cell some seeds lack (a metric with no episode to average over) is averaged over the seeds that have
it, and marked with their number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from medscope_gym.agents.grpo.ablation import ABLATION_METRICS
from medscope_gym.agents.recipe.ablation import ABLATION_FOLDER
from medscope_gym.agents.recipe.runner import ROWS

__all__ = [
    "ORDERINGS",
    "ORDERING_METRICS",
    "SUMMARY_COLUMNS",
    "format_ablation_summary",
    "format_orderings",
    "format_summary_table",
    "load_ablations",
    "load_seeds",
    "summarise_ablations",
    "summarise_orderings",
    "summarise_seeds",
]

#: The columns of the multi-seed table (the issue's and the paper's headline metrics).
SUMMARY_COLUMNS = (
    "accuracy",
    "R@0.5",
    "mIoU",
    "evidence_R@0.5",
    "evidence_mIoU",
    "tool_calls",
    "frames_seen",
    "well_formed",
    "reading_accuracy",
)

#: The steps the method claims, (lower row, higher row): purposeful looking beats answering without
#: tools and as many evenly spread frames, and GA-GRPO improves on its visual-CoT start.
ORDERINGS = (("answer_only", "vcot"), ("uniform", "vcot"), ("no_tools", "vcot"), ("vcot", "grpo"))
#: The metrics each step is read on (the issue's: accuracy, evidence R@0.5, interval mIoU).
ORDERING_METRICS = ("accuracy", "evidence_R@0.5", "mIoU")


def load_seeds(out: str | Path) -> dict[int, dict[str, Any]]:
    """``{seed: results}`` of every ``OUT/seed-S/results.json``."""
    found = {}
    for path in sorted(Path(out).glob("seed-*/results.json")):
        data = json.loads(path.read_text())
        found[int(data.get("seed", path.parent.name.split("-")[-1]))] = data
    if not found:
        raise FileNotFoundError(f"no seed-*/results.json under {out}")
    return found


def _stats(values: list[float]) -> tuple[float, float, int]:
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def summarise_seeds(seeds: dict[int, dict[str, Any]], sampled: bool = False) -> dict[str, dict[str, Any]]:
    """``{row: {column: (mean, std, n)}}`` over seeds (``sampled``: the sampled evaluations)."""
    table: dict[str, dict[str, Any]] = {}
    for key, _ in ROWS:
        rows = [r["rows"].get(key) for r in seeds.values()]
        rows = [(row.get("sampled") if sampled else row) for row in rows if row]
        rows = [row for row in rows if row]
        if not rows:
            continue
        table[key] = {}
        for col in SUMMARY_COLUMNS:
            values = [float(row[col]) for row in rows if row.get(col) is not None]
            if values:
                table[key][col] = _stats(values)
    return table


def _cell(stat: tuple[float, float, int] | None, seeds: int) -> str:
    if stat is None:
        return "–"
    mean, std, n = stat
    return f"{mean:.3f} ± {std:.3f}" + (f" (n={n})" if n < seeds else "")


def format_summary_table(seeds: dict[int, dict[str, Any]]) -> str:
    """Markdown: the greedy table, the sampled one, then Stage I's held-out skills."""
    labels = dict(ROWS)
    n = len(seeds)
    out = [f"Seeds {', '.join(map(str, sorted(seeds)))}: mean ± standard deviation (n = {n} unless marked)."]
    for sampled in (False, True):
        table = summarise_seeds(seeds, sampled)
        if not table:
            continue
        out += ["", "Sampled:" if sampled else "Greedy:", ""]
        out.append("| row | " + " | ".join(c.removesuffix("_accuracy") for c in SUMMARY_COLUMNS) + " |")
        out.append("|---" + "|---:" * len(SUMMARY_COLUMNS) + "|")
        for key, cells in table.items():
            out.append(
                f"| {labels[key]} | " + " | ".join(_cell(cells.get(c), n) for c in SUMMARY_COLUMNS) + " |"
            )
    listing_columns = (
        "listing_preview",
        "listing_preview_items",
        "listing_crop",
        "listing_crop_items",
        "listing_close",
        "listing_close_items",
    )
    listed = []
    for key, label in ROWS:
        rows = [r["rows"][key] for r in seeds.values() if "listing_preview" in r["rows"].get(key, {})]
        if rows:
            values = [[row[c] for row in rows if row.get(c) is not None] for c in listing_columns]
            listed.append(
                f"| {label} | " + " | ".join(_cell(_stats(v) if v else None, n) for v in values) + " |"
            )
    if listed:
        title = "Listings in the held-out episodes (exact, items right; close crop: both, each time right):"
        out += ["", title, ""]
        out += [
            "| row | preview | preview items | crop | crop items | close crop | close times |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *listed,
        ]
    stage1 = [
        r["rows"]["perception"]["heldout"]
        for r in seeds.values()
        if "heldout" in r["rows"].get("perception", {})
    ]
    if stage1:
        skills = ", ".join(f"{s} {_cell(_stats([h[s] for h in stage1]), n)}" for s in stage1[0])
        out += ["", f"Stage I held-out single-turn accuracy: {skills}."]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------- orderings
def _scored(row: dict[str, Any], sampled: bool, half: str | None) -> dict[str, Any]:
    """A results row's greedy or sampled metrics, on all held-out videos or on one ``half`` of them."""
    scored = (row.get("sampled") if sampled else row) or {}
    return (scored.get("by_length", {}).get(half) or {}) if half else scored


def summarise_orderings(
    seeds: dict[int, dict[str, Any]], sampled: bool = False, half: str | None = None
) -> list[dict[str, Any]]:
    """Each of ``ORDERINGS`` on each of ``ORDERING_METRICS`` as paired per-seed differences (higher −
    lower, seeds that have both rows): ``{"lower", "higher", "metric", "diffs" ({seed: difference}),
    "mean", "std", "n", "se"}``, ``se`` the standard error of the mean difference (None below two
    seeds). ``half`` (``"shorter"`` or ``"longer"``): on that half of the held-out videos only (the
    rows' ``by_length``).

    Seeds differ far more from each other than two stages of one seed do (v26's Stage II: 0.49 to
    0.89), so a step is read on its paired differences, not on two means' overlapping spreads."""
    tables = {
        seed: {key: _scored(row, sampled, half) for key, row in r["rows"].items()}
        for seed, r in seeds.items()
    }
    found = []
    for lower, higher in ORDERINGS:
        for metric in ORDERING_METRICS:
            diffs, stat = _paired(tables, higher, lower, metric)
            if stat is None:
                continue
            mean, std, n = stat
            se = std / math.sqrt(n) if n > 1 else None
            found.append(
                {"lower": lower, "higher": higher, "metric": metric, "diffs": diffs}
                | {"mean": mean, "std": std, "n": n, "se": se}
            )
    return found


def _per_seed(diffs: dict[int, float]) -> str:
    return ", ".join(f"{seed}: {d:+.3f}" for seed, d in diffs.items())


def format_orderings(seeds: dict[int, dict[str, Any]]) -> str:
    """Markdown: one line per step and metric, greedy, sampled, then greedy on the longer half of the
    held-out videos; the issue asks each step of answer-only < Stage II < Stage III to hold by at
    least 2 standard errors, and on the longer videos too."""
    labels = dict(ROWS)
    out: list[str] = []
    readings = {
        (False, None): "greedy",
        (True, None): "sampled",
        (False, "longer"): "greedy, on the longer half of the held-out videos",
    }
    for (sampled, half), reading in readings.items():
        found = summarise_orderings(seeds, sampled, half)
        if not found:
            continue
        out += [
            "",
            f"Orderings, {reading}: higher − lower row, paired per seed; SE = std / √n, the issue asks "
            "mean ≥ 2 SE:",
            "",
            "| step | metric | seed: difference | mean ± std | SE | mean / SE |",
            "|---|---|---|---:|---:|---:|",
        ]
        for o in found:
            step = f"{labels[o['lower']]} → {labels[o['higher']]}"
            each = _per_seed(o["diffs"])
            se = "–" if o["se"] is None else f"{o['se']:.3f}"
            if o["se"] is None:
                ratio = "–"
            elif o["se"] == 0:
                ratio = "0" if o["mean"] == 0 else ("+∞" if o["mean"] > 0 else "−∞")
            else:
                ratio = f"{o['mean'] / o['se']:+.1f}"
            out.append(
                f"| {step} | {o['metric']} | {each} | {o['mean']:+.3f} ± {o['std']:.3f} | {se} | {ratio} |"
            )
    return "\n".join(out).lstrip("\n")


# ----------------------------------------------------------------------------------------- ablation
def load_ablations(out: str | Path) -> dict[int, dict[str, dict[str, float | None]]]:
    """``{seed: {variant: {metric: value}}}`` of every ``OUT/seed-S/ablation/ablation.json`` (its
    ``start`` row is the seed's Stage II); ``{}`` where no seed ran the ablation."""
    found = {}
    for path in sorted(Path(out).glob(f"seed-*/{ABLATION_FOLDER}/ablation.json")):
        seed = int(path.parent.parent.name.split("-")[-1])
        table = json.loads(path.read_text())["table"]
        found[seed] = {variant: {k: cell[0] for k, cell in row.items()} for variant, row in table.items()}
    return found


def summarise_ablations(ablations: dict[int, dict[str, dict[str, float | None]]]) -> dict[str, Any]:
    """``{variant: {metric: (mean, std, n)}}`` over the seeds, the start (Stage II) row first."""
    variants = list(dict.fromkeys(v for table in ablations.values() for v in table))
    summary: dict[str, Any] = {}
    for variant in variants:
        summary[variant] = {}
        for key in ABLATION_METRICS:
            values = [t[variant][key] for t in ablations.values() if t.get(variant, {}).get(key) is not None]
            if values:
                summary[variant][key] = _stats([float(v) for v in values])
    return summary


def _paired(tables, a: str, b: str, key: str) -> tuple[dict[int, float], tuple[float, float, int] | None]:
    """``{seed: a − b}`` on ``key`` (seeds whose table has both rows' values), and their mean, std and
    count; ``tables`` is ``{seed: {row: {metric: value}}}``."""
    diffs = {
        seed: float(t[a][key]) - float(t[b][key])
        for seed, t in tables.items()
        if t.get(a, {}).get(key) is not None and t.get(b, {}).get(key) is not None
    }
    return diffs, (_stats(list(diffs.values())) if diffs else None)


def format_ablation_summary(ablations: dict[int, dict[str, dict[str, float | None]]]) -> str:
    """Markdown: one row per variant, mean ± std over seeds; then paper − no_evidence on evidence
    R@0.5, seed by seed (the paper's reading of its ablation: 40.1 against 33.2)."""
    if not ablations:
        return ""
    n = len(ablations)
    out = [
        f"Reward ablation, seeds {', '.join(map(str, sorted(ablations)))} (each a Stage III from the "
        f"seed's Stage II; start: Stage II itself), held-out, greedy, mean ± std (n = {n} unless marked):",
        "",
        "| variant | " + " | ".join(ABLATION_METRICS) + " |",
        "|---" + "|---:" * len(ABLATION_METRICS) + "|",
    ]
    for variant, cells in summarise_ablations(ablations).items():
        out.append(f"| {variant} | " + " | ".join(_cell(cells.get(k), n) for k in ABLATION_METRICS) + " |")
    for key in ("evidence_R@0.5", "accuracy"):
        diffs, stat = _paired(ablations, "paper", "no_evidence", key)
        if stat is not None:
            mean = f"mean {stat[0]:+.3f} ± {stat[1]:.3f}"
            out += ["", f"paper − no_evidence, {key}, per seed: {_per_seed(diffs)}; {mean}."]
    return "\n".join(out)
