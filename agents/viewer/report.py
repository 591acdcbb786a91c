"""The episode viewer: one self-contained HTML report of one or two run folders (docs/viewer.md).

A run folder is anything holding trajectories written by
:func:`~medscope_gym.agents.rollout.trajectory.save_trajectories`: a ``medscope eval --out`` folder, a
``medscope play --out`` policy folder, a GA-GRPO run (its latest held-out evaluation,
``eval/step-N``) or one ``eval/step-N`` folder, or a trajectories folder itself.

The report holds a summary table per run (the metrics of ``medscope eval``), then one card per episode:
the question, options, ground truth and evidence window; the agent's turns (its ``<think>`` text, each
tool call) drawn on a timeline of the video against the evidence window and the preview's sample
times; thumbnails of the frames each call returned; the answer, the judge's verdict, the reward parts
and the format verdict. Filters (task, correct / wrong, evidence overlap, and for two runs "the runs
differ") are read from the URL (``report.html#task=temporal_grounding&correct=0``) and written back to
it. Every frame is a downscaled JPEG embedded once, as a CSS class that the cards reference: the file
needs no network and opens from disk.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.evaluate import TABLE_COLUMNS, summarise_trajectories
from medscope_gym.agents.rollout.trajectory import JSONL_NAME, Trajectory, load_trajectories
from medscope_gym.agents.viewer.recording import even_indices, thumbnails
from medscope_gym.atomic import atomic_write_text
from medscope_gym.config import Config, check, non_negative_int, positive_int
from medscope_gym.errors import ConfigError

__all__ = ["Run", "ViewConfig", "build_report", "find_trajectories", "load_run", "write_report"]

#: An episode counts as correct in the filters when its accuracy reward reaches this.
CORRECT_AT = 0.5


@dataclass
class ViewConfig(Config):
    """Settings of ``medscope view`` (the run folders are positional arguments)."""

    out: str | None = None
    """HTML file to write (None: report.html in the first run folder)."""
    labels: tuple[str, ...] = ()
    """Names of the runs in the report (default: the policy of metrics.json, else the folder name)."""
    title: str | None = None
    """Title of the page (default: the run names)."""
    suite: str | None = None
    """Suite to read questions from when a trajectory did not record them (None: the suite named in the
    run's metrics.json or config.json)."""
    limit: int | None = None
    """Show only the first N episodes of each run."""
    thumb_height: int = 64
    """Height in pixels of the embedded frames."""
    frames_per_call: int = 6
    """Most thumbnails shown per tool call (evenly chosen among the frames it returned)."""
    preview_frames: int = 6
    """Thumbnails of the preview shown per episode (0: none; its sample times are always drawn)."""

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        check(self, positive_int, "thumb_height")
        check(self, non_negative_int, "frames_per_call", "preview_frames")
        check(self, non_negative_int, "limit", optional=True)


@dataclass
class Run:
    """One run folder's trajectories and what the report says about it."""

    label: str
    path: Path
    trajectories: list[Trajectory]
    suite: str | None = None
    """The suite the run played (from its metrics.json / config.json), for questions not recorded."""
    samples: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- loading
def find_trajectories(path: str | Path) -> Path:
    """The trajectories folder a run folder stands for (see the module docstring); ConfigError if none."""
    path = Path(path)
    if (path / JSONL_NAME).is_file():
        return path
    if (path / "trajectories" / JSONL_NAME).is_file():
        return path / "trajectories"
    steps = sorted(
        (p for p in (path / "eval").glob("step-*") if p.name[5:].isdigit()), key=lambda p: int(p.name[5:])
    )
    if steps:
        return find_trajectories(steps[-1])
    below = sorted(p.parent for p in path.glob(f"*/**/{JSONL_NAME}")) if path.is_dir() else []
    if len(below) == 1:
        return below[0]
    hint = f"; it holds several: {', '.join(str(p) for p in below[:6])}" if below else ""
    raise ConfigError(
        f"{path}: no trajectories found (expected {JSONL_NAME}, trajectories/ or eval/step-N/ of a "
        f"medscope eval, play --out or GA-GRPO run){hint}"
    )


def _run_info(folder: Path) -> dict[str, Any]:
    """metrics.json (eval, play) or config.json (a GA-GRPO run) next to or above the trajectories."""
    for parent in (folder, *list(folder.parents)[:3]):
        for name in ("metrics.json", "config.json"):
            file = parent / name
            if file.is_file():
                try:
                    data = json.loads(file.read_text())
                except (OSError, ValueError):
                    continue
                if isinstance(data, dict):
                    return data
    return {}


def load_run(path: str | Path, label: str | None = None, limit: int | None = None) -> Run:
    """Load a run folder's trajectories (with their frames)."""
    folder = find_trajectories(path)
    trajectories = load_trajectories(folder)[:limit]
    info = _run_info(folder)
    suite = info.get("eval_suite") or info.get("suite")
    if label is None:
        run_dir = folder.parent if folder.name == "trajectories" else folder
        label = str(info.get("policy") or run_dir.name)
        if run_dir.name.startswith("step-"):  # a GA-GRPO evaluation: name the run and the step
            label = f"{run_dir.resolve().parent.parent.name} {run_dir.name}"
    return Run(label=label, path=folder, trajectories=trajectories, suite=suite)


def _attach_samples(run: Run, suite: str | None) -> None:
    """Questions from the suite for trajectories that did not record them (best effort)."""
    spec = suite or run.suite
    if not spec or all(_question(t) for t in run.trajectories):
        return
    from medscope_gym.errors import MedScopeError
    from medscope_gym.suite import Suite

    try:
        run.samples = {s.id: s for s in Suite.from_spec(spec)}
    except (MedScopeError, OSError, ValueError):
        run.samples = {}


# ---------------------------------------------------------------------------------------------- episodes
_TAG = re.compile(r"<(think|tool_call|answer)>(.*?)</\1>", re.DOTALL)


def _question(traj: Trajectory) -> str | None:
    text = traj.turns[0].observation_text if traj.turns else ""
    match = re.search(r"Question:\s*(.*)", text)
    return match.group(1).strip() if match else None


def _overlaps(traj: Trajectory) -> bool:
    """Whether any successful crop or frame touched a ground-truth evidence window."""
    windows = [tuple(w) for w in traj.final_info.get("ground_truth", {}).get("evidence", [])]
    for entry in traj.tool_log:
        if not entry.get("ok"):
            continue
        if entry.get("interval"):
            a, b = entry["interval"]
            if any(min(b, e) >= max(a, s) for s, e in windows):
                return True
        if entry.get("timestamp") is not None:
            t = float(entry["timestamp"])
            if any(s - 0.5 <= t <= e + 0.5 for s, e in windows):
                return True
    return False


def _accuracy(traj: Trajectory) -> float:
    return float(traj.reward_parts.get("accuracy", 0.0))


class _Frames:
    """Every embedded thumbnail once: a CSS class per distinct JPEG."""

    def __init__(self, height: int) -> None:
        self.height = height
        self.rules: list[str] = []
        self.ids: dict[str, int] = {}

    def tag(self, frame: np.ndarray, time: float) -> str:
        from PIL import Image

        small = thumbnails(frame[None], self.height)[0]
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(small)).save(buf, format="JPEG", quality=70)
        data = buf.getvalue()
        key = hashlib.sha1(data).hexdigest()
        if key not in self.ids:
            self.ids[key] = len(self.ids)
            self.rules.append(
                f".f{self.ids[key]}{{background-image:url(data:image/jpeg;base64,"
                f"{base64.b64encode(data).decode()});width:{small.shape[1]}px;height:{small.shape[0]}px}}"
            )
        return f'<figure><i class="fr f{self.ids[key]}"></i><figcaption>{time:.1f} s</figcaption></figure>'


def _strip(frames: np.ndarray | None, times: np.ndarray | None, k: int, store: _Frames) -> str:
    if frames is None or times is None or len(frames) == 0:
        return ""
    return "".join(store.tag(frames[i], float(times[i])) for i in even_indices(len(frames), k))


def _x(t: float, duration: float) -> float:
    return 1000.0 * min(max(t, 0.0), duration) / duration if duration > 0 else 0.0


def _track(label: str, duration: float, windows, body: str, cls: str = "") -> str:
    evidence = "".join(
        f'<rect class="ev" x="{_x(s, duration):.1f}" y="0" '
        f'width="{max(_x(e, duration) - _x(s, duration), 2):.1f}" height="12"/>'
        for s, e in windows
    )
    return (
        f'<div class="trk {cls}"><span>{html.escape(label)}</span>'
        f'<svg viewBox="0 0 1000 12" preserveAspectRatio="none">{evidence}{body}</svg></div>'
    )


def _span(a: float, b: float, duration: float, cls: str) -> str:
    x0, x1 = _x(a, duration), _x(b, duration)
    return f'<rect class="{cls}" x="{x0:.1f}" y="2" width="{max(x1 - x0, 3):.1f}" height="8"/>'


def _tick(t: float, duration: float, cls: str) -> str:
    return f'<rect class="{cls}" x="{_x(t, duration) - 2:.1f}" y="0" width="4" height="12"/>'


def _timeline(traj: Trajectory, duration: float, windows) -> str:
    rows = [_track("evidence", duration, windows, "", "evr")]
    preview = traj.turns[0].media.video_times if traj.turns else None
    if preview is not None and len(preview):
        path = "".join(f"M{_x(float(t), duration):.1f} 3v6" for t in preview)
        rows.append(
            _track(
                "preview",
                duration,
                windows,
                f'<path class="pv" d="{path}" vector-effect="non-scaling-stroke"/>',
            )
        )
    for n, entry in enumerate(traj.tool_log, 1):
        cls = "call" if entry.get("ok") else "bad"
        if entry.get("interval"):
            body = _span(*entry["interval"], duration, cls)
        elif entry.get("timestamp") is not None:
            body = _tick(float(entry["timestamp"]), duration, cls)
        else:
            body = ""
        rows.append(_track(f"{n}. {entry.get('name', '?')}", duration, windows, body))
    predicted = traj.final_info.get("episode_summary", {}).get("predicted_interval")
    if predicted:
        rows.append(_track("answer", duration, windows, _span(*predicted, duration, "ans")))
    marks = "".join(f"<b>{t:.0f} s</b>" for t in (0.0, duration / 2, duration))
    axis = f'<div class="axis"><span></span><div>{marks}</div></div>'
    return f'<div class="tl">{"".join(rows)}{axis}</div>'


def _turn_html(traj: Trajectory, k: int, entries: dict[int, dict], cfg: ViewConfig, store: _Frames) -> str:
    turn = traj.turns[k]
    text = turn.action_text
    parts = []
    for tag, body in _TAG.findall(text):
        body = body.strip()
        if tag == "think":
            parts.append(f'<p class="think">{html.escape(body)}</p>')
        elif tag == "tool_call":
            parts.append(f'<p class="tool"><code>{html.escape(body)}</code></p>')
        else:
            parts.append(f'<p class="answer">answer: <b>{html.escape(body)}</b></p>')
    if not parts:
        parts.append(f'<p class="raw"><code>{html.escape(text[:2000])}</code></p>')
    entry = entries.get(k + 1)
    if entry is not None and not entry.get("ok"):
        parts.append(f'<p class="err">error: {html.escape(str(entry.get("error")))}</p>')
    if entry is not None and entry.get("ok"):
        nxt = traj.turns[k + 1].media if k + 1 < len(traj.turns) else None
        strip = ""
        if nxt is not None:
            strip = _strip(nxt.video, nxt.video_times, cfg.frames_per_call, store) + _strip(
                nxt.images, nxt.image_times, cfg.frames_per_call, store
            )
        if strip:
            parts.append(f'<div class="strip">{strip}</div>')
        elif entry.get("timestamps"):
            times = ", ".join(f"{t:.1f}" for t in entry["timestamps"][:12])
            parts.append(f'<p class="times">frames at {times} s (pixels not recorded)</p>')
    return f'<li><span class="k">turn {k + 1}</span>{"".join(parts)}</li>'


def _card(run_index: int, run: Run, traj: Trajectory, cfg: ViewConfig, store: _Frames) -> str:
    info = traj.final_info
    truth = info.get("ground_truth", {})
    windows = [tuple(map(float, w)) for w in truth.get("evidence", [])]
    duration = float(info.get("duration") or max([e for _, e in windows] + [1.0]))
    sample = run.samples.get(traj.sample_id)
    question = _question(traj) or (sample.question if sample is not None else None)
    options = truth.get("options") or (
        list(sample.options) if sample is not None and sample.options else None
    )
    accuracy = _accuracy(traj)
    correct = accuracy >= CORRECT_AT
    overlap = _overlaps(traj)
    parts = traj.reward_parts
    judge = info.get("judge") or {}
    fmt = info.get("format") or {}

    head = (
        f'<header><b class="{"ok" if correct else "no"}">{"correct" if correct else "wrong"}</b>'
        f"<span>{html.escape(run.label)}</span><span>{html.escape(traj.task)}</span>"
        f'<span class="sid">{html.escape(traj.sample_id)}</span>'
        f"<span>reward {traj.reward:.2f}</span>{'<span>overlap</span>' if overlap else ''}</header>"
    )
    opts = ""
    if options:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        opts = (
            "<ol class='opts'>"
            + "".join(f"<li><b>{letters[i]}.</b> {html.escape(str(o))}</li>" for i, o in enumerate(options))
            + "</ol>"
        )
    evidence = ", ".join(f"[{s:.1f}, {e:.1f}]" for s, e in windows) or "-"
    qa = (
        f'<p class="qtext">{html.escape(question or "(question not recorded)")}</p>{opts}'
        f'<p class="gt">ground truth <b>{html.escape(str(truth.get("answer")))}</b> · evidence {evidence} s'
        f" · video {duration:.1f} s</p>"
    )
    preview = traj.turns[0].media if traj.turns else None
    pstrip = _strip(preview.video, preview.video_times, cfg.preview_frames, store) if preview else ""
    pstrip = f'<div class="strip pvs"><span class="k">preview</span>{pstrip}</div>' if pstrip else ""
    entries = {int(e["turn"]): e for e in traj.tool_log if e.get("turn") is not None}
    turns = "".join(_turn_html(traj, k, entries, cfg, store) for k in range(len(traj.turns)))
    end = "truncated" if traj.truncated else ("answered" if traj.terminated else "unfinished")
    verdict = (
        f'<p class="verdict">{end}; answer <b>{html.escape(str(info.get("answer")))}</b> · judge '
        f"{float(judge.get('score', 0.0)):.2f} ({html.escape(str(judge.get('reason', '-')))})"
        f"{' · judge failed' if judge.get('failed') else ''} · format "
        f'<b class="{"ok" if fmt.get("ok") else "no"}">{"ok" if fmt.get("ok") else "failed"}</b> '
        f"({html.escape(str(fmt.get('reason', '-')))})</p>"
    )
    reward = "<table class='parts'><tr>" + "".join(f"<th>{k}</th>" for k in parts) + "</tr><tr>"
    reward += "".join(f"<td>{float(v):.2f}</td>" for v in parts.values()) + "</tr></table>"
    return (
        f'<article class="card" data-run="{run_index}" data-task="{html.escape(traj.task, quote=True)}" '
        f'data-correct="{int(correct)}" data-overlap="{int(overlap)}" '
        f'data-sample="{html.escape(traj.sample_id, quote=True)}" data-shown="1">'
        f"{head}{qa}{_timeline(traj, duration, windows)}{pstrip}<ol class='turns'>{turns}</ol>"
        f"{verdict}{reward}</article>"
    )


# ---------------------------------------------------------------------------------------------- page
def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _summary_table(run: Run) -> str:
    if not run.trajectories:
        return f"<h3>{html.escape(run.label)}</h3><p>no episodes</p>"
    summary = summarise_trajectories(run.trajectories)
    head = "<tr><th>task</th>" + "".join(f"<th>{c}</th>" for c in TABLE_COLUMNS) + "</tr>"
    rows = "".join(
        f"<tr><td>{html.escape(task)}</td>"
        + "".join(f"<td>{_cell(row.get(c))}</td>" for c in TABLE_COLUMNS)
        + "</tr>"
        for task, row in summary.items()
    )
    return (
        f"<h3>{html.escape(run.label)} <small>{html.escape(str(run.path))}</small></h3>"
        f"<table class='summary'>{head}{rows}</table>"
    )


def _pairs(runs: Sequence[Run]) -> list[list[tuple[int, Trajectory] | None]]:
    """Rows of the report: per question (sample id and repeat), the episode of each run (or None)."""
    keys: dict[tuple[str, int], list[tuple[int, Trajectory] | None]] = {}
    for r, run in enumerate(runs):
        seen: dict[str, int] = {}
        for traj in run.trajectories:
            n = seen.get(traj.sample_id, 0)
            seen[traj.sample_id] = n + 1
            keys.setdefault((traj.sample_id, n), [None] * len(runs))[r] = (r, traj)
    return list(keys.values())


def build_report(runs: Sequence[Run], cfg: ViewConfig | None = None) -> str:
    """The HTML page of one or two runs."""
    cfg = cfg or ViewConfig()
    if not 1 <= len(runs) <= 2:
        raise ConfigError(f"the viewer shows one or two runs, got {len(runs)}")
    store = _Frames(cfg.thumb_height)
    rows = []
    for row in _pairs(runs):
        cards = []
        for r, item in enumerate(row):
            if item is None:
                label = html.escape(runs[r].label)
                cards.append(f'<article class="card missing" data-run="{r}">not in {label}</article>')
            else:
                cards.append(_card(r, runs[r], item[1], cfg, store))
        played = [item[1] for item in row if item is not None]
        verdicts = {_accuracy(t) >= CORRECT_AT for t in played}
        changed = int(len(runs) == 2 and len(played) == 2 and len(verdicts) == 2)
        cls = "q two" if len(runs) == 2 else "q"
        rows.append(f'<section class="{cls}" data-changed="{changed}">{"".join(cards)}</section>')
    tasks = sorted({t.task for run in runs for t in run.trajectories})
    n_cards = sum(len(run.trajectories) for run in runs)
    title = cfg.title or " vs ".join(run.label for run in runs)
    task_options = "".join(
        f'<option value="{html.escape(t, quote=True)}">{html.escape(t)}</option>' for t in tasks
    )
    changed_filter = (
        '<label><input type="checkbox" id="f-changed"> only where the runs differ</label>'
        if len(runs) == 2
        else ""
    )
    return _PAGE.format(
        title=html.escape(title),
        frames="\n".join(store.rules),
        summaries="".join(_summary_table(run) for run in runs),
        task_options=task_options,
        changed_filter=changed_filter,
        cards="\n".join(rows),
        n_cards=n_cards,
        n_frames=len(store.rules),
        correct_at=CORRECT_AT,
        script=_SCRIPT,
        style=_STYLE,
    )


def write_report(paths: Sequence[str | Path], cfg: ViewConfig | None = None) -> Path:
    """Load the run folders ``paths`` (one or two), write the report, return its path."""
    cfg = cfg or ViewConfig()
    if cfg.labels and len(cfg.labels) != len(paths):
        raise ConfigError(f"give one label per run folder: {len(paths)} folders, {len(cfg.labels)} labels")
    runs = [load_run(p, cfg.labels[i] if cfg.labels else None, cfg.limit) for i, p in enumerate(paths)]
    if len(runs) == 2 and runs[0].label == runs[1].label:
        runs[0].label, runs[1].label = f"{runs[0].label} (1)", f"{runs[1].label} (2)"
    for run in runs:
        _attach_samples(run, cfg.suite)
    out = Path(cfg.out) if cfg.out else Path(paths[0]) / "report.html"
    atomic_write_text(out, build_report(runs, cfg))
    return out


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 16px;color:#222;background:#f6f7f9}
h1{font-size:20px}h3{margin:12px 0 4px}h3 small{color:#888;font-weight:normal;font-size:12px}
table.summary{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums}
table.summary td,table.summary th{border:1px solid #ddd;padding:2px 6px;text-align:right}
table.summary td:first-child{text-align:left}
#filters{position:sticky;top:0;background:#f6f7f9;padding:8px 0;border-bottom:1px solid #ddd;z-index:2}
#filters label{margin-right:14px}
.q{display:grid;gap:10px;margin:12px 0}.q.two{grid-template-columns:1fr 1fr}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 10px;min-width:0}
.card.missing{color:#888}.card[data-shown="0"]{opacity:.35}
header{display:flex;gap:10px;flex-wrap:wrap;align-items:baseline;color:#555}
header b{padding:0 6px;border-radius:3px;color:#fff}b.ok{background:#2a7}b.no{background:#c44}
.verdict b.ok,.verdict b.no{padding:0 4px;border-radius:3px;color:#fff}
.sid{font-family:monospace}p.qtext{font-weight:600;margin:6px 0 2px}
.opts{margin:0;padding-left:18px;list-style:none}.gt{color:#444;margin:4px 0}
.tl{margin:6px 0;font-size:11px;color:#555}
.trk,.axis{display:grid;grid-template-columns:110px 1fr;align-items:center;height:14px}
.trk svg{width:100%;height:12px;background:#eef0f3}
.axis div{display:flex;justify-content:space-between}
rect.ev{fill:#2a7;opacity:.25}.evr rect.ev{opacity:.8}rect.call{fill:#36c}rect.bad{fill:#c44}
rect.ans{fill:#e90}path.pv{stroke:#777;stroke-width:1}
.turns{list-style:none;padding:0;margin:6px 0}
.turns li{border-left:3px solid #36c;padding:2px 8px;margin:4px 0}
.k{font-size:11px;color:#888;margin-right:6px}.think{color:#555;font-style:italic;margin:2px 0}
.tool,.answer,.raw{margin:2px 0}.err{color:#c44;margin:2px 0}.times{color:#777;margin:2px 0}
code{white-space:pre-wrap;word-break:break-all}
.strip{display:flex;flex-wrap:wrap;gap:4px;align-items:flex-end}.pvs{margin:4px 0}
figure{margin:0;text-align:center;font-size:10px;color:#666}.fr{display:block;background-size:cover}
table.parts{border-collapse:collapse;font-size:12px}
table.parts td,table.parts th{border:1px solid #ddd;padding:1px 6px}
.verdict{margin:4px 0}
"""

_SCRIPT = """
(function(){
  var f = {task: document.getElementById('f-task'), correct: document.getElementById('f-correct'),
           overlap: document.getElementById('f-overlap'), changed: document.getElementById('f-changed')};
  function params(){
    var s = location.hash.length > 1 ? location.hash.slice(1) : location.search.slice(1);
    return new URLSearchParams(s);
  }
  function apply(){
    var shown = 0, total = 0;
    var task = f.task.value, correct = f.correct.value, overlap = f.overlap.value;
    var changed = f.changed && f.changed.checked;
    document.querySelectorAll('section.q').forEach(function(q){
      var any = false;
      q.querySelectorAll('article.card[data-task]').forEach(function(c){
        total += 1;
        var ok = (!task || c.dataset.task === task) && (!correct || c.dataset.correct === correct) &&
                 (!overlap || c.dataset.overlap === overlap);
        c.dataset.match = ok ? '1' : '0';
        any = any || ok;
      });
      var visible = any && (!changed || q.dataset.changed === '1');
      q.hidden = !visible;
      q.querySelectorAll('article.card[data-task]').forEach(function(c){
        var s = visible && c.dataset.match === '1';
        c.dataset.shown = s ? '1' : '0';
        if (s) shown += 1;
      });
    });
    document.getElementById('count').textContent = shown + ' of ' + total + ' episodes shown';
  }
  function write(){
    var p = new URLSearchParams();
    if (f.task.value) p.set('task', f.task.value);
    if (f.correct.value) p.set('correct', f.correct.value);
    if (f.overlap.value) p.set('overlap', f.overlap.value);
    if (f.changed && f.changed.checked) p.set('changed', '1');
    history.replaceState(null, '', '#' + p.toString());
    apply();
  }
  function read(){
    var p = params();
    f.task.value = p.get('task') || '';
    if (f.task.value !== (p.get('task') || '')) f.task.value = '';
    f.correct.value = p.get('correct') || '';
    f.overlap.value = p.get('overlap') || '';
    if (f.changed) f.changed.checked = p.get('changed') === '1';
    apply();
  }
  [f.task, f.correct, f.overlap, f.changed].forEach(function(e){
    if (e) e.addEventListener('change', write);
  });
  window.addEventListener('hashchange', read);
  read();
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}
{frames}</style></head>
<body>
<h1>{title}</h1>
<p class="meta">{n_cards} episodes, {n_frames} distinct frames. Green: ground-truth evidence window; grey
ticks: the preview's sample times; blue: tool calls (red: refused); orange: an interval answer. An episode
counts as correct when its accuracy reward is at least {correct_at}.</p>
<h2>Summary</h2>
{summaries}
<div id="filters">
<label>task <select id="f-task"><option value="">all</option>{task_options}</select></label>
<label>answer <select id="f-correct"><option value="">all</option><option value="1">correct</option>
<option value="0">wrong</option></select></label>
<label>evidence overlap <select id="f-overlap"><option value="">all</option><option value="1">yes</option>
<option value="0">no</option></select></label>
{changed_filter}
<span id="count"></span>
</div>
<main id="cards">
{cards}
</main>
<script>{script}</script>
</body></html>
"""
