import json
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import medscope_gym
from medscope_gym.envs import ClinVideoEnv
from medscope_gym.errors import ConfigError, SuiteError, VideoError
from medscope_gym.protocol import format_answer, format_tool_call

REWARD_KEYS = {"accuracy", "format", "evidence", "crop", "frame", "total"}


def make(render_mode=None, **kw):
    return gym.make("MedScope/SynthSurg-v0", render_mode=render_mode, **kw)


def crop(s, e, **extra):
    return format_tool_call("crop_video", {"start_time": s, "end_time": e, **extra}, think="look")


def frame(t):
    return format_tool_call("get_frame", {"timestamp": t}, think="zoom")


def answer(a):
    return format_answer(a, think="done")


# Ids whose suites take minutes to build on first use: the tests, not the registry, decide what is heavy.
HEAVY_IDS = sorted({"MedScope/SynthSurg-Bench-v0"})
LIGHT_IDS = sorted(set(medscope_gym.ENV_IDS) - set(HEAVY_IDS))


def _check(env_id, render_mode):
    kwargs = {"suite": "builtin:synthsurg-small"} if env_id == "MedScope/ClinVideo-v0" else {}
    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()
    env.close()  # a second close is safe


@pytest.mark.parametrize("env_id", LIGHT_IDS)
@pytest.mark.parametrize("render_mode", ["rgb_array", "ansi"])
def test_check_env_passes_with_warnings_as_errors(env_id, render_mode):
    _check(env_id, render_mode)


@pytest.mark.heavy
@pytest.mark.parametrize("env_id", HEAVY_IDS)
def test_check_env_on_heavy_ids(env_id):
    """Ids whose suites take minutes to build; the same classes are checked above on small suites."""
    _check(env_id, "rgb_array")


def test_seeded_resets_are_reproducible():
    a, b = make(), make()
    for seed in (0, 1, 7):
        oa, ia = a.reset(seed=seed)
        ob, ib = b.reset(seed=seed)
        assert ia["sample_id"] == ib["sample_id"] and oa["text"] == ob["text"]
        np.testing.assert_array_equal(oa["video"], ob["video"])
    ids = {a.reset(seed=s)[1]["sample_id"] for s in range(20)}
    assert len(ids) > 5


def test_observations_inside_space_through_an_episode(builtin_suite):
    env = make()
    sample = builtin_suite[0]
    obs, info = env.reset(options={"sample_id": sample.id})
    assert obs in env.observation_space and info["sample_id"] == sample.id
    assert "ground_truth" not in info and "reward_parts" not in info
    assert obs["video"].shape[0] == obs["video_times"].shape[0] > 0 and obs["images"].shape[0] == 0
    s, e = sample.evidence[0]
    obs, r, term, trunc, info = env.step(crop(s, e))
    assert obs in env.observation_space and r == 0.0 and not term and not trunc
    assert np.all((obs["video_times"] >= s) & (obs["video_times"] <= e))
    assert "ground_truth" not in info
    obs, r, term, trunc, info = env.step(frame((s + e) / 2))
    assert obs["images"].shape[0] == 3 and obs["video"].shape[0] == 0
    obs, r, term, trunc, info = env.step(answer(_oracle_answer(sample)))
    assert term is True and trunc is False and type(term) is bool
    assert set(info["reward_parts"]) == REWARD_KEYS
    assert all(type(v) is float for v in info["reward_parts"].values())
    assert info["reward_parts"]["total"] == r == pytest.approx(5.0)
    assert info["ground_truth"]["answer"] == sample.answer
    assert info["ground_truth"]["evidence"] == [list(w) for w in sample.evidence]
    assert [e["name"] for e in info["tool_log"]] == ["crop_video", "get_frame"]
    for entry in info["tool_log"]:
        assert entry["ok"] and entry["error"] is None and entry["timestamps"]
    assert env.unwrapped.current_sample == sample


def _oracle_answer(sample):
    if sample.answer_type == "interval":
        s, e = sample.answer_interval
        return f"[{s}, {e}]"
    return sample.answer


CALL = '<think>x</think><tool_call>{"name": "%s", "arguments": %s}</tool_call>'
AGENT_TEXTS = [
    "",
    "hello",
    None,
    42,
    b"\xff\xfe bytes",
    ["list"],
    "<think>unclosed",
    "<tool_call>{bad json}</tool_call>",
    CALL % ("crop_video", '{"start_time": NaN, "end_time": 3}'),
    CALL % ("crop_video", '{"start_time": -5, "end_time": 3}'),
    CALL % ("crop_video", '{"start_time": 9, "end_time": 3}'),
    CALL % ("get_frame", '{"timestamp": 1e9}'),
    CALL % ("rm_rf", "{}"),
    CALL % ("get_frame", '{"timestamp": 1, "video_path": "/etc/passwd"}'),
    "x" * 200_000,
    "<think>" * 5000,
    "診断は？🩺 <answer",
    "\x00\x01\x02<tool_call>\x00</tool_call>",
]


@pytest.mark.parametrize("text", AGENT_TEXTS, ids=range(len(AGENT_TEXTS)))
def test_env_never_raises_on_agent_text(text):
    env = make()
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(text)
    assert obs in env.observation_space
    assert obs["text"].startswith("Error:") and r == 0.0 and not term and not trunc


def test_recovery_after_errors_loses_only_format(builtin_suite):
    env = make()
    sample = next(s for s in builtin_suite if s.answer_type == "choice")
    env.reset(options={"sample_id": sample.id})
    env.step("garbage")
    *_, term, trunc, info = env.step(answer(sample.answer))
    assert term and info["reward_parts"]["accuracy"] == 1.0 and info["reward_parts"]["format"] == 0.0
    assert info["format"]["ok"] is False and "turn 1" in info["format"]["reason"]


def test_lenient_json_is_executed_but_reported(builtin_suite):
    env = make()
    sample = builtin_suite[0]
    env.reset(options={"sample_id": sample.id})
    s, e = sample.evidence[0]
    obs, *_, info = env.step(
        f"<think>x</think><tool_call>{{'name': 'crop_video', 'arguments': "
        f"{{'start_time': {s}, 'end_time': {e},}}}}</tool_call>"
    )
    assert info["tool_log"][0]["ok"] and info["tool_log"][0]["lenient_json"] is True
    *_, info = env.step(answer(_oracle_answer(sample)))
    assert info["reward_parts"]["format"] == 0.0 and info["reward_parts"]["crop"] == 2.0


def test_foreign_video_path_is_refused_and_never_opened(tmp_path, monkeypatch):
    import medscope_gym.suite.verify as module  # the env opens its videos only through open_checked

    opened = []
    for opener in ("open_video", "open_tool_video"):  # every way the env opens a video file
        real = getattr(module, opener)
        monkeypatch.setattr(
            module, opener, lambda p, *a, _real=real, **k: opened.append(str(p)) or _real(p, *a, **k)
        )
    env = make()
    env.reset(seed=3)
    assert opened, "the env opened its own video through a patched opener"
    decoy = tmp_path / "secret.mp4"
    decoy.write_bytes(b"x")
    obs, *_, info = env.step(crop(0, 5, video_path=str(decoy)))
    assert obs["text"].startswith("Error: video_path may only name")
    assert info["tool_log"][0]["ok"] is False and "video_path" in info["tool_log"][0]["error"]
    assert str(decoy) not in opened


def test_turn_budget_truncates_with_zero_accuracy():
    env = make(max_turns=3)
    env.reset(seed=1)
    for _ in range(2):
        *_, term, trunc, _ = env.step(frame(1.0))
        assert not term and not trunc
    obs, r, term, trunc, info = env.step(frame(2.0))
    assert trunc is True and term is False
    parts = info["reward_parts"]
    assert parts["accuracy"] == 0.0 and parts["format"] == 0.0 and parts["frame"] >= 0.0
    assert r == parts["total"] and info["episode_summary"]["truncated"] is True


def test_tool_call_budget_refuses_extra_calls():
    env = make(max_tool_calls=1)
    env.reset(seed=2)
    env.step(frame(1.0))
    obs, *_, info = env.step(frame(2.0))
    assert "budget" in obs["text"] and info["tool_calls"] == 1


def test_frame_budget_truncates():
    env = make(max_tool_frames=10)
    env.reset(seed=0)
    *_, trunc, info = env.step(crop(0, 30))
    assert trunc is True and info["episode_summary"]["frames_seen"] >= 10


def test_step_after_end_is_an_api_error():
    env = make().unwrapped
    env.reset(seed=0)
    env.step(answer("A"))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(answer("A"))


def test_render_rgb_array_and_ansi(builtin_suite):
    env = make(render_mode="rgb_array")
    sample = builtin_suite[0]
    env.reset(options={"sample_id": sample.id})
    env.step(crop(*sample.evidence[0]))
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[1] == 960 and img.shape[2] == 3
    # the crop row is drawn in blue at the evidence position
    assert (np.abs(img.astype(int) - (49, 110, 220)).sum(-1) < 10).any()
    env = make(render_mode="ansi")
    env.reset(seed=0)
    env.step("hi")
    assert "turn 1" in env.render()


def test_vector_envs_run_eight_copies():
    fns = [lambda: make() for _ in range(8)]
    for vec in (gym.vector.SyncVectorEnv(fns), gym.vector.AsyncVectorEnv(fns, shared_memory=False)):
        obs, infos = vec.reset(seed=0)
        assert len(obs["text"]) == 8
        obs, rew, term, trunc, infos = vec.step([answer("A")] * 8)
        assert term.all() and rew.shape == (8,)
        obs, rew, term, trunc, infos = vec.step(["x"] * 8)  # autoreset step
        assert not term.any() and (rew == 0).all()
        vec.close()


def test_pickling_round_trip():
    env = make().unwrapped
    env.reset(seed=4)
    clone = pickle.loads(pickle.dumps(env))
    o1, i1 = env.reset(seed=9)
    o2, i2 = clone.reset(seed=9)
    assert i1["sample_id"] == i2["sample_id"]
    np.testing.assert_array_equal(o1["video"], o2["video"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_turns": 0}, "max_turns"),
        ({"reward": "best"}, "preset"),
        ({"tools": {"crop_fps": 0}}, "crop_fps"),
        ({"render_mode": "human"}, "render_mode"),
        ({"video_backend": "magic"}, "backend"),
    ],
)
def test_bad_config_is_one_clear_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        env = ClinVideoEnv("builtin:synthsurg-small", **kwargs)
        env.reset(seed=0)


def test_broken_suite_line_is_named(suite_copy):
    path = suite_copy / "suite.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[2])
    row["evidence"] = [[5, 1]]
    lines[2] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SuiteError, match=r"line 3 .*field 'evidence'"):
        ClinVideoEnv(suite_copy)


def test_missing_video_is_named(suite_copy):
    victim = sorted((suite_copy / "videos").glob("*.mp4"))[0]
    victim.unlink()
    with pytest.raises(SuiteError, match=victim.name):
        ClinVideoEnv(suite_copy)


def test_unreadable_video_fails_at_construction(suite_copy):
    victim = sorted((suite_copy / "videos").glob("*.mp4"))[0]
    victim.write_bytes(b"\x00" * 4096)
    with pytest.raises(VideoError, match=victim.name):
        ClinVideoEnv(suite_copy)


def test_duration_mismatch_is_caught(suite_copy):
    path = suite_copy / "suite.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row["duration"] = row["duration"] + 30.0
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env = ClinVideoEnv(suite_copy)
    with pytest.raises(VideoError, match="decodes to"):
        env.reset(seed=0)


def test_exact_frames_through_the_env(tmp_path):
    from medscope_gym.synthetic import build_synthetic_suite, read_frame_index

    root = build_synthetic_suite(
        tmp_path / "burned", n_videos=2, min_duration_s=40, max_duration_s=60, seed=5, burn_index=True
    )
    env = ClinVideoEnv(root)
    obs, info = env.reset(seed=0)
    fps = env.current_sample.fps
    checks = [(obs["video"], obs["video_times"])]
    obs, *_ = env.step(crop(10.2, 23.7))
    checks.append((obs["video"], obs["video_times"]))
    obs, *_ = env.step(frame(17.77))
    checks.append((obs["images"], obs["image_times"]))
    for frames, times in checks:
        assert len(frames) > 0
        assert [read_frame_index(f) for f in frames] == [round(t * fps) for t in times[:, 0]]


# ---------------------------------------------------------------- numbers in tool calls never raise
# JSON literals an agent may write where a time goes; `valid` ones are accepted as a time (when in range).
NUMBER_CASES = [
    ("1" + "0" * 309, False),  # 10**309: float(int) used to raise OverflowError out of step
    ("-1" + "0" * 309, False),
    ("9" * 4300, False),  # at Python's int-string limit
    ("9" * 4301, False),  # beyond it
    ("1e309", False),
    ("-1e309", False),
    ("1e-400", True),
    ("-0", True),
    ("-0.0", True),
    ('"nan"', False),
    ('"NaN"', False),
    ('"inf"', False),
    ('"-Infinity"', False),
    ('"1e400"', False),
    ('"' + "9" * 5000 + '"', False),
    ("NaN", False),
    ("Infinity", False),
    ("true", False),
    ("false", False),
    ("null", False),
    ("[[1]]", False),
    ("[" * 200 + "1" + "]" * 200, False),
    ('{"s": 1}', False),
    ('"10:61"', False),
    ('"00:02"', True),
    ('"2.5s"', True),
]


@pytest.fixture(scope="module")
def one_env():
    env = ClinVideoEnv("builtin:synthsurg-small")
    yield env
    env.close()


def _step_call(env, tool, value):
    env.reset(seed=0)
    if tool == "get_frame":
        args = f'{{"timestamp": {value}}}'
    elif tool == "crop_start":
        args = f'{{"start_time": {value}, "end_time": 6}}'
    else:
        args = f'{{"start_time": 0, "end_time": {value}}}'
    name = "get_frame" if tool == "get_frame" else "crop_video"
    obs, r, term, trunc, info = env.step(CALL % (name, args))
    assert obs in env.observation_space
    assert r == 0.0 and not term and not trunc
    return obs["text"], info


@pytest.mark.parametrize(("value", "valid"), NUMBER_CASES, ids=range(len(NUMBER_CASES)))
@pytest.mark.parametrize("tool", ["get_frame", "crop_start", "crop_end"])
def test_numeric_edge_cases_in_tool_calls_never_raise(one_env, tool, value, valid):
    text, info = _step_call(one_env, tool, value)
    if not valid:
        assert text.startswith("Error:"), text
        assert "Traceback" not in text and "sys.set_int_max_str_digits" not in text
    elif not (tool == "crop_end" and value in ("1e-400", "-0", "-0.0")):  # end 0 is not after start 0
        assert not text.startswith("Error:"), text
        assert "-0" not in text.split("\n")[0]


def test_random_numeric_text_in_tool_calls_never_raises(one_env):
    """Seeded fuzz: random signs, digit runs (up to past the int-string limit), fractions, exponents."""
    import random

    rng = random.Random(1234)
    for _ in range(150):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([1, 3, 20, 308, 309, 400, 4301])))
        number = rng.choice(["", "-"]) + digits.lstrip("0")[:1] + digits[1:] if digits != "0" else "0"
        number = number or "0"
        if rng.random() < 0.4:
            number += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 30)))
        if rng.random() < 0.4:
            number += "e" + rng.choice(["", "-", "+"]) + str(rng.choice([0, 5, 308, 309, 400, 99999]))
        wrapped = rng.choice([number, f'"{number}"', f"[{number}]", f'"{number} s"'])
        _step_call(one_env, rng.choice(["get_frame", "crop_start", "crop_end"]), wrapped)


# ---------------------------------------------------------------- the final info's summary key
def test_final_info_summary_is_not_under_the_wrappers_episode_key():
    env = make()
    env.reset(seed=0)
    *_, info = env.step(answer("A"))
    assert "episode" not in info  # Gymnasium's RecordEpisodeStatistics and SB3's Monitor own that key
    summary = info["episode_summary"]
    assert summary["turns"] == 1 and summary["sample_id"] == info["sample_id"]


# ---------------------------------------------------------------- deepcopy / pickle mid-episode
def test_deepcopy_mid_episode_continues_the_episode_independently(builtin_suite):
    import copy

    sample = builtin_suite[0]
    env = make()
    env.reset(options={"sample_id": sample.id})
    s, e = sample.evidence[0]
    env.step(crop(s, e))
    clone = copy.deepcopy(env)
    assert clone.unwrapped.current_sample == sample
    # both continue from turn 2, and what one does does not show in the other
    obs_c, *_, info_c = clone.step(frame((s + e) / 2))
    obs_o, *_, info_o = env.step(frame((s + e) / 2))
    assert info_c["turn"] == info_o["turn"] == 2
    np.testing.assert_array_equal(obs_c["images"], obs_o["images"])
    np.testing.assert_array_equal(obs_c["image_times"], obs_o["image_times"])
    *_, term, _, info_c = clone.step(answer(_oracle_answer(sample)))
    assert term and info_c["episode_summary"]["turns"] == 3 and info_c["reward_parts"]["crop"] > 0
    obs_o, *_, info_o = env.step("not an answer")
    assert obs_o["text"].startswith("Error:") and info_o["turn"] == 3
    assert clone.unwrapped._ep.video is not env.unwrapped._ep.video  # no shared decoder
    clone.close()
    obs_o, *_ = env.step(frame(s))  # closing the copy leaves the original's decoder alone
    assert obs_o["images"].shape[0] == 3


def test_deepcopy_keeps_the_rng_and_pickle_documents_a_fresh_start():
    import copy

    env = make().unwrapped
    env.reset(seed=5)
    clone = copy.deepcopy(env)
    assert env.reset()[1]["sample_id"] == clone.reset()[1]["sample_id"]
    restored = pickle.loads(pickle.dumps(env))
    assert restored.current_sample is None  # pickling carries no episode (see the class docstring)
    with pytest.raises(RuntimeError, match="reset"):
        restored.step(answer("A"))
    assert "deepcopy" in ClinVideoEnv.__doc__ and "Pickling" in ClinVideoEnv.__doc__


# ---------------------------------------------------------------- opt-in construction check
def _faststart_truncated(path, keep=0.5):
    """Cut a video in half after moving its index to the front: it still opens, but decodes short."""
    import av

    tmp = path.with_name("faststart_" + path.name)
    with (
        av.open(str(path)) as src,
        av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as dst,
    ):
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = tmp.read_bytes()
    tmp.unlink()
    path.write_bytes(data[: int(len(data) * keep)])


def test_verify_videos_catches_a_truncated_video_at_construction(suite_copy):
    victim = sorted((suite_copy / "videos").glob("*.mp4"))[0]
    _faststart_truncated(victim)
    env = ClinVideoEnv(suite_copy, frame_store=None)  # default: header checks only, as before
    with pytest.raises(VideoError, match="decodes to"):
        env.reset(options={"sample_id": next(s.id for s in env.suite if victim.name in s.video)})
    with pytest.raises(
        VideoError, match=rf"1 of \d+ videos fail the reset check: .*{victim.name}.*decodes to"
    ):
        ClinVideoEnv(suite_copy, frame_store=None, verify_videos=True)


def test_verify_videos_catches_a_duration_mismatch_at_construction(suite_copy, tmp_path):
    path = suite_copy / "suite.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[-1]["duration"] += 30.0  # one sample; the video is shared with others that are right
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(VideoError, match=rf"{rows[-1]['id']}.*decodes to"):
        ClinVideoEnv(suite_copy, frame_store=tmp_path / "stores", verify_videos=True)
    # and at reset, even when the video is already open for another sample
    env = ClinVideoEnv(suite_copy, frame_store=None)
    other = next(r["id"] for r in rows if r["video"] == rows[-1]["video"] and r["id"] != rows[-1]["id"])
    env.reset(options={"sample_id": other})
    with pytest.raises(VideoError, match="decodes to"):
        env.reset(options={"sample_id": rows[-1]["id"]})


def test_verify_videos_passes_a_good_suite_and_must_be_a_bool():
    env = ClinVideoEnv("builtin:synthsurg-small", frame_store=None, verify_videos=True)
    assert env.reset(seed=0)[1]["sample_id"]
    with pytest.raises(ConfigError, match="verify_videos"):
        ClinVideoEnv("builtin:synthsurg-small", verify_videos="yes")
