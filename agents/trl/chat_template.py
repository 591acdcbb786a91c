"""Make a processor (or tokenizer) usable by TRL's tool-calling loop, in the env's text protocol.

TRL's ``GRPOTrainer`` with tools needs two things from the processing class:

- a chat template that renders a full tool exchange (an assistant message with ``tool_calls``, then a
  ``tool`` message). The tiny checkpoint's template (:data:`medscope_gym.agents.vlm.tiny.CHAT_TEMPLATE`)
  renders
  message contents only, so :data:`TOOL_CHAT_TEMPLATE` extends it: assistant tool calls become
  ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` (the env's Hermes/Qwen protocol,
  docs/protocol.md) and each tool result becomes a user turn ``<tool_response>...</tool_response>``, as in
  :mod:`medscope_gym.chat` and in Qwen2.5-VL's own template;
- a ``response_template`` on the tokenizer, which TRL uses (through ``tokenizer.parse_response``) to find
  the tool calls in a sampled turn. :data:`RESPONSE_TEMPLATE` reads ``<tool_call>`` JSON blocks.

TRL keeps only the *parsed* turn (content and tool calls). The env's format reward needs the exact text
(tag order, stray text), so :func:`prepare_processing_class` also makes that tokenizer instance attach
the decoded text of every parsed turn to the message under :data:`TURN_TEXT_KEY`; the reward replays
those texts through the env (see :mod:`medscope_gym.agents.trl.environment`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RESPONSE_TEMPLATE",
    "TOOL_CHAT_TEMPLATE",
    "TURN_TEXT_KEY",
    "prepare_processing_class",
]

#: Key of a parsed assistant message that holds the turn's exact decoded text (set by
#: :func:`prepare_processing_class`; chat templates ignore it).
TURN_TEXT_KEY = "medscope_turn_text"

#: Qwen-style chat template with tool calls: the tiny template plus assistant ``tool_calls`` and ``tool``
#: messages. ``tools`` schemas are not rendered: the system prompt describes the tools (the protocol's
#: SYSTEM_PROMPT lists their schemas; the tiny model's short prompt spells out the call format).
TOOL_CHAT_TEMPLATE = (
    "{%- macro render_content(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content -%}{%- for block in content -%}"
    "{%- if not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{%- if block['type'] == 'text' -%}{{- block['text'] -}}"
    "{%- elif block['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif block['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'tool' -%}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' -}}{{- render_content(message['content']) -}}"
    "{{- '\\n</tool_response><|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}{{- render_content(message['content']) -}}"
    "{%- for call in message.get('tool_calls') or [] -%}"
    "{%- set fn = call['function'] if call['function'] is defined else call -%}"
    "{%- set args = fn['arguments'] if fn['arguments'] is defined else {} -%}"
    "{%- if message['content'] or not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<tool_call>{\"name\": ' + (fn['name'] | tojson) + ', \"arguments\": ' -}}"
    "{%- if args is string -%}{{- args -}}{%- else -%}{{- args | tojson -}}{%- endif -%}"
    "{{- '}</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

#: transformers response template: ``<tool_call>`` JSON blocks become ``tool_calls``; the rest is content.
RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}


def prepare_processing_class(processing_class: Any, *, chat_template: str | None = "auto") -> Any:
    """Ready a processor or tokenizer for ``GRPOTrainer(environment_factory=...)``; returns it.

    Args:
        processing_class: a ``ProcessorMixin`` (VLM) or a tokenizer. Modified in place.
        chat_template: ``"auto"`` installs :data:`TOOL_CHAT_TEMPLATE` only when the current template cannot
            render a tool exchange (TRL's own check); ``None`` keeps the current one; any other string is
            installed as the template.

    The tokenizer gets :data:`RESPONSE_TEMPLATE` (unless it already has a ``response_template``) and, on
    this instance only, a ``parse_response`` that adds the exact turn text under :data:`TURN_TEXT_KEY` and
    never raises: text whose tool calls cannot be parsed becomes a plain turn with its special tokens kept
    (TRL's own fallback drops them), so the env sees what the model wrote and answers with its error.
    """
    from trl.chat_template_utils import supports_tool_calling

    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    if chat_template == "auto":
        if not supports_tool_calling(processing_class):
            _set_template(processing_class, tokenizer, TOOL_CHAT_TEMPLATE)
    elif chat_template is not None:
        _set_template(processing_class, tokenizer, chat_template)
    if getattr(tokenizer, "response_template", None) is None:
        tokenizer.response_template = RESPONSE_TEMPLATE
    if not getattr(tokenizer.parse_response, "_medscope_turn_text", False):
        tokenizer.parse_response = _text_keeping_parser(tokenizer)
    return processing_class


def _set_template(processing_class: Any, tokenizer: Any, template: str) -> None:
    processing_class.chat_template = template
    if tokenizer is not processing_class:
        tokenizer.chat_template = template


def _text_keeping_parser(tokenizer: Any):
    """``tokenizer.parse_response`` that also returns the turn's decoded text and never raises."""
    parse = tokenizer.parse_response  # the class's method, bound to this instance
    end_tokens = [t for t in {tokenizer.eos_token, tokenizer.pad_token} if t]

    def parse_response(response, schema=None, **kwargs):
        seq = response.tolist() if hasattr(response, "tolist") else response  # tensor / array of ids
        ids = isinstance(seq, (list, tuple)) and all(isinstance(t, int) for t in seq)
        single = isinstance(seq, str) or ids
        if not single:  # a batch: not how TRL calls it; plain behaviour
            return parse(response, schema, **kwargs)
        text = _strip_end_tokens(seq if isinstance(seq, str) else tokenizer.decode(list(seq)), end_tokens)
        try:
            message = parse(response, schema, **kwargs)
        except (ValueError, TypeError):
            message = None
        if not isinstance(message, dict) or not _valid_tool_calls(message.get("tool_calls")):
            message = {"role": "assistant", "content": text}
        message[TURN_TEXT_KEY] = text
        return message

    parse_response._medscope_turn_text = True  # type: ignore[attr-defined]
    return parse_response


def _strip_end_tokens(text: str, end_tokens: list[str]) -> str:
    """Drop trailing end-of-turn / padding tokens: they close the turn, they are not part of the action."""
    stripped = True
    while stripped:
        stripped = False
        for token in end_tokens:
            if text.endswith(token):
                text, stripped = text[: -len(token)], True
    return text


def _valid_tool_calls(calls: Any) -> bool:
    """Whether TRL can execute these calls: each ``{"function": {"name": str, "arguments": dict}}``."""
    if calls is None:
        return True
    if not isinstance(calls, list):
        return False
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            return False
        if fn.get("arguments") is None:
            fn["arguments"] = {}
        if not isinstance(fn["arguments"], dict):
            return False
    return True
