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


LIGHT_IDS = sorted(i for i, spec in medscope_gym.ENV_IDS.items() if not spec.get("heavy"))
HEAVY_IDS = sorted(i for i, spec in medscope_gym.ENV_IDS.items() if spec.get("heavy"))


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
    import medscope_gym.envs.clinvideo as module

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
    assert r == parts["total"] and info["episode"]["truncated"] is True


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
    assert trunc is True and info["episode"]["frames_seen"] >= 10


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
