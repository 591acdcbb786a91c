"""Answer judges: choice normalisation, interval IoU, lexical and HTTP judges, dispatch."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from medscope_gym.judges import (
    AnswerJudge,
    JudgeResult,
    LexicalJudge,
    OpenAIChatJudge,
    judge_choice,
    judge_interval,
    normalise_choice,
    score_answer,
)
from medscope_gym.openai_client import ChatClient, ChatReply, EndpointError, RetryableReply, redact_url
from medscope_gym.protocol import MAX_ANSWER_CHARS

OPTIONS = ("Grasper", "Hook", "Clipper", "Specimen bag")


# --- normalise_choice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("B", 1),
        ("b", 1),
        ("(B)", 1),
        ("B.", 1),
        ("B:", 1),
        ("B)", 1),
        ("  C  ", 2),
        ("B) Hook", 1),
        ("B. hook", 1),
        ("(B) the hook", 1),
        ("B) something else entirely", 1),
        ("Option B", 1),
        ("option d", 3),
        ("The answer is B", 1),
        ("The correct answer is (C).", 2),
        ("answer: a", 0),
        ("Hook", 1),
        ("  hook. ", 1),
        ("SPECIMEN   BAG!", 3),
        ("specimen-bag", 3),
        ("The answer is clipper", 2),
    ],
)
def test_normalise_choice_accepts(prediction: str, expected: int) -> None:
    assert normalise_choice(prediction, OPTIONS) == expected


@pytest.mark.parametrize(
    "prediction",
    [
        "",
        "   ",
        "E",  # out of range for four options
        "Option E",
        "B. Clipper",  # letter and text disagree
        "Option B or option C",
        "the answer is a grasper",  # article, not option A
        "scalpel",
        "Hook or clipper",
        "B C",
    ],
)
def test_normalise_choice_rejects(prediction: str) -> None:
    assert normalise_choice(prediction, OPTIONS) is None


def test_normalise_choice_duplicate_option_texts_are_ambiguous() -> None:
    assert normalise_choice("hook", ("Hook", "hook.", "Clipper")) is None
    assert normalise_choice("C", ("Hook", "hook.", "Clipper")) == 2


def test_normalise_choice_non_ascii_option() -> None:
    assert normalise_choice("电钩", ("抓钳", "电钩")) == 1
    assert normalise_choice("B. 电钩", ("抓钳", "电钩")) == 1


@pytest.mark.parametrize("bad", [None, 3, b"B"])
def test_normalise_choice_non_text_is_none(bad: object) -> None:
    assert normalise_choice(bad, OPTIONS) is None  # type: ignore[arg-type]


# --- judge_choice / judge_interval --------------------------------------------------------------


def test_judge_choice_scores() -> None:
    assert judge_choice("B", OPTIONS, "B") == JudgeResult(1.0, "correct option B")
    assert judge_choice("hook", OPTIONS, "b").score == 1.0
    wrong = judge_choice("C", OPTIONS, "B")
    assert wrong.score == 0.0 and not wrong.failed and "C" in wrong.reason
    unmatched = judge_choice("no idea", OPTIONS, "B")
    assert unmatched.score == 0.0 and not unmatched.failed


@pytest.mark.parametrize("reference", ["Z", "", "Hook", "BB"])
def test_judge_choice_bad_reference_is_recorded_failure(reference: str) -> None:
    result = judge_choice("B", OPTIONS, reference)
    assert result.score == 0.0 and result.failed


def test_judge_choice_without_options_fails() -> None:
    assert judge_choice("B", (), "B").failed


@pytest.mark.parametrize(
    ("prediction", "score"),
    [
        ("[10, 20]", 1.0),
        ("[10, 15]", 0.5),
        ("15-25", 1 / 3),
        ("[0, 5]", 0.0),
        ("12 s to 20 s", 0.8),
    ],
)
def test_judge_interval_is_iou(prediction: str, score: float) -> None:
    result = judge_interval(prediction, (10.0, 20.0))
    assert result.score == pytest.approx(score)
    assert not result.failed


@pytest.mark.parametrize("prediction", ["soon", "[20, 10]", "[nan, 3]", "", "[1, 2, 3]"])
def test_judge_interval_unparseable_is_zero_with_reason(prediction: str) -> None:
    result = judge_interval(prediction, (10.0, 20.0))
    assert result.score == 0.0 and "interval" in result.reason and not result.failed


# --- LexicalJudge -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "prediction", "score"),
    [
        ("The gallbladder is retracted.", "the gallbladder is retracted", 1.0),
        ("The gallbladder is retracted.", "Gallbladder retracted!", 1.0),  # stop words dropped
        ("bleeding from the cystic artery", "bleeding from cystic artery controlled", 1.0),  # F1 6/7
        ("bleeding from the cystic artery", "bleeding near the liver", 0.0),  # F1 1/3
        ("bleeding from the cystic artery", "liver bleeding", 0.5),  # F1 0.4 exactly
        ("clip applied cystic duct now", "clip applied cystic duct later", 1.0),  # F1 0.8 exactly
        ("clip applied cystic duct now", "clip applied cystic duct later too", 0.5),  # F1 8/11
        ("clip applied to the cystic duct", "clip applied", 0.5),  # F1 2/3
        ("clip applied to the cystic duct", "the hook cauterises tissue", 0.0),
        ("clip applied to the cystic duct", "", 0.0),
        ("", "anything", 0.0),
        ("胆囊 切除", "胆囊 切除", 1.0),
    ],
)
def test_lexical_judge(reference: str, prediction: str, score: float) -> None:
    result = LexicalJudge()("q", reference, prediction)
    assert result.score == score, result.reason
    assert not result.failed


def test_lexical_judge_thresholds_are_configurable() -> None:
    strict = LexicalJudge(full_threshold=1.0, half_threshold=0.9)
    assert strict("q", "clip applied to the cystic duct", "clip applied").score == 0.0
    loose = LexicalJudge(full_threshold=0.5, half_threshold=0.1)
    assert loose("q", "clip applied to the cystic duct", "clip applied").score == 1.0


def test_lexical_judge_counts_repeated_tokens_once_each() -> None:
    # "clip clip clip" shares one "clip" with the reference: precision 1/3, recall 1/2 → F1 0.4.
    assert LexicalJudge()("q", "clip applied", "clip clip clip").score == 0.5


@pytest.mark.parametrize(("full", "half"), [(0.3, 0.5), (1.5, 0.5), (0.8, -0.1)])
def test_lexical_judge_rejects_bad_thresholds(full: float, half: float) -> None:
    with pytest.raises(ValueError):
        LexicalJudge(full_threshold=full, half_threshold=half)


def test_lexical_judge_satisfies_protocol() -> None:
    judge: AnswerJudge = LexicalJudge()
    assert isinstance(judge("q", "a b", "a b"), JudgeResult)


# --- OpenAIChatJudge against a local server -----------------------------------------------------


@dataclass
class _Script:
    """Responses the fake endpoint gives, in order; the last one repeats."""

    responses: list[tuple[int, str]]
    requests: list[dict]
    headers: list[dict]


@pytest.fixture
def fake_endpoint() -> Iterator[tuple[str, _Script]]:
    script = _Script(responses=[], requests=[], headers=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length", "0"))
            script.requests.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
            script.headers.append(dict(self.headers))
            index = min(len(script.requests) - 1, len(script.responses) - 1)
            status, content = script.responses[index]
            if status == 200:
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
            else:
                payload = json.dumps({"error": content})
            data = payload.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the test log
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/", script
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _judge(url: str, sleeps: list[float] | None = None, **kwargs: object) -> OpenAIChatJudge:
    record = sleeps if sleeps is not None else []
    return OpenAIChatJudge(url, "judge-model", timeout=5.0, backoff=0.5, sleep=record.append, **kwargs)


def test_chat_judge_good_reply(fake_endpoint: tuple[str, _Script]) -> None:
    url, script = fake_endpoint
    script.responses = [(200, "0.5")]
    judge = _judge(url, api_key="sk-test")
    result = judge("What happens at 87 s?", "the cystic duct is clipped", "a clip is applied")
    assert result == JudgeResult(0.5, "LLM judge verdict 0.5")
    assert judge.last_attempts == 1
    assert len(script.requests) == 1
    request = script.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "judge-model"
    user = request["body"]["messages"][-1]["content"]
    assert "the cystic duct is clipped" in user and "a clip is applied" in user and "87 s" in user
    assert script.headers[0]["Authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(
    ("content", "score"),
    [("1", 1.0), ("Score: 0", 0.0), ("10 is too high; I'd say 1", 1.0), ("0.50", 0.5), ("1.0\n", 1.0)],
)
def test_chat_judge_parses_first_valid_number(
    fake_endpoint: tuple[str, _Script], content: str, score: float
) -> None:
    url, script = fake_endpoint
    script.responses = [(200, content)]
    assert _judge(url)("q", "r", "p").score == score


def test_chat_judge_retries_after_server_error(fake_endpoint: tuple[str, _Script]) -> None:
    url, script = fake_endpoint
    script.responses = [(500, "boom"), (200, "1")]
    sleeps: list[float] = []
    judge = _judge(url, sleeps)
    result = judge("q", "r", "p")
    assert result.score == 1.0 and not result.failed
    assert judge.last_attempts == 2 and len(script.requests) == 2
    assert sleeps == [0.5]
    assert "Authorization" not in script.headers[0]


def test_chat_judge_retries_unparseable_reply(fake_endpoint: tuple[str, _Script]) -> None:
    url, script = fake_endpoint
    script.responses = [(200, "I cannot decide"), (200, "0")]
    result = _judge(url)("q", "r", "p")
    assert result == JudgeResult(0.0, "LLM judge verdict 0")
    assert len(script.requests) == 2


def test_chat_judge_permanent_failure_is_recorded(fake_endpoint: tuple[str, _Script]) -> None:
    url, script = fake_endpoint
    script.responses = [(503, "down")]
    sleeps: list[float] = []
    judge = _judge(url, sleeps, retries=3)
    result = judge("q", "r", "p")
    assert result.failed and result.score == 0.0
    assert "4 attempt(s)" in result.reason and "HTTP 503" in result.reason
    assert judge.last_attempts == 4 and len(script.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]  # exponential backoff


def test_chat_judge_client_error_is_not_retried(fake_endpoint: tuple[str, _Script]) -> None:
    url, script = fake_endpoint
    script.responses = [(401, "bad key")]
    result = _judge(url)("q", "r", "p")
    assert result.failed and "HTTP 401" in result.reason
    assert len(script.requests) == 1


def _refused_port() -> int:
    """A port that was bound and released, so connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chat_judge_unreachable_server_fails_after_retries() -> None:
    url = f"http://127.0.0.1:{_refused_port()}/v1"
    judge = OpenAIChatJudge(url, "m", timeout=2.0, retries=2, sleep=lambda s: None)
    result = judge("q", "r", "p")
    assert result.failed and result.score == 0.0
    assert judge.last_attempts == 3 and "network error" in result.reason


@pytest.mark.parametrize(
    "kwargs",
    [{"base_url": "file:///etc/passwd"}, {"retries": -1}, {"timeout": 0}, {"backoff": -1.0}],
)
def test_chat_judge_rejects_bad_settings(kwargs: dict) -> None:
    args = {"base_url": "http://127.0.0.1:1/v1", "model": "m", **kwargs}
    with pytest.raises(ValueError):
        OpenAIChatJudge(**args)


# --- the shared client (medscope_gym.openai_client) --------------------------------------------


def test_client_returns_reply_usage_and_attempts(fake_endpoint: tuple[str, _Script]) -> None:
    url, script = fake_endpoint
    script.responses = [(502, "bad gateway"), (200, "hello")]
    sleeps: list[float] = []
    client = ChatClient(url, api_key="sk-secret", timeout=2.0, retries=2, backoff=0.25, sleep=sleeps.append)
    reply = client.complete({"model": "m", "messages": []})
    assert (reply.content, reply.attempts, reply.tool_calls) == ("hello", 2, [])
    assert reply.usage is None and reply.tokens("prompt_tokens") is None
    assert sleeps == [0.25]
    assert "sk-secret" not in repr(client) and "api_key=set" in repr(client)


def test_client_error_names_the_server_message(fake_endpoint: tuple[str, _Script]) -> None:
    url, script = fake_endpoint
    script.responses = [(400, "context too long")]
    client = ChatClient(url, timeout=2.0, retries=3, sleep=lambda s: None)
    with pytest.raises(EndpointError) as caught:
        client.complete({"model": "m", "messages": []})
    assert str(caught.value) == "HTTP 400: context too long"
    assert (caught.value.status, caught.value.attempts) == (400, 1)


def test_client_check_can_ask_for_another_attempt(fake_endpoint: tuple[str, _Script]) -> None:
    url, script = fake_endpoint
    script.responses = [(200, "no"), (200, "yes")]

    def check(reply: ChatReply) -> None:
        if reply.content != "yes":
            raise RetryableReply(f"unusable reply {reply.content!r}")

    client = ChatClient(url, timeout=2.0, retries=1, sleep=lambda s: None)
    assert client.complete({"messages": []}, check=check).attempts == 2
    script.requests.clear()
    script.responses = [(200, "no")]
    with pytest.raises(EndpointError, match="unusable reply 'no'") as caught:
        client.complete({"messages": []}, check=check)
    assert caught.value.attempts == 2


def test_client_time_out_is_retried_and_named() -> None:
    """A server that accepts the connection but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        client = ChatClient(url, timeout=0.2, retries=1, sleep=lambda s: None)
        with pytest.raises(EndpointError, match=r"timed out after 0.2 s") as caught:
            client.complete({"messages": []})
    assert caught.value.attempts == 2 and caught.value.status is None


def test_redact_url_drops_credentials() -> None:
    assert redact_url("https://user:pw@host.example:8443/v1") == "https://host.example:8443/v1"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


# --- score_answer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    question: str
    options: tuple[str, ...] | None
    answer: str
    answer_type: str


CHOICE = Sample("Which instrument?", OPTIONS, "C", "choice")
INTERVAL = Sample("When is the duct clipped?", None, "[10, 20]", "interval")
TEXT = Sample("What happens?", None, "the cystic duct is clipped", "text")


@pytest.mark.parametrize(
    ("sample", "prediction", "score"),
    [
        (CHOICE, "C", 1.0),
        (CHOICE, "clipper", 1.0),
        (CHOICE, "B", 0.0),
        (INTERVAL, "[10, 15]", 0.5),
        (INTERVAL, "[10.0, 20.0]", 1.0),
        (INTERVAL, "early on", 0.0),
        (TEXT, "The cystic duct is clipped.", 1.0),
        (TEXT, "the liver bleeds", 0.0),
    ],
)
def test_score_answer_dispatches(sample: Sample, prediction: str, score: float) -> None:
    result = score_answer(sample, prediction)
    assert result.score == pytest.approx(score) and not result.failed


def test_score_answer_uses_given_text_judge() -> None:
    calls: list[tuple[str, str, str]] = []

    def judge(question: str, reference: str, prediction: str) -> JudgeResult:
        calls.append((question, reference, prediction))
        return JudgeResult(0.5, "stub")

    assert score_answer(TEXT, "x", text_judge=judge) == JudgeResult(0.5, "stub")
    assert calls == [("What happens?", "the cystic duct is clipped", "x")]
    score_answer(CHOICE, "C", text_judge=judge)
    assert len(calls) == 1  # not used for choice questions


@pytest.mark.parametrize("sample", [CHOICE, INTERVAL, TEXT])
def test_score_answer_too_long_scores_zero(sample: Sample) -> None:
    prediction = sample.answer + " " * (MAX_ANSWER_CHARS - len(sample.answer))
    assert len(prediction) == MAX_ANSWER_CHARS
    assert score_answer(sample, prediction) == JudgeResult(0.0, "answer too long")
    shorter = score_answer(sample, prediction[:-1])  # 999 characters is still judged
    assert shorter.reason != "answer too long"
    if sample.answer_type != "interval":  # parse_interval caps its input length itself
        assert shorter.score == 1.0


def test_score_answer_failures_are_recorded_not_raised() -> None:
    assert score_answer(Sample("q", None, "B", "choice"), "B").failed
    assert score_answer(Sample("q", None, "soon", "interval"), "[1, 2]").failed
    assert score_answer(Sample("q", None, "x", "essay"), "x").failed

    def broken(question: str, reference: str, prediction: str) -> JudgeResult:
        raise RuntimeError("judge crashed")

    result = score_answer(TEXT, "x", text_judge=broken)
    assert result.failed and "judge crashed" in result.reason
    assert score_answer(object(), "x").failed


def test_score_answer_non_text_prediction() -> None:
    result = score_answer(CHOICE, None)  # type: ignore[arg-type]
    assert result.score == 0.0 and not result.failed
