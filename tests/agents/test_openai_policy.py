"""OpenAIChatPolicy against a real HTTP server on the loopback interface, serving scripted replies."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from medscope_gym.agents.openai_policy import (
    REQUEST_FAILED,
    EndpointConfigError,
    OpenAIChatPolicy,
    OpenAIPolicyConfig,
    _calls_text,
    _close_cut_tag,
)
from medscope_gym.agents.rollout.engine import make_vector_env, rollout, sample_requests
from medscope_gym.agents.rollout.trajectory import load_trajectories, save_trajectories
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.errors import ConfigError
from medscope_gym.protocol import SYSTEM_PROMPT, tool_schemas

KEY = "sk-test-secret-123"
# What a server returns when it stops at "</tool_call>" / "</answer>": the stop string left out.
CROP = (
    "<think>The preview is too coarse.</think>\n"
    '<tool_call>{"name": "crop_video", "arguments": {"start_time": 40, "end_time": 50}}'
)
ANSWER = "<think>The crop settles it.</think>\n<answer>A"


@dataclass
class Reply:
    """One scripted response of the fake endpoint."""

    content: str | None = None
    status: int = 200
    finish: str | None = "stop"
    tool_calls: list[dict[str, Any]] | None = None
    usage: tuple[int, int] | None = (100, 7)
    delay: float = 0.0
    raw: bytes | None = None
    """Sent as the body instead of a chat completion (malformed JSON)."""


class Endpoint:
    """Requests seen (bodies, headers) and the most requests in flight at once."""

    def __init__(self, responder: Callable[[dict[str, Any], int], Reply]) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.url = ""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that timed out
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[dict[str, Any], int], Reply]], Endpoint]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(responder: Callable[[dict[str, Any], int], Reply]) -> Endpoint:
        endpoint = Endpoint(responder)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with endpoint.lock:
                    index = len(endpoint.requests)
                    endpoint.requests.append({"path": self.path, "body": body})
                    endpoint.headers.append(dict(self.headers))
                    endpoint.in_flight += 1
                    endpoint.max_in_flight = max(endpoint.max_in_flight, endpoint.in_flight)
                try:
                    reply = endpoint.responder(body, index)
                    time.sleep(reply.delay)
                    self._send(reply)
                finally:
                    with endpoint.lock:
                        endpoint.in_flight -= 1

            def _send(self, reply: Reply) -> None:
                if reply.raw is not None:
                    data = reply.raw
                elif reply.status != 200:
                    data = json.dumps({"error": {"message": reply.content, "type": "scripted"}}).encode()
                else:
                    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
                    if reply.tool_calls is not None:
                        message["tool_calls"] = reply.tool_calls
                    payload: dict[str, Any] = {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish}],
                    }
                    if reply.usage is not None:
                        payload["usage"] = {
                            "prompt_tokens": reply.usage[0],
                            "completion_tokens": reply.usage[1],
                        }
                    data = json.dumps(payload).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the log
                pass

        server = _QuietServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return endpoint

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def turn_of(body: dict[str, Any]) -> int:
    """Which turn of its episode a request asks for (0: after the preview)."""
    return sum(m["role"] == "assistant" for m in body["messages"])


def crop_then_answer(body: dict[str, Any], index: int) -> Reply:
    return Reply(CROP if turn_of(body) == 0 else ANSWER)


def make_policy(url: str, sleeps: list[float] | None = None, **overrides: Any) -> OpenAIChatPolicy:
    settings: dict[str, Any] = {
        "model": "test-model",
        "base_url": url,
        "api_key_env": "MEDSCOPE_TEST_KEY",
        "timeout": 0.5,
        "retries": 1,
        "backoff": 0.01,
        "max_frames": 4,
        "jpeg_quality": 50,
    }
    settings.update(overrides)
    record = sleeps if sleeps is not None else []
    return OpenAIChatPolicy(OpenAIPolicyConfig(**settings), sleep=record.append)


def play(policy: OpenAIChatPolicy, suite, n: int = 1, num_envs: int = 1):
    ids = [s.id for s in suite if s.split == "test"][:n]
    envs = make_vector_env(lambda: ClinVideoEnv(suite), num_envs)
    try:
        return rollout(policy, envs, sample_requests(ids, seed=0))
    finally:
        envs.close()


# --- a full episode ------------------------------------------------------------------------------


def test_plays_episodes_through_the_endpoint(serve, suite, monkeypatch, tmp_path):
    monkeypatch.setenv("MEDSCOPE_TEST_KEY", KEY)
    endpoint = serve(crop_then_answer)
    policy = make_policy(endpoint.url, temperature=0.7, top_p=0.9, max_tokens=99, seed=5)
    trajs = play(policy, suite, n=2)

    for traj in trajs:
        assert traj.terminated and not traj.truncated
        assert traj.policy == "openai:test-model"
        assert [t.action_text for t in traj.turns] == [CROP + "</tool_call>", ANSWER + "</answer>"]
        assert [t.finish for t in traj.turns] == ["stop", "stop"]
        assert traj.final_info["format"] == {"ok": True, "reason": "ok"}
        assert traj.used_tool
        first, second = traj.turns
        assert len(first.media.video) == 4 and first.media.images is None  # the preview, thinned
        assert "Question" in first.observation_text or "?" in first.observation_text
        assert second.media.video is not None and len(second.media.video) <= 4  # the crop
        assert traj.sampling["model"] == "test-model" and traj.sampling["temperature"] == 0.7

    assert len(endpoint.requests) == 4
    request = endpoint.requests[0]
    assert request["path"] == "/v1/chat/completions"
    body = request["body"]
    assert body["model"] == "test-model"
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.9, 99)
    assert body["stop"] == ["</tool_call>", "</answer>"]
    assert "tools" not in body
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    content = body["messages"][1]["content"]
    images = [k for k, block in enumerate(content) if block["type"] == "image_url"]
    assert len(images) == 4
    for k in images:  # every frame labelled with its time, right before it
        assert content[k]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert content[k - 1]["type"] == "text" and content[k - 1]["text"].endswith(" s]")
    assert [r["body"]["seed"] for r in endpoint.requests] == [5, 6, 5 + 7919, 5 + 7919 + 1]

    later = endpoint.requests[1]["body"]["messages"]
    assert later[2] == {"role": "assistant", "content": CROP + "</tool_call>"}
    assert later[3]["role"] == "user" and "<tool_response>" in later[3]["content"][-1]["text"]
    assert any(block["type"] == "image_url" for block in later[3]["content"])

    # the key goes in the header and nowhere else
    assert all(h["Authorization"] == f"Bearer {KEY}" for h in endpoint.headers)
    saved = save_trajectories(tmp_path / "trajs", trajs)
    assert KEY not in (saved / "trajectories.jsonl").read_text()
    assert KEY not in repr(policy) and KEY not in json.dumps(policy.sampling_settings())
    assert len(load_trajectories(saved)[0].turns[0].media.video) == 4

    usage = policy.usage()
    task = trajs[0].task
    assert usage["overall"] == {
        "episodes": 2,
        "requests": 4,
        "attempts": 4,
        "failed_requests": 0,
        "prompt_tokens": 400,
        "completion_tokens": 28,
        "unreported_usage": 0,
    }
    assert sum(row["episodes"] for name, row in usage.items() if name != "overall") == 2
    assert task in usage


def test_one_request_per_running_episode_at_once(serve, suite):
    endpoint = serve(lambda body, i: Reply(ANSWER, delay=0.5))
    policy = make_policy(endpoint.url, timeout=5.0)
    trajs = play(policy, suite, n=3, num_envs=3)
    assert all(t.terminated for t in trajs)
    assert endpoint.max_in_flight == 3  # the three episodes' requests were served side by side


def test_no_key_no_authorization_header(serve, suite, monkeypatch):
    monkeypatch.delenv("MEDSCOPE_TEST_KEY", raising=False)
    endpoint = serve(lambda body, i: Reply(ANSWER))
    play(make_policy(endpoint.url), suite)
    assert "Authorization" not in endpoint.headers[0]


def test_length_cut_turn_is_sent_as_it_is(serve, suite):
    endpoint = serve(lambda body, i: Reply("<think>I keep thinking and", finish="length"))
    traj = play(make_policy(endpoint.url), suite)[0]
    assert traj.turns[0].action_text == "<think>I keep thinking and"
    assert traj.turns[0].finish == "length"
    assert traj.truncated and not traj.final_info["format"]["ok"]


@pytest.mark.parametrize(
    ("text", "closed"),
    [
        (CROP, CROP + "</tool_call>"),
        (ANSWER, ANSWER + "</answer>"),
        ("<think>a</think><answer>B</answer>", "<think>a</think><answer>B</answer>"),  # server kept it
        ("<think>no action yet", "<think>no action yet"),
        ("", ""),
    ],
)
def test_close_cut_tag(text, closed):
    assert _close_cut_tag(text) == closed


# --- failures ------------------------------------------------------------------------------------


def test_server_error_then_success_is_retried(serve, suite):
    endpoint = serve(lambda body, i: Reply("overloaded", status=500) if i == 0 else crop_then_answer(body, i))
    sleeps: list[float] = []
    policy = make_policy(endpoint.url, sleeps, retries=2, backoff=0.01)
    traj = play(policy, suite)[0]
    assert [t.finish for t in traj.turns] == ["stop", "stop"]
    assert traj.final_info["format"]["ok"]
    assert sleeps == [0.01]
    assert len(endpoint.requests) == 3
    assert policy.usage()["overall"]["attempts"] == 3 and policy.usage()["overall"]["requests"] == 2


def test_time_out_then_success_is_retried(serve, suite):
    endpoint = serve(lambda body, i: Reply(ANSWER, delay=1.0 if i == 0 else 0.0))
    policy = make_policy(endpoint.url, timeout=0.3, retries=1)
    traj = play(policy, suite)[0]
    assert traj.terminated and traj.turns[0].finish == "stop"
    assert policy.usage()["overall"]["attempts"] == 2


def test_persistent_time_out_is_a_recorded_failed_turn(serve, suite):
    endpoint = serve(lambda body, i: Reply(ANSWER, delay=0.6) if turn_of(body) == 0 else Reply(ANSWER))
    policy = make_policy(endpoint.url, timeout=0.2, retries=1)
    traj = play(policy, suite)[0]
    failed, answered = traj.turns
    assert failed.finish == "error" and not failed.imitate
    assert failed.action_text.startswith(REQUEST_FAILED)
    assert "timed out after 0.2 s (after 2 attempt(s))" in failed.action_text
    assert answered.observation_text.startswith("Error: no <tool_call> or <answer> found")
    assert traj.terminated and not traj.final_info["format"]["ok"]
    assert traj.final_info["reward_parts"]["format"] == 0.0
    assert policy.usage()["overall"]["failed_requests"] == 1


def test_persistent_client_error_fails_each_turn_at_once(serve, suite):
    endpoint = serve(lambda body, i: Reply("too many <images> in the prompt", status=400))
    sleeps: list[float] = []
    policy = make_policy(endpoint.url, sleeps, retries=3)
    traj = play(policy, suite)[0]
    assert traj.truncated and len(traj.turns) == 5  # the env's turn budget ends it
    assert len(endpoint.requests) == 5 and sleeps == []  # a 4xx is not retried
    for turn in traj.turns:
        assert turn.finish == "error" and not turn.imitate
        assert turn.action_text == (
            f"{REQUEST_FAILED} HTTP 400: too many (images) in the prompt (after 1 attempt(s))"
        )
    assert not traj.final_info["format"]["ok"] and traj.final_info["answer"] is None
    usage = policy.usage()["overall"]
    assert (usage["requests"], usage["failed_requests"], usage["prompt_tokens"]) == (5, 5, 0)


@pytest.mark.parametrize(("status", "hint"), [(401, True), (404, False)])
def test_refused_key_or_unknown_model_stops_the_run(serve, suite, monkeypatch, status, hint):
    monkeypatch.setenv("MEDSCOPE_TEST_KEY", KEY)
    endpoint = serve(lambda body, i: Reply("no such key or model", status=status))
    with pytest.raises(EndpointConfigError) as caught:
        play(make_policy(endpoint.url, retries=3), suite)
    message = str(caught.value)
    assert f"HTTP {status}: no such key or model" in message and "test-model" in message
    assert ("$MEDSCOPE_TEST_KEY" in message) == hint
    assert KEY not in message
    assert len(endpoint.requests) == 1
    assert isinstance(caught.value, ConfigError)


def test_malformed_json_is_retried_then_recorded(serve, suite):
    endpoint = serve(lambda body, i: Reply(raw=b'{"choices": [oops') if turn_of(body) == 0 else Reply(ANSWER))
    policy = make_policy(endpoint.url, retries=2)
    traj = play(policy, suite)[0]
    failed = traj.turns[0]
    assert failed.finish == "error"
    assert "malformed response body" in failed.action_text and "after 3 attempt(s)" in failed.action_text
    assert "<" not in failed.action_text.removeprefix(REQUEST_FAILED)
    assert traj.turns[1].finish == "stop" and traj.terminated


def test_malformed_json_then_success(serve, suite):
    endpoint = serve(lambda body, i: Reply(raw=b"not json") if i == 0 else Reply(ANSWER))
    traj = play(make_policy(endpoint.url, retries=1), suite)[0]
    assert [t.finish for t in traj.turns] == ["stop"] and traj.final_info["format"]["ok"]


def test_unreachable_server_is_a_recorded_failed_turn(suite):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = make_policy(f"http://127.0.0.1:{port}/v1", retries=1)
    traj = play(policy, suite)[0]
    assert all(t.finish == "error" and "network error" in t.action_text for t in traj.turns)


# --- native tool calling -------------------------------------------------------------------------


def _call(name: str, arguments: str, call_id: str = "call_7") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_native_tool_call_the_env_rejects(serve, suite):
    reversed_crop = _call("crop_video", '{"start_time": 50, "end_time": 10}')

    def responder(body: dict[str, Any], index: int) -> Reply:
        if turn_of(body) == 0:
            return Reply("<think>I crop the middle.</think>", finish="tool_calls", tool_calls=[reversed_crop])
        return Reply(ANSWER)

    endpoint = serve(responder)
    policy = make_policy(endpoint.url, native_tools=True)
    traj = play(policy, suite)[0]
    first = traj.turns[0]
    assert first.finish == "tool_calls"
    assert first.action_text == (
        "<think>I crop the middle.</think>\n"
        '<tool_call>{"name": "crop_video", "arguments": {"start_time": 50, "end_time": 10}}</tool_call>'
    )
    log = traj.tool_log
    assert len(log) == 1 and not log[0]["ok"] and log[0]["error"]
    assert traj.terminated and not traj.final_info["format"]["ok"]

    body = endpoint.requests[0]["body"]
    assert body["tools"] == tool_schemas() and body["tool_choice"] == "auto"
    assert body["stop"] == ["</answer>"]
    messages = endpoint.requests[1]["body"]["messages"]
    assert messages[2] == {
        "role": "assistant",
        "content": "<think>I crop the middle.</think>",
        "tool_calls": [reversed_crop],
    }
    assert messages[3]["role"] == "tool" and messages[3]["tool_call_id"] == "call_7"
    assert messages[3]["content"].startswith("Error: ")
    assert len(messages) == 4  # a rejected call returns no frames, so no user message follows


def test_native_tool_call_frames_follow_in_a_user_message(serve, suite):
    crop = _call("crop_video", '{"start_time": 40, "end_time": 50}', call_id="")

    def responder(body: dict[str, Any], index: int) -> Reply:
        if turn_of(body) == 0:
            return Reply(None, finish="tool_calls", tool_calls=[crop])
        return Reply(ANSWER)

    endpoint = serve(responder)
    traj = play(make_policy(endpoint.url, native_tools=True), suite)[0]
    assert traj.turns[0].action_text == (
        '<tool_call>{"name": "crop_video", "arguments": {"start_time": 40, "end_time": 50}}</tool_call>'
    )
    assert traj.used_tool
    # no <think> before the call: the format verdict says so
    assert traj.final_info["format"] == {"ok": False, "reason": "turn 1: expected <think> before <tool_call>"}
    messages = endpoint.requests[1]["body"]["messages"]
    assert messages[2]["content"] is None and messages[2]["tool_calls"][0]["id"] == "call_1_0"
    assert messages[3]["role"] == "tool" and messages[3]["tool_call_id"] == "call_1_0"
    assert messages[4]["role"] == "user"
    assert any(block["type"] == "image_url" for block in messages[4]["content"])


@pytest.mark.parametrize(
    ("content", "calls", "text"),
    [
        (
            "",
            [_call("get_frame", '{"timestamp": 12.5}')],
            '<tool_call>{"name": "get_frame", "arguments": {"timestamp": 12.5}}</tool_call>',
        ),
        (  # arguments that are not JSON reach the env unchanged (its parser explains the error)
            "<think>t</think>",
            [_call("get_frame", "{timestamp: 12.5")],
            '<think>t</think>\n<tool_call>{"name": "get_frame", "arguments": {timestamp: 12.5}</tool_call>',
        ),
        (  # two calls in one reply: the env refuses the turn ("call one tool per turn")
            "",
            [_call("get_frame", '{"timestamp": 1}'), _call("get_frame", '{"timestamp": 2}')],
            '<tool_call>{"name": "get_frame", "arguments": {"timestamp": 1}}</tool_call>\n'
            '<tool_call>{"name": "get_frame", "arguments": {"timestamp": 2}}</tool_call>',
        ),
    ],
)
def test_native_calls_map_to_the_text_protocol_exactly(content, calls, text):
    from medscope_gym.agents.openai_policy import _normalise_calls

    assert _calls_text(content, _normalise_calls(calls, 1)) == text


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"model": ""}, {"max_frames": 0}, {"timeout": 0}, {"retries": -1}, {"base_url": "file:///etc/passwd"}],
)
def test_bad_settings_are_config_errors(overrides):
    with pytest.raises(ConfigError):
        make_policy("http://127.0.0.1:1/v1", **overrides)


def test_base_url_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    policy = OpenAIChatPolicy(OpenAIPolicyConfig(model="m"))
    assert policy.client.url == "http://127.0.0.1:9/v1/chat/completions"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert OpenAIChatPolicy(OpenAIPolicyConfig(model="m")).client.url.startswith("https://api.openai.com/v1/")


# --- the command line ----------------------------------------------------------------------------


def test_medscope_eval_with_an_endpoint(serve, suite, tmp_path, capsys):
    from medscope_gym.cli import main

    endpoint = serve(crop_then_answer)
    out = tmp_path / "run"
    argv = ["eval", "--policy", "openai:served-model", "--base-url", endpoint.url, "--limit", "2"]
    argv += [
        "--num-envs",
        "2",
        "--max-frames",
        "3",
        "--temperature",
        "0.5",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("name"))
    assert header.split()[-3:] == ["prompt_tokens", "completion_tokens", "failed_requests"]
    overall = next(line for line in printed.splitlines() if line.startswith("overall")).split()
    assert overall[-3:] == ["400", "28", "0"]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["usage"]["overall"]["prompt_tokens"] == 400
    assert metrics["summary"]["overall"]["completion_tokens"] == 28
    trajs = load_trajectories(out / "trajectories")
    assert [t.policy for t in trajs] == ["openai:served-model"] * 2
    assert all(len(t.turns[0].media.video) == 3 for t in trajs)
    body = endpoint.requests[0]["body"]
    assert (body["model"], body["temperature"]) == ("served-model", 0.5)
    assert sorted(r["body"]["seed"] for r in endpoint.requests) == [0, 1, 7919, 7920]  # --seed 0


def test_medscope_play_with_an_endpoint(serve, suite, capsys):
    from medscope_gym.cli import main

    endpoint = serve(lambda body, i: Reply(ANSWER))
    argv = ["play", "--policy", "oracle,openai:served-model", "--base-url", endpoint.url, "--episodes", "2"]
    assert main([*argv, "--native-tools"]) == 0
    printed = capsys.readouterr().out
    assert f"[agent] {ANSWER}</answer>" in printed
    row = next(line for line in printed.splitlines() if line.startswith("openai:served-model")).split()
    assert row[-3:] == ["200", "14", "0"]
    assert len(endpoint.requests) == 2 and "tools" in endpoint.requests[0]["body"]
    assert "seed" not in endpoint.requests[0]["body"]  # greedy (temperature 0): no seed to send


def test_medscope_play_rejects_an_unknown_policy(capsys):
    from medscope_gym.cli import main

    assert main(["play", "--policy", "gpt-4o"]) == 2
    assert "openai:MODEL" in capsys.readouterr().err
