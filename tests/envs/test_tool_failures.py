"""A video that fails while a tool reads it: an error observation for the agent, never an exception."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.errors import VideoError
from medscope_gym.protocol import format_answer, format_tool_call
from medscope_gym.video import PyAVVideo


def _call(name, **arguments):
    return format_tool_call(name, arguments, think="look")


def test_a_decode_time_out_in_get_frame_is_an_error_observation_and_the_reader_reopens(builtin_suite):
    env = ClinVideoEnv(builtin_suite, frame_store=None, max_tool_calls=3)
    env.reset(options={"sample_index": 0})
    video = env._ep.video
    assert isinstance(video, PyAVVideo)
    video.read([1])
    video._guard.limit_s = 0.2
    real = video._decode_sorted
    video._decode_sorted = lambda indices: time.sleep(2.0)  # a hung decoder
    name = Path(str(env.suite.video_path(env.current_sample))).name
    with pytest.warns(RuntimeWarning, match=rf"get_frame on sample .*{name}.*did not finish"):
        obs, reward, terminated, truncated, info = env.step(_call("get_frame", timestamp=2.0))
    assert obs["text"].startswith("Error: get_frame failed: the video could not be decoded")
    assert "timed out" in obs["text"] and "another call" in obs["text"]
    assert obs["images"].shape[0] == 0 and reward == 0.0 and not terminated and not truncated
    entry = info["tool_log"][-1]
    assert entry["ok"] is False and entry["video_error"] is True and "did not finish" in entry["error"]
    assert info["tool_calls"] == 0  # a failed call uses no budget

    del video._decode_sorted  # the decoder works again: the next call is served by a fresh reader
    assert video._decode_sorted == real
    obs, *_, info = env.step(_call("get_frame", timestamp=2.0))
    assert info["tool_log"][-1]["ok"] is True and obs["images"].shape[0] == 3
    *_, terminated, _, info = env.step(format_answer("A", think="done"))
    assert terminated and info["format"]["ok"] is False  # the failed turn costs the format reward
    assert "1 of them a tool call the video failed to decode" in info["format"]["reason"]
    env.close()


@pytest.mark.parametrize("tool", ["crop_video", "get_frame"])
def test_a_corrupt_stretch_is_an_error_observation_with_the_frame_store(builtin_suite, monkeypatch, tool):
    env = ClinVideoEnv(builtin_suite)
    env.reset(options={"sample_index": 1})
    video = env._ep.video

    def corrupt(*args, **kwargs):
        raise VideoError(f"video {video.path!r}: decoding frame(s) failed: Invalid data found")

    monkeypatch.setattr(video, "frames", corrupt)
    args = {"start_time": 1.0, "end_time": 5.0} if tool == "crop_video" else {"timestamp": 1.0}
    with pytest.warns(RuntimeWarning, match=Path(video.path).name):
        obs, reward, terminated, truncated, info = env.step(_call(tool, **args))
    assert obs["text"].startswith(f"Error: {tool} failed") and "a decoding error" in obs["text"]
    assert info["tool_log"][-1]["video_error"] is True and "Invalid data" in info["tool_log"][-1]["error"]
    assert not terminated and not truncated
    env.close()


def test_a_vector_env_keeps_running_through_a_video_failure(builtin_suite):
    envs = gym.vector.SyncVectorEnv([lambda: ClinVideoEnv(builtin_suite) for _ in range(2)])
    envs.reset(seed=0)

    def corrupt(*args, **kwargs):
        raise VideoError("video 'x.mp4': decoding frame(s) failed")

    envs.envs[0].unwrapped._ep.video.frames = corrupt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        obs, reward, terminated, truncated, infos = envs.step((_call("get_frame", timestamp=1.0),) * 2)
    assert obs["text"][0].startswith("Error: get_frame failed") and not obs["text"][1].startswith("Error")
    assert not terminated.any() and not truncated.any()
    envs.close()
