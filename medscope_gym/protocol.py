"""The text protocol between an agent and the environment (Qwen2.5 / Hermes style).

One assistant turn is raw text such as::

    <think>the incision happens early</think>
    <tool_call>{"name": "crop_video", "arguments": {"start_time": 60, "end_time": 90}}</tool_call>

:func:`parse_turn` turns that text into an executable action. It is deliberately split in two verdicts:
the *action* is extracted leniently whenever it is unambiguous (so a policy that forgets ``<think>`` can
still act and learn), while ``format_ok`` records the strict per-turn format that the format reward
depends on. Malformed text never raises: it becomes ``kind="error"`` with a message written for the agent,
because the environment shows that message as the next observation and the agent may recover.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "MAX_ACTION_CHARS",
    "MAX_ANSWER_CHARS",
    "SYSTEM_PROMPT",
    "TOOL_NAMES",
    "FormatCheck",
    "ParsedTurn",
    "ToolCall",
    "check_trajectory_format",
    "format_answer",
    "format_tool_call",
    "parse_turn",
    "tool_schemas",
]

TOOL_NAMES: tuple[str, ...] = ("crop_video", "get_frame")
#: Longest accepted assistant turn; longer text is rejected before any parsing (bounded work per step).
MAX_ACTION_CHARS = 32_768
#: Answers of this many characters or more earn no accuracy and no format reward (anti judge-hacking).
MAX_ANSWER_CHARS = 1000

_TAGS = ("think", "tool_call", "answer")
_TAG_RE = re.compile(r"<(/?)(think|tool_call|answer)>")
_EXPECTED_CALL = (
    '<tool_call>{"name": "crop_video", "arguments": {"start_time": 60, "end_time": 90}}</tool_call>'
)
_EXPECTED_TURN = f"<think>your reasoning</think> followed by either {_EXPECTED_CALL} or <answer>B</answer>"


@dataclass(frozen=True)
class ToolCall:
    """A tool invocation as the agent wrote it; argument values are checked later by the tool layer."""

    name: str
    arguments: dict[str, Any]
    lenient_json: bool = False


@dataclass(frozen=True)
class ParsedTurn:
    """What one assistant turn asks for, plus the strict per-turn format verdict."""

    kind: Literal["tool_call", "answer", "error"]
    think: str | None
    tool_call: ToolCall | None = None
    answer: str | None = None
    error: str | None = None
    format_ok: bool = False
    format_issue: str | None = None


@dataclass(frozen=True)
class _Block:
    tag: str
    content: str
    start: int  # index of the opening "<"
    end: int  # index just after the closing ">"


class _TagError(ValueError):
    pass


def _scan_blocks(text: str) -> list[_Block]:
    """Split text into top-level tag blocks; raise _TagError on nesting, stray closers or unclosed tags."""
    blocks: list[_Block] = []
    open_tag: str | None = None
    open_at = content_at = 0
    for m in _TAG_RE.finditer(text):
        closing, tag = m.group(1) == "/", m.group(2)
        if not closing:
            if open_tag is not None:
                raise _TagError(
                    f"<{tag}> appears inside an unclosed <{open_tag}> block; close it with </{open_tag}> "
                    f"first (tags cannot be nested)"
                )
            open_tag, open_at, content_at = tag, m.start(), m.end()
        elif open_tag is None:
            raise _TagError(f"</{tag}> has no matching <{tag}> before it")
        elif tag != open_tag:
            raise _TagError(f"</{tag}> closes a <{open_tag}> block; close <{open_tag}> with </{open_tag}>")
        else:
            blocks.append(_Block(tag, text[content_at : m.start()], open_at, m.end()))
            open_tag = None
    if open_tag is not None:
        raise _TagError(f"<{open_tag}> is never closed; end it with </{open_tag}>")
    return blocks


def _outside_text(text: str, blocks: Sequence[_Block]) -> str:
    """Non-whitespace text that lies outside every block (empty when there is none)."""
    pieces, pos = [], 0
    for b in blocks:
        pieces.append(text[pos : b.start])
        pos = b.end
    pieces.append(text[pos:])
    return "".join(pieces).strip()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (numbers must be finite)")


def _too_large(s: str) -> ValueError:
    shown = s if len(s) <= 40 else f"{s[:20]}... ({len(s)} characters)"
    return ValueError(f"number {shown} is too large (numbers must be finite)")


def _finite_float(s: str) -> float:
    value = float(s)
    if not math.isfinite(value):
        raise _too_large(s)
    return value


#: Longest JSON integer literal accepted; anything longer is far outside the float range anyway.
_MAX_INT_CHARS = 400


def _finite_int(s: str) -> int:
    """A JSON integer that also fits a float: larger ones (up to Python's int-string limit and past
    it) are refused like ``1e999``, so no tool ever meets an integer it cannot turn into seconds."""
    if len(s) > _MAX_INT_CHARS:
        raise _too_large(s)
    value = int(s)
    try:
        float(value)
    except OverflowError:
        raise _too_large(s) from None
    return value


def _loads(s: str, strict: bool = True) -> Any:
    return json.loads(
        s, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_finite_int, strict=strict
    )


_FENCE_RE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL | re.IGNORECASE)


def _lenient_source(s: str) -> str:
    """Rewrite near-JSON: drop a code fence, re-quote single-quoted strings, drop trailing commas.

    Works character by character so apostrophes inside double-quoted strings are left alone; never evaluates
    anything.
    """
    fence = _FENCE_RE.match(s.strip())
    if fence:
        s = fence.group(1)
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == '"':  # copy a JSON string verbatim
            j = i + 1
            while j < n and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            out.append(s[i : j + 1])
            i = j + 1
        elif c == "'":  # re-quote a single-quoted string
            j, chars = i + 1, []
            while j < n and s[j] != "'":
                if s[j] == "\\" and j + 1 < n:
                    nxt = s[j + 1]
                    chars.append("'" if nxt == "'" else "\\" + nxt)
                    j += 2
                else:
                    chars.append('\\"' if s[j] == '"' else s[j])
                    j += 1
            out.append('"' + "".join(chars) + '"')
            i = j + 1
        elif c == ",":
            j = i + 1
            while j < n and s[j].isspace():
                j += 1
            if j < n and s[j] in "}]":
                i += 1  # trailing comma
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _parse_tool_json(content: str) -> ToolCall | str:
    """Return a ToolCall, or an error message for the agent."""
    body = content.strip()
    lenient = False
    try:
        obj = _loads(body)
    except RecursionError:
        return "the tool call JSON is nested too deeply"
    except ValueError as strict_err:
        if "numbers must be finite" in str(strict_err):
            return f"the tool call JSON is invalid: {strict_err}; write plain numbers such as 87.5"
        try:
            obj = _loads(_lenient_source(body), strict=False)
            lenient = True
        except RecursionError:
            return "the tool call JSON is nested too deeply"
        except ValueError as err:
            detail = str(err) if "finite" in str(err) else str(strict_err)
            return f"the text inside <tool_call> is not valid JSON ({detail}). Write it as {_EXPECTED_CALL}"
    if not isinstance(obj, dict):
        return (
            f'the tool call must be a JSON object with a string "name" and an object "arguments", '
            f"got a JSON {type(obj).__name__}. Write it as {_EXPECTED_CALL}"
        )
    name, arguments = obj.get("name"), obj.get("arguments")
    if not isinstance(name, str):
        known = ", ".join(TOOL_NAMES)
        return f'the tool call needs a string "name" (one of {known}). Write it as {_EXPECTED_CALL}'
    if not isinstance(arguments, dict):
        return f'the tool call needs an object "arguments", e.g. {_EXPECTED_CALL}'
    if name not in TOOL_NAMES:
        shown = name if len(name) <= 60 else name[:60] + "..."
        return f"unknown tool {shown!r}; the available tools are: {', '.join(TOOL_NAMES)}"
    return ToolCall(name=name, arguments=arguments, lenient_json=lenient)


def _error(message: str, think: str | None = None, issue: str | None = None) -> ParsedTurn:
    return ParsedTurn(
        kind="error", think=think, error=message, format_ok=False, format_issue=issue or message
    )


def _format_issue(text: str, blocks: Sequence[_Block]) -> str | None:
    """Why a turn breaks the strict form ``<think>..</think>`` + one action block; None when it does not."""
    tags = [b.tag for b in blocks]
    if not tags or tags[0] != "think":
        first = tags[0] if tags else "nothing"
        return f"expected <think> before <{first}>" if tags else "expected <think>"
    if len(tags) != 2:
        return f"expected exactly one <think> block followed by one action block, got tags {tags}"
    stray = _outside_text(text, blocks)
    if stray:
        shown = stray if len(stray) <= 40 else stray[:40] + "..."
        return f"text outside the tags: {shown!r}"
    return None


def parse_turn(text: object) -> ParsedTurn:
    """Parse one assistant turn. Never raises; anything unusable becomes ``kind="error"``."""
    try:
        return _parse_turn(text)
    except Exception as err:  # noqa: BLE001 - the env must never crash on agent text
        return _error(f"could not parse the turn ({type(err).__name__}); expected {_EXPECTED_TURN}")


def _parse_turn(text: object) -> ParsedTurn:
    if isinstance(text, (bytes, bytearray)):
        if len(text) > 4 * MAX_ACTION_CHARS:
            return _error(f"the turn is too long (limit {MAX_ACTION_CHARS} characters); write a shorter turn")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return _error("the turn is not valid UTF-8 text")
    if not isinstance(text, str):
        return _error(f"the turn must be text, got {type(text).__name__}; expected {_EXPECTED_TURN}")
    if len(text) > MAX_ACTION_CHARS:
        return _error(
            f"the turn is too long ({len(text)} characters, limit {MAX_ACTION_CHARS}); "
            f"write a shorter turn of the form {_EXPECTED_TURN}"
        )
    try:
        blocks = _scan_blocks(text)
    except _TagError as err:
        return _error(f"unbalanced tags: {err}. Expected {_EXPECTED_TURN}")

    thinks = [b for b in blocks if b.tag == "think"]
    think = thinks[0].content.strip() if thinks else None
    calls = [b for b in blocks if b.tag == "tool_call"]
    answers = [b for b in blocks if b.tag == "answer"]

    if calls and answers:
        return _error(
            "the turn has both a <tool_call> and an <answer>; write either one tool call or one final answer",
            think,
        )
    if len(calls) > 1:
        return _error(
            f"the turn has {len(calls)} <tool_call> blocks; call one tool per turn and wait for its result",
            think,
        )
    if len(answers) > 1:
        return _error(f"the turn has {len(answers)} <answer> blocks; give exactly one final answer", think)
    if not calls and not answers:
        return _error(f"no <tool_call> or <answer> found; expected {_EXPECTED_TURN}", think)

    issue = _format_issue(text, blocks)
    if answers:
        return ParsedTurn(
            kind="answer",
            think=think,
            answer=answers[0].content.strip(),
            format_ok=issue is None,
            format_issue=issue,
        )
    parsed = _parse_tool_json(calls[0].content)
    if isinstance(parsed, str):
        return _error(parsed, think, issue)
    return ParsedTurn(
        kind="tool_call", think=think, tool_call=parsed, format_ok=issue is None, format_issue=issue
    )


def _check_free_text(value: str, what: str) -> None:
    if _TAG_RE.search(value):
        raise ValueError(f"{what} must not contain protocol tags (<think>, <tool_call>, <answer>)")


def format_tool_call(name: str, arguments: dict[str, Any], think: str | None = None) -> str:
    """Render a tool call the way :func:`parse_turn` expects it (used for SFT data and scripted agents).

    Raises ValueError for non-finite numbers in ``arguments`` or tags inside ``think``.
    """
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False, allow_nan=False)
    call = f"<tool_call>{payload}</tool_call>"
    if think is None:
        return call
    _check_free_text(think, "think")
    return f"<think>{think}</think>\n{call}"


def format_answer(answer: str, think: str | None = None) -> str:
    """Render a final answer the way :func:`parse_turn` expects it."""
    _check_free_text(answer, "answer")
    block = f"<answer>{answer}</answer>"
    if think is None:
        return block
    _check_free_text(think, "think")
    return f"<think>{think}</think>\n{block}"


@dataclass(frozen=True)
class FormatCheck:
    """Strict trajectory-format verdict; ``reason`` names the first problem, or is ``"ok"``."""

    ok: bool
    reason: str


def check_trajectory_format(turns: Sequence[str]) -> FormatCheck:
    """Check all assistant turns against ``think, (tool_call, think)*, answer`` (the format reward).

    Each turn must have balanced, non-nested tags and only whitespace outside them; the opening tags of all
    turns together must follow the grammar; there is exactly one answer, shorter than MAX_ANSWER_CHARS.
    """
    if isinstance(turns, (str, bytes)) or not isinstance(turns, Sequence) or len(turns) == 0:
        return FormatCheck(False, "no assistant turns")
    expected: tuple[str, ...] = ("think",)
    answers = 0
    for index, turn in enumerate(turns, start=1):
        where = f"turn {index}"
        if not isinstance(turn, str):
            return FormatCheck(False, f"{where}: not text ({type(turn).__name__})")
        if len(turn) > MAX_ACTION_CHARS:
            return FormatCheck(False, f"{where}: longer than {MAX_ACTION_CHARS} characters")
        try:
            blocks = _scan_blocks(turn)
        except _TagError as err:
            return FormatCheck(False, f"{where}: {err}")
        stray = _outside_text(turn, blocks)
        if stray:
            shown = stray if len(stray) <= 40 else stray[:40] + "..."
            return FormatCheck(False, f"{where}: text outside tags: {shown!r}")
        for block in blocks:
            if block.tag not in expected:
                if not expected:
                    return FormatCheck(False, f"{where}: <{block.tag}> after the final <answer>")
                want = " or ".join(f"<{t}>" for t in expected)
                return FormatCheck(False, f"{where}: expected {want} before <{block.tag}>")
            if block.tag == "think":
                expected = ("tool_call", "answer")
            elif block.tag == "tool_call":
                expected = ("think",)
            else:
                answers += 1
                if len(block.content.strip()) >= MAX_ANSWER_CHARS:
                    return FormatCheck(False, f"{where}: answer has {MAX_ANSWER_CHARS} or more characters")
                expected = ()
    if answers == 0:
        return FormatCheck(False, "no <answer> in the trajectory")
    return FormatCheck(True, "ok")


def tool_schemas() -> list[dict[str, Any]]:
    """OpenAI/Qwen-style function schemas of the two tools (times in seconds from the video start)."""
    video_path = {
        "type": "string",
        "description": "Optional. Only the video of the current question may be named; it is the default.",
    }
    return [
        {
            "type": "function",
            "function": {
                "name": "crop_video",
                "description": (
                    "Look closely at a time span of the video: returns frames sampled inside "
                    "[start_time, end_time] with their timestamps."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "start_time": {"type": "number", "description": "Span start in seconds, >= 0."},
                        "end_time": {
                            "type": "number",
                            "description": "Span end in seconds, > start_time (clamped to the video length).",
                        },
                        "video_path": video_path,
                    },
                    "required": ["start_time", "end_time"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_frame",
                "description": (
                    "Inspect one moment at full resolution: returns the frames nearest to timestamp."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "timestamp": {"type": "number", "description": "Moment in seconds, >= 0."},
                        "video_path": video_path,
                    },
                    "required": ["timestamp"],
                },
            },
        },
    ]


def _build_system_prompt() -> str:
    tools = "\n".join(json.dumps(schema["function"], ensure_ascii=False) for schema in tool_schemas())
    return (
        "You answer questions about a long clinical video. You first see a coarse preview: frames sampled "
        "across the whole video, each labelled with its time in seconds. The preview is too sparse to "
        "settle most questions, so find the part of the video that holds the evidence and inspect it "
        "with the tools before you answer.\n\n"
        "Tools (all times are seconds from the start of the video):\n"
        f"{tools}\n\n"
        "Every reply has two parts: first your reasoning inside <think>...</think>, then exactly one of\n"
        '- a tool call: <tool_call>{"name": <tool name>, "arguments": <JSON object>}</tool_call>\n'
        "- the final answer: <answer>...</answer>\n"
        "Call one tool per reply; its result arrives as the next message. Write nothing outside the tags. "
        "For multiple-choice questions answer with the option letter; for questions asking when something "
        "happens answer with an interval such as [12.0, 30.5]; otherwise answer in a short sentence.\n\n"
        "Example:\n"
        "<think>The clip application is probably between one and two minutes in.</think>\n"
        '<tool_call>{"name": "crop_video", "arguments": {"start_time": 60, "end_time": 120}}</tool_call>\n'
        "(frames come back)\n"
        "<think>The clipper appears at 87 s, before the cystic duct is cut, so option B.</think>\n"
        "<answer>B</answer>"
    )


#: System prompt describing the task, the tools with their schemas and the reply format.
SYSTEM_PROMPT: str = _build_system_prompt()
