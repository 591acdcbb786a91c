"""The tiny processor made ready for TRL's tool loop: TRL's own checks, and parsing that keeps the text."""

from __future__ import annotations

import pytest

pytest.importorskip("trl", reason="the TRL adapter needs the [trl] extra (pip install 'medscope-gym[trl]')")

from medscope_gym.agents.trl.chat_template import TOOL_CHAT_TEMPLATE, TURN_TEXT_KEY, prepare_processing_class  # noqa: E402


@pytest.fixture
def processor(tiny_dir):
    from transformers import AutoProcessor

    return prepare_processing_class(AutoProcessor.from_pretrained(tiny_dir))


def test_trl_accepts_the_prepared_template(tiny_dir, processor):
    from transformers import AutoProcessor
    from trl.chat_template_utils import is_chat_template_prefix_preserving, supports_tool_calling

    assert not supports_tool_calling(AutoProcessor.from_pretrained(tiny_dir))  # the tiny template alone
    assert supports_tool_calling(processor) and is_chat_template_prefix_preserving(processor)
    assert processor.chat_template == TOOL_CHAT_TEMPLATE
    assert prepare_processing_class(processor) is processor  # idempotent


def test_template_renders_calls_and_responses_in_the_env_protocol(processor):
    call = {
        "type": "function",
        "function": {"name": "crop_video", "arguments": {"start_time": 1, "end_time": 2}},
    }
    text = processor.apply_chat_template(
        [
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "<think>a</think>"}],
                "tool_calls": [call],
            },
            {"role": "tool", "name": "crop_video", "content": [{"type": "text", "text": "frames"}]},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == (
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>a</think>\n"
        '<tool_call>{"name": "crop_video", "arguments": {"start_time": 1, "end_time": 2}}</tool_call>'
        "<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nframes\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )


def _parse(processor, text: str) -> dict:
    from trl.chat_template_utils import parse_response

    tok = processor.tokenizer
    prefix = tok("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)[
        "input_ids"
    ]
    return parse_response(tok, tok(text, add_special_tokens=False)["input_ids"], prefix=prefix)


def test_parsed_turns_carry_their_exact_text(processor):
    turn = '<think>a b</think>\n<tool_call>{"name": "get_frame", "arguments": {"timestamp": 4.5}}</tool_call>'
    parsed = _parse(processor, turn)
    assert parsed["tool_calls"] == [
        {"type": "function", "function": {"name": "get_frame", "arguments": {"timestamp": 4.5}}}
    ]
    assert parsed[TURN_TEXT_KEY] == turn
    answer = _parse(processor, "<think>x</think><answer>B</answer><|im_end|>")
    assert answer[TURN_TEXT_KEY] == "<think>x</think><answer>B</answer>" and not answer.get("tool_calls")


@pytest.mark.parametrize(
    "turn",
    [
        "<think>x</think><tool_call>{'name': 'crop_video'}</tool_call>",  # not JSON for TRL
        '<think>x</think><tool_call>["crop_video"]</tool_call>',  # JSON, but not a call
        '<think>x</think><tool_call>{"name": 3}</tool_call>',  # name not a string
    ],
)
def test_unparsable_calls_keep_their_tags_and_run_no_tool(processor, turn):
    parsed = _parse(processor, turn)
    assert not parsed.get("tool_calls")
    assert parsed[TURN_TEXT_KEY] == turn and parsed["content"] == turn  # TRL's fallback would drop the tags
