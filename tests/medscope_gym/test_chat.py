import base64
import io
import json

import gymnasium as gym
import numpy as np
from PIL import Image

import medscope_gym  # noqa: F401 - registers the env ids
from medscope_gym.chat import Transcript, frame_label, frames_fps, time_text
from medscope_gym.protocol import SYSTEM_PROMPT, format_tool_call


def _episode_transcript():
    env = gym.make("MedScope/SynthSurg-v0")
    obs, _ = env.reset(seed=0)
    t = Transcript()
    t.add_observation(obs)
    for action in (
        format_tool_call("crop_video", {"start_time": 10, "end_time": 14}, think="a"),
        format_tool_call("get_frame", {"timestamp": 12}, think="b"),
    ):
        t.add_action(action)
        obs, *_ = env.step(action)
        t.add_observation(obs)
    return t


def test_frames_fps():
    assert frames_fps(np.array([10.5, 11.5, 12.5])) == 1.0
    assert frames_fps(np.array([3.0])) == 1.0


def test_hf_messages_blocks():
    msgs = _episode_transcript().to_hf_messages()
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"][0]["text"] == SYSTEM_PROMPT
    first = msgs[1]["content"]
    video = next(b for b in first if b["type"] == "video")
    assert video["video"].ndim == 4 and video["video"].dtype == np.uint8
    assert len(video["timestamps"]) == len(video["video"]) and video["fps"] > 0
    assert "Question:" in first[-1]["text"]
    crop = next(b for b in msgs[3]["content"] if b["type"] == "video")
    assert all(10 <= t <= 14 for t in crop["timestamps"])
    assert msgs[3]["content"][-1]["text"].startswith("<tool_response>")
    images = [b for b in msgs[5]["content"] if b["type"] == "image"]
    assert len(images) == 3 and images[0]["image"].shape[-1] == 3
    assert msgs[2]["content"][0]["text"].startswith("<think>a</think>")


def test_openai_messages_are_jpeg_data_urls():
    msgs = _episode_transcript().to_openai_messages(max_video_frames=8)
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}
    urls = [b["image_url"]["url"] for b in msgs[1]["content"] if b["type"] == "image_url"]
    assert 1 <= len(urls) <= 8
    img = Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1])))
    assert img.format == "JPEG"
    assert sum(b["type"] == "image_url" for b in msgs[5]["content"]) == 3
    assert isinstance(msgs[2]["content"], str)


def test_a_frame_label_spells_its_time_as_a_tool_call_does():
    # a model that copies a label's time into a crop call must not have to reformat it
    for t in (0.5, 16.5, 102.0, 87.4833333, 240.25):
        call = json.loads(
            format_tool_call("get_frame", {"timestamp": round(t, 3)}).split("<tool_call>")[1][:-12]
        )
        assert frame_label(t) == f"at {time_text(t)} s"
        assert time_text(t) == json.dumps(call["arguments"]["timestamp"])
    assert (
        frame_label(16.5) == "at 16.5 s" and time_text(102) == "102.0" and time_text(87.4833333) == "87.483"
    )
