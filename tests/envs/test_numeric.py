"""The numeric env: Gymnasium and SB3 checkers, exact base-env rewards, observations, action resolution."""

from __future__ import annotations

import logging
import warnings

import gymnasium as gym
import numpy as np
import pytest

import medscope_gym  # noqa: F401 - registers the ids
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.envs.numeric import LAST_TOOL_KINDS, NumericClinVideoEnv, NumericConfig
from medscope_gym.envs.numeric_features import brief_changes, hash_words
from medscope_gym.errors import ConfigError
from medscope_gym.intervals import best_iou
from medscope_gym.suite import Suite, write_suite
from medscope_gym.synthetic import build_synthetic_suite

ENV_ID = "MedScope/SynthSurg-Numeric-v0"


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> str:
    """Three short 1-fps videos with the default question mix (choice and interval questions)."""
    out = tmp_path_factory.mktemp("numeric") / "suite"
    build_synthetic_suite(
        out, n_videos=3, min_duration_s=60.0, max_duration_s=80.0, seed=7, fps=1.0, splits=(0.67, 0.0, 0.33)
    )
    return str(out)


def _event_sized(sample) -> bool:
    """Evidence of 2–5 s: what 60 bins must resolve in 60–90 s videos (1-s windows need more bins)."""
    return 2.0 <= sample.evidence[0][1] - sample.evidence[0][0] <= 5.0


@pytest.fixture()
def env(suite_dir):
    env = NumericClinVideoEnv(suite=suite_dir)
    yield env
    env.close()


def _crop(env: NumericClinVideoEnv, centre: int, span: int, duration: float) -> tuple[float, float]:
    first, end = env.span_bins(centre, span)
    return first * duration / env.config.bins, end * duration / env.config.bins


def _bins_for(env: NumericClinVideoEnv, window: tuple[float, float], duration: float) -> tuple[int, int]:
    """The (centre bin, span) whose crop has the best IoU with ``window``."""
    best, arg = -1.0, (0, 0)
    for centre in range(env.config.bins):
        for span in range(env.config.max_span_bins):
            iou = best_iou(_crop(env, centre, span, duration), [window])
            if iou > best:
                best, arg = iou, (centre, span)
    return arg


def _numeric_layer(env: gym.Env) -> NumericClinVideoEnv:
    """The NumericClinVideoEnv inside gym.make's wrappers."""
    while not isinstance(env, NumericClinVideoEnv):
        env = env.env
    return env


def test_gymnasium_check_env_passes_with_warnings_as_errors(suite_dir):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(ENV_ID, suite=suite_dir)
    numeric = _numeric_layer(env)
    assert isinstance(numeric, gym.Wrapper) and isinstance(env.unwrapped, ClinVideoEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the one expected warning: the checked env is a wrapper (the numeric view is one by design)
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        check_env(numeric)  # includes the render-mode checks through the spec
    env.close()


def test_gym_make_gives_the_wrapper_and_its_attributes_through_get_wrapper_attr(suite_dir):
    env = gym.make(ENV_ID, suite=suite_dir, split="train", render_mode="ansi")
    numeric = _numeric_layer(env)
    assert env.get_wrapper_attr("samples") is numeric.samples and env.render_mode == "ansi"
    assert env.unwrapped is numeric.env and env.spec.id == ENV_ID
    assert env.observation_space == numeric.observation_space and env.action_space == numeric.action_space
    again = gym.make(env.spec)  # the spec recreates the same stack
    assert isinstance(_numeric_layer(again), NumericClinVideoEnv)
    assert again.get_wrapper_attr("samples") == numeric.samples
    again.close()
    env.close()


def test_a_built_env_can_be_wrapped_but_not_together_with_suite_kwargs(suite_dir):
    base = ClinVideoEnv(suite_dir, tools={"preview_max_frames": 60})
    env = NumericClinVideoEnv(base)
    assert env.unwrapped is base and env.env is base
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    with pytest.raises(ConfigError, match="not both"):
        NumericClinVideoEnv(base, split="train")
    with pytest.raises(ConfigError, match="wraps a ClinVideoEnv"):
        NumericClinVideoEnv(gym.make("CartPole-v1"))
    env.close()


def test_preview_caches_belong_to_each_wrapper(suite_dir):
    first, second = NumericClinVideoEnv(suite=suite_dir), NumericClinVideoEnv(suite=suite_dir)
    a, _ = first.reset(seed=0)
    assert len(first._previews) == 1 and len(second._previews) == 0
    b, _ = second.reset(seed=0)
    np.testing.assert_array_equal(a["preview"], b["preview"])
    np.testing.assert_array_equal(a["changes"], b["changes"])
    first.close()
    second.close()


def test_sb3_check_env_passes(env):
    from stable_baselines3.common.env_checker import check_env

    check_env(env, warn=False)


def test_only_choice_samples_are_kept_and_the_rest_is_reported(suite_dir, caplog):
    suite = Suite.load(suite_dir)
    with caplog.at_level(logging.WARNING, logger="medscope_gym.envs.numeric"):
        env = NumericClinVideoEnv(suite=suite_dir)
    n_choice = sum(s.answer_type == "choice" for s in suite)
    assert 0 < len(env.samples) == n_choice < len(suite)
    assert all(s.answer_type == "choice" for s in env.samples)
    assert "skipping" in caplog.text and "(interval)" in caplog.text
    env.close()


def test_a_suite_without_choice_questions_is_refused(suite_dir, tmp_path):
    suite = Suite.load(suite_dir)
    (tmp_path / "videos").symlink_to(f"{suite_dir}/videos")
    write_suite(tmp_path, [s for s in suite if s.answer_type != "choice"])
    with pytest.raises(ConfigError, match="no multiple-choice questions"):
        NumericClinVideoEnv(suite=str(tmp_path))


def test_reward_and_info_equal_the_base_env_on_the_same_text(suite_dir, env):
    base = ClinVideoEnv(suite_dir, tools={"preview_max_frames": env.config.bins})
    rng = np.random.default_rng(0)
    for index, sample in enumerate(env.samples):
        obs, info = env.reset(seed=index, options={"sample_id": sample.id})
        base.reset(seed=index, options={"sample_id": sample.id})
        start, span = _bins_for(env, sample.evidence[0], info["duration"])
        plan = [[1, start, span, 0], [2, start, span, 0], [0, 0, 0, sample.answer_index]]
        oracle = index % 2 == 0 and _event_sized(sample)
        if not oracle:  # random turns, which may run out of budget
            plan = [list(env.action_space.sample()) for _ in range(6)]
            plan = [[int(x) for x in a] for a in plan]
            rng.shuffle(plan)
        for action in plan:
            text = env.action_text(np.array(action))
            got = env.step(np.array(action))
            want = base.step(text)
            assert got[1] == want[1] and isinstance(got[2], bool) and isinstance(got[3], bool)
            if want[3] and not want[2]:  # out of budget: a terminal state of the MDP (the budget is observed)
                assert got[2] and not got[3] and got[4]["base_truncated"]
            else:
                assert got[2] == want[2] and got[3] == want[3] and "base_truncated" not in got[4]
            if got[2] or got[3]:
                assert got[4]["reward_parts"] == want[4]["reward_parts"]
                break
        if oracle:
            assert got[4]["reward_parts"]["accuracy"] == 1.0
            assert got[4]["reward_parts"]["crop"] >= 1.0 and got[4]["reward_parts"]["frame"] == 1.0
    base.close()


def test_action_resolution_reaches_iou_half_on_every_event(env):
    events = [s for s in env.samples if _event_sized(s)]
    assert len(events) >= 4
    for sample in events:
        centre, span = _bins_for(env, sample.evidence[0], sample.duration)
        crop = _crop(env, centre, span, sample.duration)
        assert best_iou(crop, sample.evidence) >= 0.5, sample.id
        lo, hi = sample.evidence[0]
        assert lo <= (centre + 0.5) * sample.duration / env.config.bins <= hi  # get_frame lands inside


def test_crops_are_centred_on_the_time_bin_and_stay_inside_the_video(env):
    bins = env.config.bins
    assert (
        env.span_bins(10, 0) == (10, 11)
        and env.span_bins(10, 2) == (9, 12)
        and env.span_bins(10, 3) == (9, 13)
    )
    assert env.span_bins(0, 7) == (0, 8) and env.span_bins(bins - 1, 7) == (bins - 8, bins)
    for centre in range(bins):
        for span in range(env.config.max_span_bins):
            first, end = env.span_bins(centre, span)
            assert 0 <= first <= centre < end <= bins and end - first == span + 1


def test_observations_follow_the_episode(env):
    sample = next(s for s in env.samples if _event_sized(s))
    obs, info = env.reset(seed=0, options={"sample_id": sample.id})
    assert env.observation_space.contains(obs)
    assert obs["last_tool"][LAST_TOOL_KINDS.index("none")] == 1.0 and obs["frame_mask"].sum() == 0
    assert obs["budget"].tolist() == [1.0, 1.0]
    assert obs["option_mask"].sum() == len(sample.options)
    assert (obs["question"] > 0).sum() > 3 and obs["preview"].std() > 0
    start, span = _bins_for(env, sample.evidence[0], info["duration"])
    obs2, reward, terminated, truncated, info = env.step(np.array([1, start, span, 0]))
    assert reward == 0.0 and not terminated and not truncated
    assert obs2["last_tool"][LAST_TOOL_KINDS.index("crop_video")] == 1.0
    assert obs2["frame_mask"].sum() >= 2 and obs2["frames"][:2].std() > 0
    lo, hi = sample.evidence[0]
    span_s = obs2["last_span"] * info["duration"]
    assert span_s[0] <= hi and span_s[1] >= lo  # the frames come from around the event
    assert obs2["budget"][0] < 1.0 and obs2["budget"][1] < 1.0
    np.testing.assert_array_equal(obs2["preview"], obs["preview"])  # the preview stays for the episode
    obs3, *_ = env.step(np.array([2, start, span, 0]))
    assert obs3["last_tool"][LAST_TOOL_KINDS.index("get_frame")] == 1.0 and obs3["frame_mask"].sum() == 3


def test_the_brief_changes_show_the_event_in_its_bins(env):
    """The event mark is a brief change: the strongest change of the video lies in an event's bins."""
    sample = next(
        s
        for s in env.samples
        if s.task in ("instrument_recognition", "phase_recognition")
        and _event_sized(s)
        and "during" in s.question
    )
    obs, info = env.reset(seed=0, options={"sample_id": sample.id})
    lo, hi = sample.evidence[0]
    bins = env.config.bins
    inside = [k for k in range(bins) if lo <= (k + 0.5) * info["duration"] / bins <= hi]
    assert inside
    strength = obs["changes"][..., 3].reshape(bins, -1).max(axis=1).astype(np.float32)
    assert strength[inside].max() >= 10 and strength[inside].max() > 3 * np.median(strength)
    k = inside[int(strength[inside].argmax())]
    cell = np.unravel_index(obs["changes"][k, ..., 3].argmax(), obs["changes"].shape[1:3])
    assert obs["changes"][k][cell][:3].max() > 0  # a strong change shows its colour


def test_brief_changes_find_a_mark_and_ignore_a_scene_switch():
    rng = np.random.default_rng(0)
    n, h, w = 30, 60, 80
    frames = np.full((n, h, w, 3), 100, dtype=np.uint8)
    frames += rng.integers(0, 6, size=frames.shape, dtype=np.uint8)  # noise
    frames[15:] = np.clip(frames[15:].astype(int) + 40, 0, 255).astype(np.uint8)  # a phase switch at 15
    frames[6:9, 12:18, 22:28] = (220, 20, 20)  # a red mark for 3 s in cell (1, 2) of a 6×8 grid
    times = np.arange(n, dtype=np.float64)
    out = brief_changes(frames, times, (6, 8))
    assert out.shape == (n, 6, 8, 4) and out.dtype == np.uint8
    strength = out[..., 3]
    assert (strength[6:9, 1, 2] > 50).all() and tuple(out[7, 1, 2, :3]) == (220, 20, 20)
    others = strength.copy()
    others[6:9, 1, 2] = 0
    assert others.max() < 10  # noise and the one-sided switch stay weak
    assert (out[..., :3][strength < 10] == 0).all()


def test_seeded_resets_are_deterministic_and_sample_choice_options_work(env):
    a, _ = env.reset(seed=3)
    first = env.current_sample.id
    b, _ = env.reset(seed=3)
    assert env.current_sample.id == first
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    env.reset(options={"sample_index": 1})
    assert env.current_sample.id == env.samples[1].id
    with pytest.raises(ConfigError):
        env.reset(options={"sample_id": "no-such-sample"})


def test_answer_letters_and_spans_in_the_text(env):
    env.reset(seed=0, options={"sample_id": env.samples[0].id})
    assert "<answer>C</answer>" in env.action_text(np.array([0, 5, 3, 2]))
    crop = env.action_text(np.array([1, env.config.bins - 1, env.config.max_span_bins - 1, 0]))
    assert '"crop_video"' in crop and f'"end_time": {env.current_sample.duration:g}'[:18] in crop
    t = (10 + 0.5) * env.current_sample.duration / env.config.bins
    assert f'"timestamp": {round(t, 3):g}' in env.action_text(np.array([2, 10, 5, 0]))  # the bin's middle
    with pytest.raises(ValueError):
        env.action_text(np.array([3, 0, 0, 0]))


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (np.array([0, 5, 3, 1, 0]), r"shape \(5,\)"),  # a length-5 action is not cut to 4
        (np.array([0, 5, 3]), r"shape \(3,\)"),
        (np.array([[0, 5, 3, 1]]), r"shape \(1, 4\)"),
        (np.array([1.0, 5.0, 3.0, 0.0]), "dtype float64"),  # float components are not truncated
        (np.array([1.7, 5.2, 3.0, 0.0]), "dtype float64"),
        ([1, 5.5, 3, 0], "dtype float64"),
        (np.array([True, False, False, True]), "dtype bool"),
        (np.array([0, 60, 0, 0]), "outside"),  # time bin == bins
        (np.array([0, -1, 0, 0]), "outside"),
        (np.array([0, 0, 8, 0]), "outside"),  # span == max_span_bins
        (np.array([0, 0, 0, 9]), "outside"),
        ("0 5 3 1", "shape"),
    ],
)
def test_invalid_actions_raise_a_clear_value_error(env, action, match):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    with pytest.raises(ValueError, match="numeric action"):
        env.action_text(action)


def test_integer_actions_of_any_integer_dtype_and_plain_lists_are_accepted(env):
    env.reset(seed=0, options={"sample_id": env.samples[0].id})
    want = env.action_text(np.array([1, 10, 2, 0]))
    for action in (
        [1, 10, 2, 0],
        (1, 10, 2, 0),
        np.array([1, 10, 2, 0], dtype=np.int32),
        np.array([1, 10, 2, 0], dtype=np.uint8),
        env.action_space.sample() * 0 + [1, 10, 2, 0],
    ):
        assert env.action_text(action) == want
    assert env.action_space.contains(env.action_space.sample())
    env.step(env.action_space.sample())  # what SB3 and action_space.sample() produce is valid


def test_running_out_of_budget_terminates_unless_configured_otherwise(suite_dir):
    for flag in (True, False):
        env = NumericClinVideoEnv(suite=suite_dir, config={"budget_terminates": flag})
        env.reset(seed=0)
        for _ in range(env.max_turns):
            _, reward, terminated, truncated, info = env.step(np.array([2, 3, 0, 0]))
        assert (terminated, truncated) == (flag, not flag) and reward == info["reward_parts"]["total"] == 0.0
        assert info.get("base_truncated", False) == flag
        env.close()


def test_config_validation(suite_dir):
    with pytest.raises(ConfigError):
        NumericConfig(bins=0)
    with pytest.raises(ConfigError):
        NumericConfig.from_any({"bogus": 1})
    with pytest.raises(ConfigError):
        NumericClinVideoEnv(suite=suite_dir, config={"bins": 4, "max_span_bins": 8})


def test_hash_words_is_stable_and_padded():
    ids = hash_words("Which instrument is in use during the bleeding?", 10, 4096)
    assert ids.shape == (10,) and (ids[:8] > 0).all() and (ids[8:] == 0).all()
    np.testing.assert_array_equal(ids, hash_words("which INSTRUMENT is in use during the bleeding", 10, 4096))
    assert hash_words("Hook", 2, 4096)[0] != hash_words("Grasper", 2, 4096)[0]
