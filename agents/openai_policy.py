"""A policy that plays ClinVideoEnv through any OpenAI-compatible ``/v1/chat/completions`` endpoint.

GPT-4o, Gemini's OpenAI-compatible API, or a checkpoint served by vLLM / SGLang: each turn, every
running episode of the batch is sent as one chat request (a thread pool over the slots handed to
:meth:`OpenAIChatPolicy.act`), rendered by :class:`medscope_gym.chat.Transcript`: the env's system
prompt (tool schemas and reply format), then the observations with their frames as ``image_url``
blocks, each labelled with its time in seconds, and the model's earlier turns. The preview and each crop
are thinned evenly to ``max_frames`` frames before they are sent (and recorded).

Text protocol (default): generation stops at ``</tool_call>`` or ``</answer>``; the endpoint leaves the
stop string out of the reply, so when a reply ends inside an unclosed ``<tool_call>`` / ``<answer>``
block with ``finish_reason == "stop"`` its closing tag is put back. A reply cut at ``max_tokens``
(``"length"``) goes to the env as it is, and is malformed, exactly like a cut turn of a local model.

Native tool calling (``native_tools=True``, for servers that fill ``message.tool_calls``: OpenAI,
vLLM with ``--enable-auto-tool-choice``): the request carries ``tools=tool_schemas()`` and each returned
call becomes the env's text exactly, ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``,
after the reply's text unchanged. Nothing is invented: a call without ``<think>`` reasoning before it, two
calls in one reply, or arguments that are not JSON reach the env as such, and the episode's format
verdict (``final_info["format"]["reason"]``, e.g. ``turn 1: expected <think> before <tool_call>``)
says why the format reward was lost. Later requests render those turns as ``tool_calls`` with
``role: "tool"`` results (frames follow in a user message: tool messages carry text only).

Failed requests. Time-outs, network errors, HTTP 408/409/429/5xx and malformed bodies are retried
with exponential back-off; other 4xx fail at once. A request that fails for good becomes a turn whose
text is :data:`REQUEST_FAILED` followed by the error: protocol-invalid, so the env answers with an error
observation, the format reward is lost and the episode goes on (a later turn may still answer; the
turn budget bounds the cost). Its :class:`~medscope_gym.agents.rollout.trajectory.TurnRecord` has
``finish="error"`` and ``imitate=False``, and :meth:`OpenAIChatPolicy.usage` counts it. The policy
never ends an episode by itself: the engine has no way to stop one but an answer, and an invented answer
would be scored as the model's. HTTP 401/403/404 (wrong key, no access, unknown model or URL) fail
every request alike, so they raise :class:`EndpointConfigError` at once instead.

The API key is read from the environment variable ``api_key_env`` (default ``OPENAI_API_KEY``; unset:
no ``Authorization`` header, as a local vLLM expects) and only sent in that header: it is in no config,
trajectory, error message or log.

The policy hands the engine its own turn records (``records_turns``): text turns, no token ids, with
the finish reason, the observation text and the frames sent.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.rollout.trajectory import MediaInputs, TurnRecord
from medscope_gym.chat import Transcript
from medscope_gym.errors import ConfigError
from medscope_gym.openai_client import ChatClient, ChatReply, EndpointError, redact_url
from medscope_gym.protocol import MAX_ACTION_CHARS, SYSTEM_PROMPT, format_tool_call, tool_schemas
from medscope_gym.suite import Sample

__all__ = [
    "DEFAULT_BASE_URL",
    "FATAL_STATUS",
    "REQUEST_FAILED",
    "EndpointConfigError",
    "OpenAIChatPolicy",
    "OpenAIPolicyConfig",
]

#: Where requests go when neither ``base_url`` nor ``$OPENAI_BASE_URL`` is set.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Start of the text of a turn whose request failed for good (protocol-invalid on purpose).
REQUEST_FAILED = "[request failed]"
#: HTTP statuses no request of the run can get past: they stop the run (EndpointConfigError).
FATAL_STATUS = frozenset({401, 403, 404})
_TEXT_STOP = ("</tool_call>", "</answer>")
_NATIVE_STOP = ("</answer>",)
_ACTION_TAG = re.compile(r"<(/?)(tool_call|answer)>")
_USAGE_KEYS = (
    "episodes",
    "requests",
    "attempts",
    "failed_requests",
    "prompt_tokens",
    "completion_tokens",
    "unreported_usage",
)


class EndpointConfigError(ConfigError):
    """The endpoint refused a request in a way no retry or later request can fix (HTTP 401/403/404)."""


@dataclass
class OpenAIPolicyConfig:
    """How :class:`OpenAIChatPolicy` reaches its endpoint, renders episodes and samples turns."""

    model: str
    """The model name the endpoint serves (vLLM: the path given to ``vllm serve`` or its
    ``--served-model-name``)."""
    base_url: str | None = None
    """The API root, e.g. ``http://127.0.0.1:8000/v1`` (None: ``$OPENAI_BASE_URL``, else OpenAI's)."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key (unset or None: no Authorization header)."""
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    """Longest turn in tokens; a turn cut here is sent to the env as it is (and is malformed)."""
    stop: tuple[str, ...] | None = None
    """Stop strings (None: ``</tool_call>``, ``</answer>``; with native tools only ``</answer>``)."""
    seed: int | None = None
    """Sent as each request's ``seed``, varied per episode and turn, when sampling (temperature > 0);
    None: never sent."""
    max_frames: int = 32
    """Frames sent of the preview and of each crop (evenly thinned); get_frame images are all sent."""
    jpeg_quality: int = 85
    image_detail: str | None = None
    """OpenAI's ``image_url.detail`` ("low", "high", "auto"); None leaves it out."""
    system_prompt: str | None = None
    """None: the protocol's SYSTEM_PROMPT (tool schemas and reply format)."""
    native_tools: bool = False
    """Send ``tools=tool_schemas()`` and map the returned ``tool_calls`` back to the text protocol."""
    timeout: float = 120.0
    """Seconds to connect and for each read of the reply."""
    retries: int = 3
    """Attempts after the first for retryable failures."""
    backoff: float = 2.0
    """Seconds before the first retry; doubled before each next one."""
    concurrency: int = 8
    """Requests in flight at once (one per running episode, at most this many)."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Merged into every request body (e.g. ``{"top_k": 20}`` for vLLM, ``max_completion_tokens``)."""

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("the endpoint policy needs a model name (openai:MODEL)")
        if self.max_frames < 1 or self.max_tokens < 1 or self.concurrency < 1:
            raise ConfigError("max_frames, max_tokens and concurrency must be at least 1")
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise ConfigError("need timeout > 0, retries >= 0 and backoff >= 0")
        if self.stop is not None:
            self.stop = tuple(self.stop)

    def resolved_base_url(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


@dataclass
class _Episode:
    transcript: Transcript
    task: str
    index: int
    turns: list[TurnRecord] = field(default_factory=list)
    native: dict[int, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    """Transcript index of each assistant turn that came as native tool calls -> (content, calls)."""
    pending: tuple[str, MediaInputs] | None = None
    """The observation fed before the next turn (its text and the frames sent)."""


@dataclass
class _Outcome:
    text: str
    finish: str
    reply: ChatReply | None = None
    error: EndpointError | None = None
    calls: list[dict[str, Any]] | None = None


class OpenAIChatPolicy(Policy):
    """Plays episodes through an OpenAI-compatible chat endpoint (see the module docstring)."""

    name = "openai"
    records_turns = True
    """Hands over its own turn records (text only, no token ids) with finish reasons and frames."""

    def __init__(self, config: OpenAIPolicyConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.base_url = config.resolved_base_url()
        api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        try:
            self.client = ChatClient(
                self.base_url, api_key, config.timeout, config.retries, config.backoff, sleep=sleep
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.system_prompt = config.system_prompt if config.system_prompt is not None else SYSTEM_PROMPT
        self.stop = (
            config.stop if config.stop is not None else (_NATIVE_STOP if config.native_tools else _TEXT_STOP)
        )
        self._episodes: dict[int, _Episode] = {}
        self._usage: dict[str, dict[str, int]] = {}
        self._started = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIChatPolicy(model={self.config.model!r}, client={self.client!r})"

    @property
    def label(self) -> str:
        return f"openai:{self.config.model}"

    def sampling_settings(self) -> dict[str, Any]:
        settings = asdict(self.config)
        settings["base_url"] = redact_url(self.base_url)
        settings["stop"] = list(self.stop)
        settings.pop("system_prompt")
        return settings

    # ------------------------------------------------------------------ episodes
    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        ep = _Episode(Transcript(system_prompt=self.system_prompt), str(info.get("task", "")), self._started)
        self._started += 1
        self._observe(ep, obs)
        self._episodes[slot] = ep
        self._count(ep.task, episodes=1)

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        episodes = []
        for slot, obs in zip(slots, observations):
            ep = self._episodes[slot]
            if ep.pending is None:  # the env's reply to the previous turn
                self._observe(ep, obs)
            episodes.append(ep)
        workers = min(len(episodes), self.config.concurrency)
        if workers <= 1:
            outcomes = [self._play_turn(ep) for ep in episodes]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="medscope-endpoint") as pool:
                outcomes = list(pool.map(self._play_turn, episodes))
        texts = []
        for ep, out in zip(episodes, outcomes):
            self._record(ep, out)
            texts.append(out.text)
        fatal = next(
            (o.error for o in outcomes if o.error is not None and o.error.status in FATAL_STATUS), None
        )
        if fatal is not None:
            hint = f" (the key is read from ${self.config.api_key_env})" if fatal.status in (401, 403) else ""
            raise EndpointConfigError(
                f"{redact_url(self.client.url)} refused the request for model {self.config.model!r}: "
                f"{fatal}{hint}"
            )
        return texts

    def take_turns(self, slot: int) -> list[TurnRecord]:
        """The finished episode's turns (text, finish reason, frames sent); the slot is freed."""
        return self._episodes.pop(slot).turns

    def imitate_last(self, slot: int) -> bool:
        """False right after a failed request (its marker text must never be learnt)."""
        turns = self._episodes[slot].turns
        return not turns or turns[-1].finish != "error"

    def usage(self) -> dict[str, dict[str, int]]:
        """Counts per task and ``overall``: episodes, requests, attempts, failed_requests, and the
        ``prompt_tokens`` / ``completion_tokens`` the endpoint reported (``unreported_usage``: replies
        without a usage object)."""
        with self._lock:
            rows = {task: dict(row) for task, row in sorted(self._usage.items())}
        overall = {key: sum(row[key] for row in rows.values()) for key in _USAGE_KEYS}
        return {"overall": overall, **rows}

    # ------------------------------------------------------------------ internals
    def _observe(self, ep: _Episode, obs: dict[str, Any]) -> None:
        obs = dict(obs)
        video = obs.get("video")
        if video is not None and len(video):
            times = np.asarray(obs.get("video_times"), dtype=np.float64).reshape(-1)
            keep = np.arange(len(video))
            if len(video) > self.config.max_frames:
                keep = np.unique(np.linspace(0, len(video) - 1, self.config.max_frames).round().astype(int))
            obs["video"], obs["video_times"] = np.array(video[keep]), times[keep]
        images = obs.get("images")
        if images is not None and len(images):
            obs["images"] = np.array(images)
            obs["image_times"] = np.asarray(obs.get("image_times"), dtype=np.float64).reshape(-1).copy()
        ep.transcript.add_observation(obs)
        turn = ep.transcript.turns[-1]
        media = MediaInputs(turn.video, turn.video_times, turn.images, turn.image_times)
        ep.pending = (turn.text, media)

    def _body(self, ep: _Episode) -> dict[str, Any]:
        cfg = self.config
        messages = ep.transcript.to_openai_messages(
            max_video_frames=cfg.max_frames, jpeg_quality=cfg.jpeg_quality
        )
        if cfg.image_detail is not None:
            for message in messages:
                for block in message["content"] if isinstance(message["content"], list) else ():
                    if block.get("type") == "image_url":
                        block["image_url"]["detail"] = cfg.image_detail
        if cfg.native_tools and ep.native:
            messages = _native_messages(messages, ep)
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": messages,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_tokens": cfg.max_tokens,
        }
        if self.stop:
            body["stop"] = list(self.stop)
        if cfg.seed is not None and cfg.temperature > 0:
            body["seed"] = (cfg.seed + 7919 * ep.index + len(ep.turns)) % 2**31
        if cfg.native_tools:
            body["tools"] = tool_schemas()
            body["tool_choice"] = "auto"
        body.update(cfg.extra_body)
        return body

    def _play_turn(self, ep: _Episode) -> _Outcome:
        """One request (runs in a worker thread; touches only its own episode)."""
        try:
            reply = self.client.complete(self._body(ep))
        except EndpointError as err:
            detail = _no_tags(f"{err} (after {err.attempts} attempt(s))")
            return _Outcome(f"{REQUEST_FAILED} {detail}"[: MAX_ACTION_CHARS // 4], "error", error=err)
        calls = _normalise_calls(reply.tool_calls, len(ep.transcript.turns))
        if calls:
            return _Outcome(_calls_text(reply.content, calls), "tool_calls", reply, calls=calls)
        finish = reply.finish_reason or "stop"
        text = _close_cut_tag(reply.content) if finish == "stop" else reply.content
        return _Outcome(text, finish, reply)

    def _record(self, ep: _Episode, out: _Outcome) -> None:
        observation_text, media = ep.pending if ep.pending is not None else ("", MediaInputs())
        ep.pending = None
        if out.calls:
            ep.native[len(ep.transcript.turns)] = (out.reply.content if out.reply else "", out.calls)
        ep.transcript.add_action(out.text)
        ep.turns.append(
            TurnRecord(
                observation_text=observation_text,
                action_text=out.text,
                finish=out.finish,
                media=media,
                imitate=out.error is None,
            )
        )
        if out.error is not None:
            self._count(ep.task, requests=1, attempts=out.error.attempts, failed_requests=1)
            return
        assert out.reply is not None
        prompt, completion = out.reply.tokens("prompt_tokens"), out.reply.tokens("completion_tokens")
        self._count(
            ep.task,
            requests=1,
            attempts=out.reply.attempts,
            prompt_tokens=prompt or 0,
            completion_tokens=completion or 0,
            unreported_usage=int(prompt is None or completion is None),
        )

    def _count(self, task: str, **amounts: int) -> None:
        with self._lock:
            row = self._usage.setdefault(task, dict.fromkeys(_USAGE_KEYS, 0))
            for key, amount in amounts.items():
                row[key] += amount


def _no_tags(text: str) -> str:
    """Error text made safe to send as a turn: no protocol tags can survive, one line."""
    return " ".join(text.replace("<", "(").replace(">", ")").split())


def _close_cut_tag(text: str) -> str:
    """Put back the closing tag the endpoint dropped with the stop string (only if a block is left open)."""
    open_tag = None
    for m in _ACTION_TAG.finditer(text):
        open_tag = None if m.group(1) else m.group(2)
    return f"{text}</{open_tag}>" if open_tag else text


def _normalise_calls(calls: list[dict[str, Any]], turn_index: int) -> list[dict[str, Any]]:
    """The reply's tool calls in request form (ids filled in, arguments as a JSON string)."""
    out = []
    for k, call in enumerate(calls):
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
        out.append(
            {
                "id": str(call.get("id") or f"call_{turn_index}_{k}"),
                "type": "function",
                "function": {"name": function.get("name"), "arguments": arguments},
            }
        )
    return out


def _calls_text(content: str, calls: list[dict[str, Any]]) -> str:
    """The env's text for a reply with native tool calls: the reply's text, then one block per call."""
    blocks = [_call_block(call["function"]["name"], call["function"]["arguments"]) for call in calls]
    prefix = content.strip()
    return "\n".join([prefix, *blocks] if prefix else blocks)


def _call_block(name: Any, arguments: str) -> str:
    try:
        parsed = json.loads(arguments)
        if isinstance(name, str) and isinstance(parsed, dict):
            return format_tool_call(name, parsed)
    except ValueError:  # not JSON, or a non-finite number: pass the server's text through unchanged
        pass
    return (
        f'<tool_call>{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {arguments}}}</tool_call>'
    )


def _native_messages(messages: list[dict[str, Any]], ep: _Episode) -> list[dict[str, Any]]:
    """Rewrite turns that came as native tool calls: ``tool_calls`` + ``role: "tool"`` results.

    ``messages[i + 1]`` renders transcript turn ``i``. A tool message holds text only, so the frames of
    the result follow in a user message.
    """
    out = [messages[0]]
    open_calls: list[dict[str, Any]] | None = None
    for i, message in enumerate(messages[1:]):
        if i in ep.native:
            content, calls = ep.native[i]
            out.append({"role": "assistant", "content": content or None, "tool_calls": calls})
            open_calls = calls
        elif open_calls is not None:
            text = ep.transcript.turns[i].text
            out += [{"role": "tool", "tool_call_id": call["id"], "content": text} for call in open_calls]
            frames = message["content"][:-1]
            if frames:
                out.append(
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "Frames returned by the tool:"}, *frames],
                    }
                )
            open_calls = None
        else:
            out.append(message)
    return out
