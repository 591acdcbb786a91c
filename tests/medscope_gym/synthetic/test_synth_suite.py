from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from medscope_gym.suite import Suite
from medscope_gym.synthetic import (
    EVENT_NOUNS,
    PHASE_LABELS,
    TOOL_LABELS,
    build_synthetic_suite,
    builtin_suite_path,
    generate_procedure,
)
from medscope_gym.synthetic.questions import ORDINALS

_TEMPLATES = {"event_instrument", "event_phase", "event_grounding", "phase_grounding", "instrument_at"}


def _procedures(root):
    manifest = json.loads((root / "synthetic.json").read_text())
    params = manifest["params"]
    out = {}
    for v in manifest["videos"]:
        proc = generate_procedure(v["seed"], v["num_frames"] / v["fps"], v["fps"])
        assert proc.num_frames == v["num_frames"]
        out[v["video"]] = proc
    return out, params


def _referenced_event(proc, question):
    """Re-derive the event a question names ("the second clip application") from the timeline."""
    for kind, noun in sorted(EVENT_NOUNS.items(), key=lambda kv: -len(kv[1])):
        m = re.search(rf"the (?:(\w+) )?{noun}\b", question)
        if m is None:
            continue
        same = [e for e in proc.events if e.kind == kind]
        if m.group(1) in ORDINALS:
            return same[ORDINALS.index(m.group(1))]
        assert len(same) == 1, question  # named without an order: must be the only one
        return same[0]
    raise AssertionError(f"no event named in {question!r}")


def test_builtin_suite_loads_and_answers_agree_with_timeline(small_suite):
    suite = Suite.load(small_suite)
    assert len(suite) >= 40
    assert {s.extra["template"] for s in suite} == _TEMPLATES
    assert set(suite.counts("answer_type")) == {"choice", "interval"}
    procs, _ = _procedures(small_suite)
    assert len(procs) == 6 and all(60 <= p.duration <= 150 for p in procs.values())
    for s in suite:
        proc = procs[s.video]
        template = s.extra["template"]
        assert s.source == "synthetic" and s.fps == proc.fps and s.duration == proc.num_frames / proc.fps
        assert all(0 <= a <= b <= s.duration for a, b in s.evidence)
        assert s.trajectory and s.captions is not None
        if template == "phase_grounding":
            label = re.search(r"the (.+) phase take", s.question).group(1)
            seg = next(p for p in proc.phases if PHASE_LABELS[p.name] == label)
            assert s.answer_interval == pytest.approx((seg.start, seg.end), abs=1e-3)
            assert s.evidence == ((seg.start, seg.end),)
            continue
        if template == "instrument_at":
            t = s.evidence[0][0]
            on = {TOOL_LABELS[x] for x in proc.instruments_at(t)}
            assert [o for o in s.options if o in on] == [s.options[s.answer_index]]
            continue
        ev = _referenced_event(proc, s.question)
        assert s.evidence == ((ev.start, ev.end),)
        if template == "event_grounding":
            assert s.answer_interval == pytest.approx((ev.start, ev.end), abs=1e-3)
        elif template == "event_phase":
            assert s.options[s.answer_index] == PHASE_LABELS[ev.phase]
        else:  # event_instrument: the answer is on screen throughout, no distractor is
            assert s.options[s.answer_index] == TOOL_LABELS[ev.instrument]
            for f in range(ev.start_frame, ev.end_frame):
                on = {TOOL_LABELS[t] for t in proc.instruments_at(f / proc.fps)}
                assert [o for o in s.options if o in on] == [TOOL_LABELS[ev.instrument]]
        if s.answer_type == "choice":
            assert len(s.options) == 4 and len(set(s.options)) == 4
    letters = Counter(s.answer for s in suite if s.answer_type == "choice")
    assert max(letters.values()) - min(letters.values()) <= 1 and set(letters) == set("ABCD")


def test_splits_are_by_video(small_suite):
    suite = Suite.load(small_suite)
    split_of = {}
    for s in suite:
        assert split_of.setdefault(s.video, s.split) == s.split
    assert {"train", "test"} <= set(split_of.values())
    for name in ("phase", "tool"):
        assert len(list((small_suite / "annotations").glob(f"video*-{name}.txt"))) == 6


def test_builtin_suite_is_cached(small_suite, suite_cache):
    stamp = (small_suite / "suite.jsonl").stat().st_mtime_ns
    videos = sorted((small_suite / "videos").iterdir())
    again = builtin_suite_path("synthsurg-small", cache_dir=suite_cache)
    assert again == small_suite
    assert (again / "suite.jsonl").stat().st_mtime_ns == stamp
    assert sorted((again / "videos").iterdir()) == videos
    assert [p.name for p in suite_cache.iterdir()] == [small_suite.name]  # no leftovers


def test_builtin_suite_honours_env_cache(monkeypatch, small_suite, suite_cache):
    monkeypatch.setenv("MEDSCOPE_CACHE", str(suite_cache))
    assert builtin_suite_path() == small_suite


def test_same_seed_same_suite_and_different_seed_differs(tmp_path):
    kwargs = dict(n_videos=2, min_duration_s=20.0, max_duration_s=24.0, width=96, height=64)
    a = build_synthetic_suite(tmp_path / "a", seed=5, **kwargs)
    b = build_synthetic_suite(tmp_path / "b", seed=5, **kwargs)
    c = build_synthetic_suite(tmp_path / "c", seed=6, **kwargs)
    assert (a / "suite.jsonl").read_bytes() == (b / "suite.jsonl").read_bytes()
    assert (a / "suite.jsonl").read_bytes() != (c / "suite.jsonl").read_bytes()
    for name in ("video01-phase.txt", "video02-tool.txt", "video01-events.json"):
        assert (a / "annotations" / name).read_bytes() == (b / "annotations" / name).read_bytes()
    suite = Suite.load(a)
    assert {s.split for s in suite} == {"train", "test"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temporary folders are gone


_TINY = {"n_videos": 2, "min_duration_s": 20.0, "max_duration_s": 22.0, "seed": 3, "width": 96, "height": 64}


def _build_tiny(cache: str) -> str:
    """Runs in a spawned process: register the tiny suite there too, then ask for it."""
    from medscope_gym.synthetic import builtin

    builtin.BUILTIN_SUITES["tiny"] = _TINY
    return str(builtin.builtin_suite_path("tiny", cache_dir=cache))


def test_concurrent_first_calls_share_one_folder(tmp_path):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        paths = list(pool.map(_build_tiny, [str(tmp_path)] * 2))
    assert paths[0] == paths[1]
    assert [p.name for p in tmp_path.iterdir()] == [Path(paths[0]).name]
    assert len(Suite.load(paths[0])) > 0


def test_race_loser_keeps_the_winners_folder(tmp_path, monkeypatch):
    from medscope_gym.synthetic import builtin

    monkeypatch.setitem(builtin.BUILTIN_SUITES, "tiny", _TINY)
    real_build = builtin.build_synthetic_suite
    winner: list[Path] = []

    def build_then_lose(out_dir, **kwargs):
        # Another process finishes the same suite while this one is still building.
        final = Path(out_dir).parent / Path(out_dir).name[1:].split(".")[0]
        winner.append(real_build(final, **kwargs))
        return real_build(out_dir, **kwargs)

    monkeypatch.setattr(builtin, "build_synthetic_suite", build_then_lose)
    stamp_path = builtin.builtin_suite_path("tiny", cache_dir=tmp_path)
    assert winner and stamp_path == winner[0]
    assert [p.name for p in tmp_path.iterdir()] == [stamp_path.name]
    Suite.load(stamp_path)


def test_synth_command_writes_a_suite_with_the_asked_splits(tmp_path, capsys):
    from medscope_gym.cli import main

    args = ["synth", str(tmp_path / "s"), "--videos", "3", "--min-duration", "20", "--max-duration", "22"]
    assert main([*args, "--width", "96", "--height", "64", "--splits", "1,0,0", "--seed", "4"]) == 0
    suite = Suite.load(tmp_path / "s")
    # every video trains but the one test video a suite always keeps; no val
    by_split = {split: {s.video for s in suite if s.split == split} for split in ("train", "val", "test")}
    assert [len(v) for v in by_split.values()] == [2, 0, 1]
    assert "over 3 videos" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*args, "--splits", "1,0"])
