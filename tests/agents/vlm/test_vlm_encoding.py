"""Template deltas: the chunks of an episode are exactly the tokens of the whole conversation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def oracle_episode(suite, tiny_dir):
    """One oracle episode encoded chunk by chunk: (encoder, ctx, chunks, action ids)."""
    from transformers import AutoProcessor

    from medscope_gym.agents.scripted import OraclePolicy
    from medscope_gym.agents.vlm.encoding import ChatEncoder, FrameConfig
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    processor = AutoProcessor.from_pretrained(tiny_dir)
    encoder = ChatEncoder(
        processor,
        FrameConfig(max_pixels=56 * 56, max_preview_frames=9, max_crop_frames=5),
        system_prompt="Be brief.",
    )
    env = ClinVideoEnv(suite)
    oracle = OraclePolicy()
    obs, info = env.reset(options={"sample_index": 0})
    oracle.begin(0, obs, info, env.current_sample)
    ctx = encoder.start()
    chunks, actions = [], []
    while True:
        chunks.append(encoder.encode_observation(ctx, obs))
        text = oracle.act([0], [obs], [info])[0]
        actions.append(encoder.encode_reference_action(text))
        encoder.add_action(ctx, text)
        obs, _, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            break
    env.close()
    return encoder, ctx, chunks, actions


def test_chunks_concatenate_to_the_one_shot_encoding(oracle_episode):
    encoder, ctx, chunks, actions = oracle_episode
    incremental = [t for chunk, act in zip(chunks, actions) for t in (*chunk.token_ids, *act)]
    videos = [c.media.video for c in chunks if c.media.video is not None]
    images = [im for c in chunks if c.media.images is not None for im in c.media.images]
    assert len(videos) == 2 and len(images) == 3  # preview + crop, then the get_frame frames
    from transformers.video_utils import VideoMetadata

    metadata = [
        VideoMetadata(total_num_frames=len(c.media.video), fps=c.media.video_fps)
        for c in chunks
        if c.media.video is not None
    ]
    whole = encoder.processor(
        text=[ctx.rendered],
        videos=videos,
        images=images,
        return_tensors="pt",
        videos_kwargs={"do_sample_frames": False, "video_metadata": metadata},
    )
    assert whole["input_ids"][0].tolist() == incremental
    pixel_chunks = [c.vision["pixel_values_videos"] for c in chunks if "pixel_values_videos" in c.vision]
    assert torch.equal(torch.cat(pixel_chunks), whole["pixel_values_videos"])
    second = torch.cat([c.vision["second_per_grid_ts"] for c in chunks if "second_per_grid_ts" in c.vision])
    assert torch.allclose(second, torch.as_tensor(whole["second_per_grid_ts"], dtype=torch.float32))


def test_frames_are_capped_and_keep_their_real_times(oracle_episode):
    _, _, chunks, _ = oracle_episode
    preview = chunks[0].media
    assert len(preview.video) == 9 and preview.video.shape[1] * preview.video.shape[2] <= 56 * 56
    assert np.all(np.diff(preview.video_times) > 0)
    assert preview.video_times[0] < 2.0 and preview.video_times[-1] > 30.0  # spans the whole video
    assert len(chunks[1].media.video) <= 5
    assert chunks[2].media.images is not None and len(chunks[2].media.images) == 3


def test_template_that_rewrites_history_is_refused(tiny_dir):
    from medscope_gym.agents.vlm.encoding import ChatEncoder, TemplateError
    from medscope_gym.agents.vlm.tiny import CHAT_TEMPLATE, build_processor

    processor = build_processor()
    # marks the last message: re-rendering after a new message changes an earlier one
    processor.chat_template = CHAT_TEMPLATE.replace(
        "'<|im_end|>\\n'", "('<|im_end|>\\n' if not loop.last else '!')"
    )
    encoder = ChatEncoder(processor, system_prompt="s")
    ctx = encoder.start()
    obs = {
        "text": "question",
        "video": np.zeros((0, 1, 1, 3), np.uint8),
        "video_times": np.zeros((0, 1)),
        "images": np.zeros((0, 1, 1, 3), np.uint8),
        "image_times": np.zeros((0, 1)),
    }
    encoder.encode_observation(ctx, obs)
    encoder.add_action(ctx, "<think>x</think><answer>A</answer>")
    with pytest.raises(TemplateError):
        encoder.encode_observation(ctx, dict(obs, text="tool says"))


def test_preview_as_timestamped_frames_without_the_letterbox(suite, tiny_dir):
    """``preview_as_frames``: the preview becomes images, each followed by its time in text; with
    ``max_preview_pixels`` the env's black letterbox is trimmed before resizing (no pixel is lost)."""
    from transformers import AutoProcessor

    from medscope_gym.agents.vlm.encoding import ChatEncoder, FrameConfig
    from medscope_gym.envs.clinvideo import ClinVideoEnv

    env = ClinVideoEnv(suite)
    obs, _ = env.reset(options={"sample_index": 0})
    env.close()
    boxed = np.zeros((4, 40, 40, 3), np.uint8)
    boxed[:, 10:30, 6:34] = 7  # a 20x28 picture letterboxed on a 40x40 canvas
    obs = {**obs, "video": boxed, "video_times": np.array([[0.5], [2.5], [4.5], [6.5]])}
    frames = FrameConfig(max_pixels=56 * 56, max_preview_pixels=28 * 28, preview_as_frames=True)
    encoder = ChatEncoder(AutoProcessor.from_pretrained(tiny_dir), frames, system_prompt="Be brief.")
    ctx = encoder.start()
    chunk = encoder.encode_observation(ctx, obs)
    assert chunk.media.video is None and chunk.media.images.shape == (4, 20, 28, 3)
    assert np.all(chunk.media.images == 7)
    assert chunk.media.image_times.tolist() == [0.5, 2.5, 4.5, 6.5]
    rendered = ctx.rendered
    stamps = [rendered.index(f"<|vision_end|>\nat {t} s") for t in (0.5, 2.5, 4.5, 6.5)]
    assert stamps == sorted(stamps) and rendered.count("<|image_pad|>") == 4  # each time after its frame
    # without the option the same observation stays one video at max_pixels
    plain = ChatEncoder(AutoProcessor.from_pretrained(tiny_dir), FrameConfig(max_pixels=56 * 56))
    media = plain.encode_observation(plain.start(), obs).media
    assert media.images is None and media.video.shape[1:3] == (40, 40)
    # a crop stays one video unless crops_as_frames: then its frames too, thinned to max_crop_frames
    crop = {**obs, "text": "crop", "video": np.full((6, 40, 40, 3), 9, np.uint8)}
    crop["video_times"] = np.arange(6, dtype=np.float64).reshape(6, 1) + 10.0
    for as_frames in (False, True):
        cfg = FrameConfig(max_pixels=56 * 56, max_crop_frames=3, crops_as_frames=as_frames)
        enc = ChatEncoder(AutoProcessor.from_pretrained(tiny_dir), cfg)
        ctx = enc.start()
        enc.encode_observation(ctx, obs)
        enc.add_action(ctx, '<tool_call>{"name": "crop_video"}</tool_call>')
        media = enc.encode_observation(ctx, crop).media
        if as_frames:
            assert media.video is None and media.image_times.tolist() == [10.0, 12.0, 15.0]
            assert ctx.rendered.count("<|image_pad|>") == 3 and "<|vision_end|>\nat 15.0 s" in ctx.rendered
        else:
            assert media.images is None and len(media.video) == 3


def test_restate_question_opens_every_later_tool_response_with_the_question(suite, tiny_dir):
    """``restate_question``: each tool response after the reset begins with the reset text less its
    preview line; the reset turn and the chunk's own ``text`` (the env's) are left as they were."""
    from transformers import AutoProcessor

    from medscope_gym.agents.vlm.encoding import ChatEncoder, FrameConfig
    from medscope_gym.envs.clinvideo import ClinVideoEnv
    from medscope_gym.prompts import question_text

    env = ClinVideoEnv(suite)
    obs, _ = env.reset(options={"sample_index": 0})
    sample, duration = env.current_sample, env._ep.video.duration
    env.close()
    asked = question_text(sample, duration)
    assert obs["text"].startswith(asked) and "Preview" in obs["text"].split("\n")[-1]
    processor = AutoProcessor.from_pretrained(tiny_dir)
    rendered = {}
    for restate in (False, True):
        enc = ChatEncoder(processor, FrameConfig(max_pixels=56 * 56, restate_question=restate))
        ctx = enc.start()
        enc.encode_observation(ctx, obs)
        for k in range(2):
            enc.add_action(ctx, "<think>x</think><tool_call>{}</tool_call>")
            chunk = enc.encode_observation(ctx, {"text": f"Error: call {k} was bad"})
            assert chunk.text == f"Error: call {k} was bad"
        rendered[restate] = ctx.rendered
    plain, restated = rendered[False], rendered[True]
    assert plain.count(f"Question: {sample.question}") == 1
    assert restated.count(f"Question: {sample.question}") == 3
    for k in range(2):
        assert f"<tool_response>\n{asked}\nError: call {k} was bad\n</tool_response>" in restated
        assert f"<tool_response>\nError: call {k} was bad\n</tool_response>" in plain
    assert restated.count("Preview of the whole video") == 1  # the preview line is not restated
