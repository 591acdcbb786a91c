"""The testbed suite is coarse-to-fine by construction: the preview shows where, never what."""

from __future__ import annotations

import numpy as np
import pytest

from medscope_gym.agents.evaluate import EvalConfig, evaluate
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.synthetic.testbed import (
    MAIN_TEMPLATES,
    PERCEPTION_TEMPLATES,
    SYMBOL_COLORS,
    TESTBED_TOOLS,
    TestbedConfig,
    build_testbed_suite,
    chance_accuracy,
)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    cfg = TestbedConfig(
        n_videos=4,
        min_duration_s=200,
        max_duration_s=320,
        seed=5,
        splits=(0.0, 0.5, 0.5),
        templates=MAIN_TEMPLATES + PERCEPTION_TEMPLATES,
        video_prefix="h",
    )
    return build_testbed_suite(tmp_path_factory.mktemp("tb") / "heldout", cfg)


def _symbol_pixels(frames: np.ndarray) -> int:
    """Pixels close to a symbol colour in frames ``(n, h, w, 3)``."""
    hits = 0
    for rgb in SYMBOL_COLORS.values():
        hits += int((np.abs(frames.astype(int) - np.asarray(rgb)).max(axis=-1) < 40).sum())
    return hits


def test_preview_shows_where_but_never_what(heldout):
    env = ClinVideoEnv(heldout)
    assert env.tool_config == TESTBED_TOOLS  # the suite's tools.json
    for sample in env.suite:
        if sample.extra["template"] != "symbol_in_highlight":
            continue
        obs, _ = env.reset(options={"sample_id": sample.id})
        times = obs["video_times"][:, 0]
        assert len(times) == 16
        ((a, b),) = sample.evidence
        assert not np.any((times >= a - 1e-6) & (times < b)), "a preview frame shows a symbol"
        assert _symbol_pixels(obs["video"]) == 0
        # the highlight bar (where) is visible in the 32x32 preview: bright rows on top of the frame
        bar = obs["video"][:, 16:18, 16:48].mean(axis=(1, 2, 3)) > 200
        assert bar.any()
        # a crop at the tools' rate and resolution shows the symbol (what, and exactly when)
        action = (
            '<think>x</think><tool_call>{"name": "crop_video", "arguments": '
            f'{{"start_time": {a - 1}, "end_time": {b + 1}}}}}</tool_call>'
        )
        obs, *_ = env.step(action)
        assert obs["video"].shape[1:3] == (64, 64)
        inside = (obs["video_times"][:, 0] >= a) & (obs["video_times"][:, 0] < b)
        assert inside.any() and _symbol_pixels(obs["video"][inside]) > 50 * inside.sum()
        assert _symbol_pixels(obs["video"][~inside]) == 0
    env.close()


def test_scripted_baselines_chance_search_and_oracle(heldout, tmp_path):
    oracle, _ = evaluate(
        EvalConfig(policy="oracle", suite=str(heldout), splits=("val", "test"), progress=False)
    )
    assert oracle["overall"]["accuracy"] == 1.0
    assert oracle["temporal_grounding"]["R@0.5"] == 1.0
    # the search reference by name, as the recipe's baseline row plays it: right, and its close crops
    # (between frames it was shown) mostly reach the evidence
    search, _ = evaluate(
        EvalConfig(policy="search", suite=str(heldout), splits=("val", "test"), progress=False)
    )
    assert search["symbol_recognition"]["accuracy"] == 1.0
    assert search["symbol_recognition"]["evidence_R@0.5"] >= 0.5
    blind, trajs = evaluate(
        EvalConfig(policy="no_tools", suite=str(heldout), splits=("val", "test"), progress=False, repeats=4)
    )
    choice = [
        t
        for t in trajs
        if t.task in ("symbol_recognition", "perception") and "[" not in t.turns[-1].action_text
    ]
    acc = np.mean([t.final_info["reward_parts"]["accuracy"] >= 1 for t in choice])
    assert abs(acc - 0.25) < 0.15  # chance: four options
    assert blind["temporal_grounding"]["R@0.3"] == 0.0


def test_chance_and_splits(heldout):
    from medscope_gym.suite import Suite

    suite = Suite.load(heldout)
    assert {s.split for s in suite} == {"val", "test"}
    assert {s.source for s in suite} == {"testbed"}
    letters = [s.answer for s in suite if s.answer_type == "choice"]
    assert max(letters.count(x) for x in "ABCD") - min(letters.count(x) for x in "ABCD") <= 2
    assert 0 < chance_accuracy(suite) <= 0.25
    assert all(s.captions for s in suite)


def test_oracle_names_what_it_saw_and_crops_between_preview_frames(heldout):
    """The reference's visual chain of thought names the symbol (from the dense captions) and the option
    it is; with ``crop_to_preview`` its crop runs between the two preview frames around the symbol."""
    from medscope_gym.agents.runner import run_episode
    from medscope_gym.agents.scripted import OraclePolicy
    from medscope_gym.protocol import parse_turn

    env = ClinVideoEnv(heldout)
    for sample in env.suite:
        if sample.extra["template"] != "symbol_in_highlight":
            continue
        symbol = sample.options[ord(sample.answer) - ord("A")]
        plain = run_episode(env, OraclePolicy(decimals=1), options={"sample_id": sample.id})
        think = parse_turn(plain.actions[-1]).think
        assert f"show a {symbol} at the centre" in think and f"option {sample.answer}, {symbol}." in think
        snapping = OraclePolicy(decimals=1, crop_to_preview=True)
        snapped = run_episode(env, snapping, options={"sample_id": sample.id})
        obs, _ = env.reset(options={"sample_id": sample.id})
        times = obs["video_times"][:, 0]
        crop = snapped.final_info["episode_summary"]["inspected_interval"]
        ((a, b),) = sample.evidence
        k = int(np.searchsorted(times, a))  # the first preview frame after the symbol starts
        assert crop == [round(times[k - 1], 1), round(times[k], 1)] and crop[0] <= a and b <= crop[1]
        assert snapped.final_info["reward_parts"]["accuracy"] == 1.0
        assert plain.final_info["episode_summary"]["inspected_interval"] != crop
    env.close()


def test_kth_highlight_question_names_the_events_rank():
    from medscope_gym.suite.labels import ORDINALS
    from medscope_gym.synthetic.testbed import generate_testbed_video, testbed_questions

    for seed in range(6):
        video = generate_testbed_video(seed, 140.0)
        starts = [ev.start for ev in video.events]
        asked = [s for s in testbed_questions(video, "v") if s.extra["template"] == "symbol_in_highlight"]
        assert asked
        for sample in asked:
            word = sample.question.split("appears in the ")[1].split(" ")[0]
            rank = ORDINALS.index(word)  # "first" is the earliest highlight
            assert sample.evidence[0][0] == pytest.approx(starts[rank], abs=0.05)
            assert sample.options[0] == video.events[rank].symbol


def test_searching_oracle_acts_only_on_what_it_was_shown(heldout):
    """It lists every preview frame and whether it shows the bar (checked on the pixels), crops a named
    highlight directly or searches the highlights in order, crops the evidence closely, and answers."""
    from medscope_gym.agents.runner import run_episode
    from medscope_gym.agents.scripted import SearchingOracle
    from medscope_gym.protocol import parse_turn

    env = ClinVideoEnv(heldout)
    searched = 0
    for sample in env.suite:
        if sample.extra["template"] not in MAIN_TEMPLATES:
            continue
        obs, _ = env.reset(options={"sample_id": sample.id})
        times, frames = obs["video_times"][:, 0], obs["video"]
        lit = [
            f"{t} {'bar' if frame[16:18, 16:48].mean() > 200 else 'no'}" for t, frame in zip(times, frames)
        ]
        ep = run_episode(env, SearchingOracle(decimals=1), options={"sample_id": sample.id})
        turns = [parse_turn(a) for a in ep.actions]
        listed = turns[0].think.split("The preview frames: ")[1].split(". ")[0].split("; ")
        assert listed == lit and sum(x.endswith(" bar") for x in lit) >= 2  # every frame, in order
        assert ep.final_info["reward_parts"]["accuracy"] == 1.0
        assert ep.final_info["reward_parts"]["evidence"] == 2.0  # the last crop is the evidence
        assert len(ep.actions) <= 5 and turns[-1].answer is not None
        coarse = [t for t in turns[:-2]]
        if sample.extra["template"] == "symbol_in_highlight":
            assert len(coarse) == 1 and "highlighted interval is" in turns[0].think
        else:  # the named symbol: every highlight before its own is cropped, and what it showed named
            rank = sample.extra["query"]["event"]
            assert len(coarse) == rank + 1
            assert all(" not what the question asks about" in t.think for t in turns[1 : rank + 1])
            searched += rank > 0
    assert searched  # some symbols were not in the first highlight
    env.close()


def test_one_interval_testbed_needs_the_crop_and_never_a_search(tmp_path):
    """``events=(1, 1)``: one symbol per video, so every question is about the one highlighted interval;
    the preview still shows where and not what, and the search reference answers after one crop of
    the highlight and one close crop, without moving on."""
    from medscope_gym.agents.runner import run_episode
    from medscope_gym.agents.scripted import NOT_ASKED, SearchingOracle
    from medscope_gym.protocol import parse_turn
    from medscope_gym.suite import Suite

    cfg = TestbedConfig(n_videos=3, min_duration_s=200, max_duration_s=320, seed=9, events=(1, 1))
    suite_dir = build_testbed_suite(tmp_path / "one", cfg)
    suite = Suite.load(suite_dir)
    per_video = {}
    for sample in suite:
        per_video.setdefault(sample.video, []).append(sample.extra["template"])
        assert sample.extra["query"]["event"] == 0
    assert sorted(map(sorted, per_video.values())) == [sorted(MAIN_TEMPLATES)] * 3  # one of each kind
    env = ClinVideoEnv(suite_dir)
    for sample in env.suite:
        obs, _ = env.reset(options={"sample_id": sample.id})
        times = obs["video_times"][:, 0]
        ((a, b),) = sample.evidence
        assert not np.any((times >= a - 1e-6) & (times < b)) and _symbol_pixels(obs["video"]) == 0
        ep = run_episode(env, SearchingOracle(decimals=1), options={"sample_id": sample.id})
        turns = [parse_turn(x) for x in ep.actions]
        assert len(turns) == 3 and ep.final_info["reward_parts"]["accuracy"] == 1.0
        assert not any(NOT_ASKED in t.think for t in turns)
    env.close()


def test_searching_oracle_without_captions_crops_between_preview_frames(heldout):
    """With nothing marked (no captions), it crops between the preview frames around the evidence, as
    ``OraclePolicy(crop_to_preview=True)`` does, then answers."""
    import dataclasses

    from medscope_gym.agents.scripted import SearchingOracle
    from medscope_gym.protocol import parse_turn

    env = ClinVideoEnv(heldout)
    sample = next(s for s in env.suite if s.extra["template"] == "symbol_grounding")
    bare = dataclasses.replace(sample, captions=None)
    policy = SearchingOracle()
    obs, info = env.reset(options={"sample_id": sample.id})
    policy.begin(0, obs, info, bare)
    times = obs["video_times"][:, 0]
    ((a, b),) = sample.evidence
    k = int(np.searchsorted(times, a))
    call = parse_turn(policy.act([0], [obs], [info])[0]).tool_call
    assert call.arguments == {"start_time": round(times[k - 1], 3), "end_time": round(times[k], 3)}
    obs, _, done, _, info = env.step(policy.act([0], [obs], [info])[0])
    assert not done and info["tool_log"][-1]["ok"]
    obs, reward, done, _, info = env.step(policy.act([0], [obs], [info])[0])
    assert done and info["reward_parts"]["accuracy"] == 1.0
    env.close()


def test_searching_oracle_lists_crop_frames_and_crops_between_shown_frames(heldout):
    """With ``list_crops`` the reference lists every shown crop frame with what it shows (checked on the
    pixels), and its close crop runs from the frame before the symbol to the frame after it: times it
    was shown. It still answers right, and the close crop mostly matches the evidence (IoU >= 0.5)."""
    from medscope_gym.agents.scripted import SearchingOracle
    from medscope_gym.intervals import temporal_iou
    from medscope_gym.protocol import parse_turn

    env = ClinVideoEnv(heldout)
    ious = []
    for sample in env.suite:
        if sample.extra["template"] not in MAIN_TEMPLATES:
            continue
        policy = SearchingOracle(decimals=1, list_crops=16)
        obs, info = env.reset(options={"sample_id": sample.id})
        policy.begin(0, obs, info, env.unwrapped.current_sample)
        crops, done, calls = [], False, []
        while not done:
            action = policy.act([0], [obs], [info])[0]
            turn = parse_turn(action)
            if crops and turn.tool_call is not None:  # a turn after a crop lists that crop's frames
                times, frames = crops[-1]["video_times"][:, 0], crops[-1]["video"]
                listed = turn.think.split("The crop frames: ")[1].split(". ")[0].split("; ")
                assert [x.split(" ")[0] for x in listed] == [f"{t}" for t in times]
                assert [not x.endswith(" no") for x in listed] == [
                    _symbol_pixels(f[None]) > 50 for f in frames
                ]
            if turn.tool_call is not None:
                calls.append(turn.tool_call.arguments)
            obs, _, done, _, info = env.step(action)
            if not done and len(obs["video"]):
                crops.append(obs)
        assert info["reward_parts"]["accuracy"] == 1.0
        fine, shown = calls[-1], crops[-2]["video_times"][:, 0]
        assert fine["start_time"] in shown and fine["end_time"] in shown
        ious.append(temporal_iou((fine["start_time"], fine["end_time"]), sample.evidence[0]))
    assert np.mean(np.asarray(ious) >= 0.5) >= 0.5
    env.close()
