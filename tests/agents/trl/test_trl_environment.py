"""ClinVideoToolEnv without a model: reset/tool observations, the replayed reward, TRL's method contract."""

from __future__ import annotations

import inspect
import json

import gymnasium as gym
import pytest
from PIL import Image

from medscope_gym.agents.trl.chat_template import TURN_TEXT_KEY
from medscope_gym.agents.trl.environment import ClinVideoToolEnv, clinvideo_environment_factory, score_rollout
from medscope_gym.envs.clinvideo import ClinVideoEnv


class CountingEnv(gym.Wrapper):
    """Records every action the adapter steps the env with."""

    def __init__(self, env):
        super().__init__(env)
        self.actions: list[str] = []
        self.resets = 0

    def reset(self, **kwargs):
        self.resets += 1
        return self.env.reset(**kwargs)

    def step(self, action):
        self.actions.append(action)
        return self.env.step(action)


def _sample_with_trajectory(suite):
    return next(s for s in suite if s.split == "train" and s.trajectory)


def _assistant(text: str, exact: bool = True) -> dict:
    message = {"role": "assistant", "content": text}
    if exact:
        message[TURN_TEXT_KEY] = text
    return message


def _direct_reward(suite, sample_id: str, turns: list[str], **env_kwargs) -> dict:
    """The env's reward for these turns, stepping ClinVideoEnv directly (no adapter)."""
    env = ClinVideoEnv(suite, **env_kwargs)
    env.reset(options={"sample_id": sample_id})
    info = {}
    for text in turns:
        _, _, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            break
    return info["reward_parts"]


def test_only_the_tools_are_public_and_have_schemas(trl_suite):
    get_json_schema = pytest.importorskip("transformers.utils").get_json_schema  # TRL builds schemas so

    public = {
        name
        for name, _ in inspect.getmembers(ClinVideoToolEnv, predicate=inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == {"reset", "crop_video", "get_frame"}  # TRL turns every public method into a tool
    tool_env = clinvideo_environment_factory(trl_suite)()
    crop = get_json_schema(tool_env.crop_video)["function"]
    frame = get_json_schema(tool_env.get_frame)["function"]
    assert crop["name"] == "crop_video" and crop["parameters"]["required"] == ["start_time", "end_time"]
    assert frame["name"] == "get_frame" and frame["parameters"]["required"] == ["timestamp"]


def test_reset_shows_the_env_observation_with_labelled_preview_images(trl_suite, small_frames):
    sample = _sample_with_trajectory(trl_suite)
    tool_env = clinvideo_environment_factory(trl_suite, frames=small_frames)()
    blocks = tool_env.reset(sample_id=sample.id, prompt=[], question=sample.question)
    obs, _ = ClinVideoEnv(trl_suite, split="train").reset(options={"sample_id": sample.id})
    assert blocks[-1] == {"type": "text", "text": obs["text"]}
    images = [b["image"] for b in blocks if b["type"] == "image"]
    labels = [b["text"] for b in blocks[:-1] if b["type"] == "text"]
    assert len(images) == len(labels) == small_frames.max_preview_frames
    assert all(isinstance(im, Image.Image) and im.width * im.height <= 56 * 56 for im in images)
    times = obs["video_times"].ravel()
    assert (
        labels[0] == f"at {round(float(times[0]), 3)} s"
        and labels[-1] == f"at {round(float(times[-1]), 3)} s"
    )
    assert [b["type"] for b in blocks[:2]] == ["image", "text"]  # each time follows its frame
    assert tool_env.sample_id == sample.id


def test_tools_step_the_env_and_return_its_observation(trl_suite, small_frames):
    sample = _sample_with_trajectory(trl_suite)
    counting = CountingEnv(ClinVideoEnv(trl_suite, split="train"))
    tool_env = ClinVideoToolEnv(counting, modality="text", frames=small_frames)
    tool_env.reset(sample_id=sample.id)
    crop = tool_env.crop_video(10, 20)
    frame = tool_env.get_frame(12.5)
    foreign = tool_env.get_frame(3.0, video_path="/etc/passwd")
    assert [
        json.loads(a.removeprefix("<tool_call>").removesuffix("</tool_call>")) for a in counting.actions
    ] == [
        {"name": "crop_video", "arguments": {"start_time": 10, "end_time": 20}},
        {"name": "get_frame", "arguments": {"timestamp": 12.5}},
        {"name": "get_frame", "arguments": {"timestamp": 3.0, "video_path": "/etc/passwd"}},
    ]
    assert crop.startswith("crop_video [10.0 s, 20.0 s]: 10 frames")
    assert "Frames returned: 10; 4 of them, evenly spaced, at: 10.50, " in crop
    assert (
        frame.startswith("get_frame 12.50 s: 3 frames")
        and "Full-resolution frames returned: 3; 2 of" in frame
    )
    assert foreign.startswith("Error: video_path may only name")  # the env's error, not an exception


def test_restate_question_opens_each_tool_result_with_the_question(trl_suite, small_frames):
    """``FrameConfig.restate_question``: tool results begin with the reset text less its preview line,
    as the VLM policy's encoder shows them; the reset itself is unchanged."""
    import dataclasses

    sample = _sample_with_trajectory(trl_suite)
    frames = dataclasses.replace(small_frames, restate_question=True)
    tool_env = ClinVideoToolEnv(ClinVideoEnv(trl_suite, split="train"), modality="text", frames=frames)
    reset = tool_env.reset(sample_id=sample.id)
    obs, _ = ClinVideoEnv(trl_suite, split="train").reset(options={"sample_id": sample.id})
    asked = obs["text"].rsplit("\n", 1)[0]  # the preview's line is the reset text's last
    assert reset.startswith(obs["text"]) and f"Question: {sample.question}" in asked
    crop = tool_env.crop_video(10, 20)
    assert crop.startswith(f"{asked}\ncrop_video [10.0 s, 20.0 s]: 10 frames")
    assert "Preview of the whole video" not in crop


def test_live_episode_budget_then_refusal_without_stepping(trl_suite):
    sample = _sample_with_trajectory(trl_suite)
    counting = CountingEnv(ClinVideoEnv(trl_suite, split="train", max_turns=2))
    tool_env = ClinVideoToolEnv(counting, modality="text")
    tool_env.reset(sample_id=sample.id)
    tool_env.crop_video(1, 5)
    last = tool_env.crop_video(5, 9)
    assert "budget exhausted" in last
    refused = tool_env.get_frame(3)
    assert refused.startswith("Error: the episode is over") and len(counting.actions) == 2


def test_reference_trajectory_earns_exactly_the_env_reward(trl_suite, small_frames):
    sample = _sample_with_trajectory(trl_suite)
    actions = [step["action"] for step in sample.trajectory]
    tool_env = clinvideo_environment_factory(trl_suite, frames=small_frames)()
    tool_env.reset(sample_id=sample.id)
    completion = []
    for step in sample.trajectory:
        completion.append(_assistant(step["action"]))
        if "tool" in step:  # what TRL does for a parsed tool call
            response = getattr(tool_env, step["tool"])(**step["arguments"])
            completion.append({"role": "tool", "name": step["tool"], "content": response})
    result = score_rollout(tool_env, completion)
    assert result.reward_parts == _direct_reward(trl_suite, sample.id, actions)
    assert result.reward_parts["format"] == 1.0 and result.reward_parts["accuracy"] == 1.0
    assert result.turns == actions and result.empty_turns == 0 and result.reconstructed_turns == 0
    assert result.live_matches_replay and len(result.live_tool_calls) == len(actions) - 1
    assert tool_env.last_result is result and score_rollout(tool_env, completion) is result  # cached
    tool_env.reset(sample_id=sample.id)
    assert tool_env.last_result is None


def test_format_is_judged_on_the_exact_text(trl_suite):
    """A tool call before its <think> breaks the format; a rebuilt turn (content + call) would hide that."""
    sample = _sample_with_trajectory(trl_suite)
    lo, hi = sample.evidence[0]
    call = json.dumps({"name": "crop_video", "arguments": {"start_time": lo, "end_time": hi}})
    turns = [
        f"<tool_call>{call}</tool_call><think>look</think>",
        f"<think>ok</think><answer>{sample.answer}</answer>",
    ]
    tool_env = clinvideo_environment_factory(trl_suite)()
    tool_env.reset(sample_id=sample.id)
    exact = score_rollout(tool_env, [_assistant(t) for t in turns])
    assert exact.reward_parts == _direct_reward(trl_suite, sample.id, turns)
    assert exact.reward_parts["format"] == 0.0 and exact.reward_parts["crop"] == 2.0

    tool_env.reset(sample_id=sample.id)
    parsed = {
        "role": "assistant",
        "content": "<think>look</think>",
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "crop_video", "arguments": {"start_time": lo, "end_time": hi}},
            }
        ],
    }
    rebuilt = score_rollout(tool_env, [parsed, _assistant(turns[1], exact=False)])
    assert rebuilt.reconstructed_turns == 2 and rebuilt.reward_parts["format"] == 1.0


def test_rollout_without_answer_is_closed_by_the_turn_budget(trl_suite):
    sample = _sample_with_trajectory(trl_suite)
    counting = CountingEnv(ClinVideoEnv(trl_suite, split="train", max_turns=4))
    tool_env = ClinVideoToolEnv(counting)
    tool_env.reset(sample_id=sample.id)
    result = score_rollout(tool_env, [_assistant("<think>hmm</think> no action")])
    assert result.empty_turns == 3 and counting.actions[-3:] == ["", "", ""]
    assert result.info["episode_summary"]["truncated"] and result.reward_parts["accuracy"] == 0.0
    assert result.reward_parts["format"] == 0.0 and counting.resets == 2  # the rollout's reset + the replay's


def test_reset_needs_a_sample_id(trl_suite):
    tool_env = clinvideo_environment_factory(trl_suite)()
    with pytest.raises(ValueError, match="sample_id"):
        tool_env.reset(prompt=[{"role": "user", "content": ""}])
    with pytest.raises(ValueError, match="modality"):
        ClinVideoToolEnv(tool_env.env, modality="video")
