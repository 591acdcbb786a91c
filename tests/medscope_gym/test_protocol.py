"""Text protocol: lenient action extraction, strict format verdicts, and never raising."""

from __future__ import annotations

import json
import time

import pytest

from medscope_gym.protocol import (
    MAX_ACTION_CHARS,
    MAX_ANSWER_CHARS,
    SYSTEM_PROMPT,
    TOOL_NAMES,
    FormatCheck,
    ParsedTurn,
    ToolCall,
    check_trajectory_format,
    format_answer,
    format_tool_call,
    parse_turn,
    tool_schemas,
)

CROP = '{"name": "crop_video", "arguments": {"start_time": 60, "end_time": 90}}'
FRAME = '{"name": "get_frame", "arguments": {"timestamp": 87.5}}'


def call(body: str = CROP, think: str | None = "look closer") -> str:
    prefix = f"<think>{think}</think>\n" if think is not None else ""
    return f"{prefix}<tool_call>{body}</tool_call>"


# --- well-formed turns --------------------------------------------------------------------------


def test_constants() -> None:
    assert TOOL_NAMES == ("crop_video", "get_frame")
    assert MAX_ACTION_CHARS == 32_768
    assert MAX_ANSWER_CHARS == 1000


def test_well_formed_tool_call() -> None:
    turn = parse_turn(call())
    assert turn == ParsedTurn(
        kind="tool_call",
        think="look closer",
        tool_call=ToolCall("crop_video", {"start_time": 60, "end_time": 90}, lenient_json=False),
        format_ok=True,
    )


def test_well_formed_answer_is_stripped() -> None:
    turn = parse_turn("<think>it is B</think>\n<answer>  B \n</answer>\n")
    assert turn.kind == "answer"
    assert turn.answer == "B"
    assert turn.think == "it is B"
    assert turn.format_ok and turn.format_issue is None
    assert turn.error is None and turn.tool_call is None


def test_get_frame_call() -> None:
    turn = parse_turn(call(FRAME))
    assert turn.kind == "tool_call"
    assert turn.tool_call == ToolCall("get_frame", {"timestamp": 87.5})


def test_empty_think_is_allowed() -> None:
    turn = parse_turn("<think></think><answer>A</answer>")
    assert turn.kind == "answer" and turn.format_ok and turn.think == ""


# --- lenient extraction, strict format ----------------------------------------------------------


def test_tool_call_without_think_still_executes_but_format_fails() -> None:
    turn = parse_turn(call(think=None))
    assert turn.kind == "tool_call"
    assert turn.tool_call is not None and turn.tool_call.name == "crop_video"
    assert turn.think is None
    assert not turn.format_ok
    assert "expected <think> before <tool_call>" in (turn.format_issue or "")


def test_answer_without_think_is_answer_with_bad_format() -> None:
    turn = parse_turn("<answer>B</answer>")
    assert turn.kind == "answer" and turn.answer == "B" and not turn.format_ok


@pytest.mark.parametrize(
    "text",
    [
        "Sure! <think>x</think><answer>B</answer>",
        "<think>x</think><answer>B</answer> trailing words",
        "<think>x</think> between <answer>B</answer>",
    ],
)
def test_text_outside_tags_breaks_format_only(text: str) -> None:
    turn = parse_turn(text)
    assert turn.kind == "answer" and turn.answer == "B"
    assert not turn.format_ok
    assert "outside" in (turn.format_issue or "")


def test_two_think_blocks_break_format() -> None:
    turn = parse_turn("<think>a</think><think>b</think><answer>B</answer>")
    assert turn.kind == "answer" and not turn.format_ok
    assert turn.think == "a"


def test_think_after_action_breaks_format() -> None:
    turn = parse_turn("<answer>B</answer><think>a</think>")
    assert turn.kind == "answer" and not turn.format_ok


@pytest.mark.parametrize(
    "body",
    [
        "{'name': 'get_frame', 'arguments': {'timestamp': 3}}",
        '{"name": "get_frame", "arguments": {"timestamp": 3,},}',
        "{'name': 'get_frame', 'arguments': {'timestamp': 3,}}",
        '```json\n{"name": "get_frame", "arguments": {"timestamp": 3}}\n```',
    ],
)
def test_lenient_json_is_flagged_and_format_decided_by_tags(body: str) -> None:
    turn = parse_turn(call(body))
    assert turn.kind == "tool_call"
    assert turn.tool_call == ToolCall("get_frame", {"timestamp": 3}, lenient_json=True)
    assert turn.format_ok


def test_lenient_json_keeps_apostrophes_in_double_quoted_strings() -> None:
    body = """{'name': 'crop_video', 'arguments': {'start_time': 1, 'end_time': 2, 'note': "it's fine",}}"""
    turn = parse_turn(call(body))
    assert turn.tool_call is not None and turn.tool_call.lenient_json
    assert turn.tool_call.arguments["note"] == "it's fine"


def test_lenient_json_escapes_double_quotes_inside_single_quoted_strings() -> None:
    body = """{'name': 'get_frame', 'arguments': {'timestamp': 1, 'note': 'say "hi"'}}"""
    turn = parse_turn(call(body))
    assert turn.tool_call is not None and turn.tool_call.arguments["note"] == 'say "hi"'


def test_lenient_fallback_does_not_evaluate_python() -> None:
    turn = parse_turn(call("{'name': 'get_frame', 'arguments': {'timestamp': __import__('os').getpid()}}"))
    assert turn.kind == "error"
    assert "not valid JSON" in (turn.error or "")


# --- malformed turns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("<think>unfinished", "<think> is never closed"),
        ("<think>a</think><answer>B", "<answer> is never closed"),
        (f"<think>a</think><tool_call>{CROP}", "<tool_call> is never closed"),
        ("<think>a</think>B</answer>", "</answer> has no matching <answer>"),
        ("<think>a<think>b</think></think><answer>B</answer>", "inside an unclosed <think>"),
        ("<think>a <answer>B</answer>", "inside an unclosed <think>"),
        ("<think>a</answer>", "</answer> closes a <think> block"),
    ],
)
def test_unbalanced_tags_are_errors(text: str, needle: str) -> None:
    turn = parse_turn(text)
    assert turn.kind == "error"
    assert needle in (turn.error or "")
    assert not turn.format_ok
    assert turn.tool_call is None and turn.answer is None


@pytest.mark.parametrize("text", ["", "   ", "B", "<think>only thinking</think>", "I would crop 60-90"])
def test_no_action_is_error_that_quotes_the_expected_form(text: str) -> None:
    turn = parse_turn(text)
    assert turn.kind == "error"
    assert "no <tool_call> or <answer>" in (turn.error or "")
    assert '<tool_call>{"name": "crop_video"' in (turn.error or "")


def test_tool_call_and_answer_together_is_error() -> None:
    turn = parse_turn(f"<think>a</think><tool_call>{CROP}</tool_call><answer>B</answer>")
    assert turn.kind == "error"
    assert "both a <tool_call> and an <answer>" in (turn.error or "")
    assert turn.think == "a"


def test_two_tool_calls_is_error() -> None:
    turn = parse_turn(f"<think>a</think><tool_call>{CROP}</tool_call><tool_call>{FRAME}</tool_call>")
    assert turn.kind == "error"
    assert "2 <tool_call> blocks" in (turn.error or "")


def test_two_answers_is_error() -> None:
    turn = parse_turn("<think>a</think><answer>A</answer><answer>B</answer>")
    assert turn.kind == "error" and "2 <answer> blocks" in (turn.error or "")


@pytest.mark.parametrize(
    "body",
    [
        "{not json at all",
        '{"name": "crop_video", "arguments": {"start_time": 1 "end_time": 2}}',
        "",
        "crop_video(60, 90)",
    ],
)
def test_bad_json_is_error(body: str) -> None:
    turn = parse_turn(call(body))
    assert turn.kind == "error"
    assert "not valid JSON" in (turn.error or "")
    assert '{"name": "crop_video", "arguments":' in (turn.error or "")


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "crop_video", "arguments": {"start_time": NaN, "end_time": 90}}',
        '{"name": "crop_video", "arguments": {"start_time": 0, "end_time": Infinity}}',
        '{"name": "crop_video", "arguments": {"start_time": -Infinity, "end_time": 90}}',
        '{"name": "get_frame", "arguments": {"timestamp": 1e999}}',
        '{"name": "get_frame", "arguments": {"timestamp": [1, {"x": NaN}]}}',
        "{'name': 'get_frame', 'arguments': {'timestamp': NaN,}}",
    ],
)
def test_non_finite_numbers_are_rejected(body: str) -> None:
    turn = parse_turn(call(body))
    assert turn.kind == "error"
    assert "finite" in (turn.error or "")
    assert turn.tool_call is None


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[1, 2]", "JSON object"),
        ('"crop_video"', "JSON object"),
        ('{"arguments": {"timestamp": 1}}', 'string "name"'),
        ('{"name": 3, "arguments": {"timestamp": 1}}', 'string "name"'),
        ('{"name": "get_frame"}', 'object "arguments"'),
        ('{"name": "get_frame", "arguments": [1]}', 'object "arguments"'),
        ('{"name": "get_frame", "arguments": "{\\"timestamp\\": 1}"}', 'object "arguments"'),
    ],
)
def test_wrong_json_shape_is_error(body: str, needle: str) -> None:
    turn = parse_turn(call(body))
    assert turn.kind == "error" and needle in (turn.error or "")


def test_unknown_tool_lists_known_tools() -> None:
    turn = parse_turn(call('{"name": "open_file", "arguments": {"path": "/etc/passwd"}}'))
    assert turn.kind == "error"
    assert "unknown tool 'open_file'" in (turn.error or "")
    assert "crop_video" in (turn.error or "") and "get_frame" in (turn.error or "")


@pytest.mark.parametrize(
    "arguments",
    [
        {"start_time": -5, "end_time": 10},
        {"start_time": 90, "end_time": 60},
        {"start_time": "sixty", "end_time": None},
        {"start_time": 10**30, "end_time": 1e308},
        {"start_time": True, "end_time": [1, 2]},
        {},
        {"start_time": 1, "end_time": 2, "video_path": "/etc/passwd"},
        {"start_time": 1, "end_time": 2, "video_path": "../other/video.mp4", "extra": {"k": "v"}},
    ],
)
def test_argument_values_pass_through_unchanged(arguments: dict) -> None:
    """The parser does not validate or coerce values; the tool layer rejects bad ones."""
    turn = parse_turn(call(json.dumps({"name": "crop_video", "arguments": arguments})))
    assert turn.kind == "tool_call"
    assert turn.tool_call is not None
    assert turn.tool_call.arguments == arguments
    for key, value in arguments.items():
        assert type(turn.tool_call.arguments[key]) is type(value)


def test_too_long_turn_is_error() -> None:
    text = call(think="x" * MAX_ACTION_CHARS)
    turn = parse_turn(text)
    assert turn.kind == "error" and "too long" in (turn.error or "")
    assert str(MAX_ACTION_CHARS) in (turn.error or "")


def test_turn_at_the_limit_is_parsed() -> None:
    base = call()
    text = call(think="x" * (MAX_ACTION_CHARS - len(base) + len("look closer")))
    assert len(text) == MAX_ACTION_CHARS
    assert parse_turn(text).kind == "tool_call"


def test_ten_megabyte_string_returns_quickly() -> None:
    text = "<think>" + "a<" * 5_000_000
    start = time.perf_counter()
    turn = parse_turn(text)
    assert time.perf_counter() - start < 0.5
    assert turn.kind == "error" and "too long" in (turn.error or "")


def test_deeply_nested_json_does_not_raise() -> None:
    turn = parse_turn(call("[" * 20_000))
    assert turn.kind == "error"


@pytest.mark.parametrize("value", [None, 42, 3.5, ["<answer>B</answer>"], {"a": 1}, object()])
def test_non_text_input_is_error(value: object) -> None:
    turn = parse_turn(value)
    assert turn.kind == "error"
    assert "must be text" in (turn.error or "")


def test_utf8_bytes_are_decoded() -> None:
    turn = parse_turn("<think>想</think><answer>胆囊 🩺</answer>".encode())
    assert turn.kind == "answer" and turn.answer == "胆囊 🩺" and turn.format_ok


def test_invalid_utf8_bytes_are_error() -> None:
    turn = parse_turn(b"<answer>\xff\xfe</answer>")
    assert turn.kind == "error" and "UTF-8" in (turn.error or "")


def test_non_ascii_and_emoji_round_trip() -> None:
    args = {"start_time": 1.5, "end_time": 3, "note": "夹闭胆囊管 ✂️🩸"}
    turn = parse_turn(format_tool_call("crop_video", args, think="看看 🤔"))
    assert turn.kind == "tool_call" and turn.format_ok
    assert turn.think == "看看 🤔"
    assert turn.tool_call is not None and turn.tool_call.arguments == args


@pytest.mark.parametrize("junk", ["\x00", "\x1b[31m", "\u202e", "\ud800", "\r\n\t"])
def test_control_characters_never_raise(junk: str) -> None:
    for text in (junk, f"<think>{junk}</think><answer>{junk}B</answer>", call(f'{{"name": "{junk}"}}')):
        turn = parse_turn(text)
        assert isinstance(turn, ParsedTurn)


def test_raw_control_char_in_json_string_needs_lenient_parse() -> None:
    turn = parse_turn(call('{"name": "get_frame", "arguments": {"timestamp": 1, "note": "a\tb"}}'))
    assert turn.kind == "tool_call"
    assert turn.tool_call is not None and turn.tool_call.lenient_json
    assert turn.tool_call.arguments["note"] == "a\tb"


def test_long_answer_is_still_an_answer() -> None:
    turn = parse_turn(format_answer("x" * (MAX_ANSWER_CHARS + 50), think="t"))
    assert turn.kind == "answer" and turn.answer is not None and len(turn.answer) == MAX_ANSWER_CHARS + 50


def test_error_keeps_think_for_logging() -> None:
    turn = parse_turn(call('{"name": "zoom", "arguments": {}}', think="plan"))
    assert turn.kind == "error" and turn.think == "plan"


# --- formatters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arguments"),
    [("crop_video", {"start_time": 0.0, "end_time": 12.5}), ("get_frame", {"timestamp": 3})],
)
def test_format_tool_call_round_trip(name: str, arguments: dict) -> None:
    text = format_tool_call(name, arguments, think="why")
    turn = parse_turn(text)
    assert turn.format_ok and turn.tool_call == ToolCall(name, arguments)
    assert not parse_turn(format_tool_call(name, arguments)).format_ok  # no think → format not ok
    assert parse_turn(format_tool_call(name, arguments)).tool_call == ToolCall(name, arguments)


def test_format_tool_call_uses_documented_layout() -> None:
    text = format_tool_call("get_frame", {"timestamp": 1}, think="t")
    expected = '<tool_call>{"name": "get_frame", "arguments": {"timestamp": 1}}</tool_call>'
    assert text == "<think>t</think>\n" + expected


def test_format_answer_round_trip() -> None:
    turn = parse_turn(format_answer("[12.0, 30.5]", think="because"))
    assert turn.kind == "answer" and turn.answer == "[12.0, 30.5]" and turn.format_ok


def test_formatters_reject_unparseable_content() -> None:
    with pytest.raises(ValueError):
        format_tool_call("get_frame", {"timestamp": float("nan")}, think="t")
    with pytest.raises(ValueError):
        format_answer("B", think="<answer>A</answer>")
    with pytest.raises(ValueError):
        format_answer("</answer>")


# --- trajectory format --------------------------------------------------------------------------

T = "<think>t</think>"
C = f"<tool_call>{CROP}</tool_call>"
A = "<answer>B</answer>"


@pytest.mark.parametrize(
    "turns",
    [
        [T + A],
        [T + C, T + A],
        [T + "\n" + C + "\n", "\n" + T + C, T + "\n\n" + A],
        [f"  {T}\n{A}  "],
    ],
)
def test_trajectory_ok(turns: list[str]) -> None:
    assert check_trajectory_format(turns) == FormatCheck(True, "ok")


@pytest.mark.parametrize(
    ("turns", "reason"),
    [
        ([C, T + A], "turn 1: expected <think> before <tool_call>"),
        ([T + C, C + A], "turn 2: expected <think> before <tool_call>"),
        ([T + C, A], "turn 2: expected <think> before <answer>"),
        ([T + C, T + A, T + A], "turn 3: <think> after the final <answer>"),
        ([T + A + A], "turn 1: <answer> after the final <answer>"),
        ([T + T + A], "turn 1: expected <tool_call> or <answer> before <think>"),
        ([T + C + C, T + A], "turn 1: expected <think> before <tool_call>"),
        (["<think>a<think>b</think></think>" + A], "turn 1: <think> appears inside an unclosed <think>"),
        ([T + C, "<think>x" + A], "turn 2: <answer> appears inside an unclosed <think>"),
        ([T + C, "<think>x"], "turn 2: <think> is never closed"),
        ([T + C], "no <answer> in the trajectory"),
        ([T + C, T + C], "no <answer> in the trajectory"),
        (["hello " + T + A], "turn 1: text outside tags: 'hello'"),
        ([T + C, T + A + " thanks"], "turn 2: text outside tags: 'thanks'"),
        ([T + f"<answer>{'x' * MAX_ANSWER_CHARS}</answer>"], "turn 1: answer has 1000 or more characters"),
        ([], "no assistant turns"),
        ([T + C, None], "turn 2: not text (NoneType)"),
    ],
)
def test_trajectory_not_ok(turns: list, reason: str) -> None:
    check = check_trajectory_format(turns)
    assert not check.ok
    assert check.reason.startswith(reason), check.reason


def test_trajectory_answer_just_under_limit_is_ok() -> None:
    assert check_trajectory_format([T + "<answer>" + "x" * (MAX_ANSWER_CHARS - 1) + "</answer>"]).ok


@pytest.mark.parametrize("value", ["<think>t</think><answer>B</answer>", b"x", None, 5])
def test_trajectory_check_rejects_non_sequences(value: object) -> None:
    assert not check_trajectory_format(value).ok  # type: ignore[arg-type]


def test_trajectory_of_formatter_output_is_ok() -> None:
    turns = [
        format_tool_call("crop_video", {"start_time": 0, "end_time": 60}, think="coarse"),
        format_tool_call("get_frame", {"timestamp": 30}, think="zoom"),
        format_answer("C", think="seen"),
    ]
    assert check_trajectory_format(turns).ok
    assert all(parse_turn(t).format_ok for t in turns)


# --- prompt and schemas -------------------------------------------------------------------------


def test_tool_schemas_describe_both_tools() -> None:
    schemas = tool_schemas()
    assert [s["function"]["name"] for s in schemas] == list(TOOL_NAMES)
    crop, frame = (s["function"]["parameters"] for s in schemas)
    assert all(s["type"] == "function" for s in schemas)
    assert crop["required"] == ["start_time", "end_time"]
    assert set(crop["properties"]) == {"start_time", "end_time", "video_path"}
    assert frame["required"] == ["timestamp"]
    assert set(frame["properties"]) == {"timestamp", "video_path"}
    json.dumps(schemas)  # serialisable
    assert tool_schemas() is not schemas  # callers may mutate their copy


def test_system_prompt_mentions_tools_and_format() -> None:
    for needle in (
        "crop_video",
        "get_frame",
        "start_time",
        "end_time",
        "timestamp",
        "seconds",
        "<think>",
        "<tool_call>",
        "<answer>",
    ):
        assert needle in SYSTEM_PROMPT
    example = SYSTEM_PROMPT[SYSTEM_PROMPT.index("Example:") :]
    first_call = example[example.index("<think>") : example.index("</tool_call>") + len("</tool_call>")]
    parsed = parse_turn(first_call)
    assert parsed.kind == "tool_call" and parsed.format_ok


# --- fuzz ---------------------------------------------------------------------------------------

_PIECES = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    ",",
    ":",
    "name",
    "arguments",
    "crop_video",
    "get_frame",
    "NaN",
    "-Infinity",
    "1e999",
    "12.5",
    "\\",
    "\\u12",
    "\x00",
    "中",
    "🩺",
    " ",
    "\n",
    "<",
    ">",
    "/",
    "```",
]


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_never_raises_and_is_consistent(seed: int) -> None:
    import random

    rng = random.Random(seed)
    for _ in range(200):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 40)))
        turn = parse_turn(text)
        assert turn.kind in ("tool_call", "answer", "error")
        assert (turn.kind == "error") == (turn.error is not None)
        assert (turn.kind == "tool_call") == (turn.tool_call is not None)
        assert (turn.kind == "answer") == (turn.answer is not None)
        assert turn.format_ok == (turn.format_issue is None)
        if turn.tool_call is not None:
            assert turn.tool_call.name in TOOL_NAMES and isinstance(turn.tool_call.arguments, dict)
        check = check_trajectory_format([text])
        assert isinstance(check, FormatCheck)
        if check.ok:  # a trajectory-valid single turn is a well-formed answer turn
            assert turn.kind == "answer" and turn.format_ok


@pytest.mark.parametrize(
    "number",
    [
        "1" + "0" * 309,  # 1e309 as an integer: beyond the float range
        "-" + "9" * 400,
        "9" * 4300,  # at Python's int-string limit
        "9" * 4301,  # past it: int() itself refuses
        "1" * 20_000,
    ],
    ids=["1e309", "-400digits", "4300digits", "4301digits", "20000digits"],
)
def test_integers_beyond_the_float_range_are_rejected_like_1e999(number: str) -> None:
    for body in (
        '{"name": "get_frame", "arguments": {"timestamp": NUMBER}}',
        "{'name': 'get_frame', 'arguments': {'timestamp': NUMBER,}}",  # lenient path too
        '{"name": "crop_video", "arguments": {"start_time": 0, "end_time": 1, "x": [NUMBER]}}',
    ):
        turn = parse_turn(call(body.replace("NUMBER", number)))
        assert turn.kind == "error" and turn.tool_call is None
        assert "too large (numbers must be finite)" in (turn.error or "")
        assert "sys." not in (turn.error or "") and len(turn.error or "") < 400


def test_largest_float_range_integers_still_parse() -> None:
    big = 10**308
    turn = parse_turn(call(f'{{"name": "get_frame", "arguments": {{"timestamp": {big}}}}}'))
    assert turn.kind == "tool_call" and turn.tool_call.arguments["timestamp"] == big
