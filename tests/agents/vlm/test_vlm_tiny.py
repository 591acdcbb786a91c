"""The offline tiny model: tokenizer, processor and checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest

from medscope_gym.agents.vlm.tiny import SPECIAL_TOKENS, build_tokenizer

torch = pytest.importorskip("torch")


def test_every_protocol_tag_is_one_token_and_bytes_round_trip():
    tok = build_tokenizer()
    for tag in SPECIAL_TOKENS:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    text = '<think>µ-scope at 87.5 s</think>\n<tool_call>{"name": "get_frame"}</tool_call>'
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=False) == text
    assert ids[0] == tok.convert_tokens_to_ids("<think>")
    assert ids[-1] == tok.convert_tokens_to_ids("</tool_call>")


def _inputs(processor):
    rng = np.random.default_rng(0)
    text = processor.apply_chat_template(
        [
            {
                "role": "user",
                "content": [{"type": "video"}, {"type": "image"}, {"type": "text", "text": "what?"}],
            }
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    from transformers.video_utils import VideoMetadata

    return processor(
        text=[text],
        videos=[rng.integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)],
        images=[rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)],
        videos_kwargs={
            "do_sample_frames": False,
            "video_metadata": [VideoMetadata(total_num_frames=6, fps=0.5)],
        },
        return_tensors="pt",
    )


def test_saved_and_reloaded_checkpoint_gives_identical_logits(tmp_path, tiny_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_model, build_processor

    fresh_processor = build_processor()
    fresh = build_model(fresh_processor.tokenizer, TinyModelConfig())  # same seed as the saved checkpoint
    processor = AutoProcessor.from_pretrained(tiny_dir)
    loaded = AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    batch = _inputs(processor)
    assert torch.equal(batch["input_ids"], _inputs(fresh_processor)["input_ids"])
    assert float(batch["second_per_grid_ts"][0]) == pytest.approx(2 / 0.5)  # real fps reaches the rope
    with torch.no_grad():
        a = fresh(**batch).logits
        b = loaded(**batch).logits
    assert torch.equal(a, b)
    # and a second save/load of the loaded model changes nothing either
    loaded.save_pretrained(tmp_path / "again")
    again = AutoModelForImageTextToText.from_pretrained(tmp_path / "again").eval()
    with torch.no_grad():
        assert torch.equal(again(**batch).logits, b)


def test_tiny_folder_carries_its_policy_config(tiny_dir):
    from medscope_gym.agents.vlm.policy import VLMPolicyConfig
    from medscope_gym.agents.vlm.tiny import TINY_SYSTEM_PROMPT

    cfg = VLMPolicyConfig.load(tiny_dir)
    assert cfg is not None and cfg.system_prompt == TINY_SYSTEM_PROMPT
    assert cfg.frames.max_pixels == 56 * 56


def test_protocol_words_are_merged_digits_stay_single_and_any_text_round_trips():
    tok = build_tokenizer()
    text = (
        '<think>The crop shows the relevant moment.</think>\n<tool_call>{"name": "crop_video", "arguments": '
    )
    text += '{"start_time": 27.5, "end_time": 31.0}}</tool_call>'
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) < len(text.encode()) / 2  # protocol words take few tokens
    pieces = tok.convert_ids_to_tokens(tok("1234.5", add_special_tokens=False)["input_ids"])
    assert pieces == ["1", "2", "3", "4", ".", "5"]  # numbers stay compositional
    for sample in (text, "ünïcødé 👍 \t\n  spaced", "crop_videoo 12e-3"):
        assert (
            tok.decode(tok(sample, add_special_tokens=False)["input_ids"], skip_special_tokens=False)
            == sample
        )
    bytes_only = build_tokenizer(vocab_size=0)
    assert len(bytes_only) == 256 + len(SPECIAL_TOKENS)
    plain = "crop 27.5 s ünï"
    assert len(bytes_only(plain, add_special_tokens=False)["input_ids"]) == len(plain.encode())


def test_the_vocabulary_corpus_holds_every_oracle_step():
    """The BPE merges are learned from whole reference episodes: crop, frame and answer turns alike."""
    from medscope_gym.agents.vlm.vocabulary import protocol_corpus

    corpus = protocol_corpus(num_procedures=1)
    for marker in (
        "The preview covers the whole",
        "I check the frame at",
        "the frames show",
        "That is option",
    ):
        assert any(marker in text for text in corpus), marker


def test_testbed_words_are_single_tokens():
    """The testbed's questions are in the corpus: its symbol and highlight words each take one token."""
    tok = build_tokenizer()
    for word in (" square", " triangle", " ring", " symbol", " highlighted", " centre"):
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word
