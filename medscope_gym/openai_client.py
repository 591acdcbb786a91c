"""A small client for OpenAI-compatible ``/chat/completions`` endpoints (standard library only).

Shared by the free-text answer judge (:class:`medscope_gym.judges.OpenAIChatJudge`) and the endpoint
policy (:class:`medscope_gym.agents.openai_policy.OpenAIChatPolicy`). One :meth:`ChatClient.complete`
call is one logical request: network errors, time-outs, HTTP 408/409/429/5xx and unreadable bodies are
retried with exponential back-off (``backoff * 2**k`` seconds before retry ``k + 1``); other HTTP errors
(400, 401, 404, ...) fail at once, since sending the same request again cannot help. The caller may also
ask for another attempt when a well-formed reply is unusable (``check`` raising :class:`RetryableReply`).

The API key travels only in the ``Authorization`` header: it is never part of an error message, a
``repr`` or anything a caller records.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RETRYABLE_STATUS", "ChatClient", "ChatReply", "EndpointError", "RetryableReply", "redact_url"]

#: HTTP statuses worth retrying: time-out, conflict, rate limit (any 5xx is retried too).
RETRYABLE_STATUS = frozenset({408, 409, 429})
#: Longest excerpt of a server's error body kept in an error message.
_BODY_EXCERPT = 300


class EndpointError(Exception):
    """One request failed for good: ``attempts`` made, the last ``status`` (None: no HTTP reply)."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class RetryableReply(Exception):
    """Raised by a ``check`` on a reply that arrived but cannot be used (try again)."""


class _Retry(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChatReply:
    """The first choice of a chat completion, its token usage and how many attempts it took."""

    message: dict[str, Any]
    """``choices[0].message``: ``content`` (str or None) and, with native tool calling, ``tool_calls``."""
    finish_reason: str | None
    usage: dict[str, Any] | None
    """The endpoint's ``usage`` object (``prompt_tokens``, ``completion_tokens``), None when absent."""
    attempts: int = 1
    body: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def content(self) -> str:
        """The reply text ("" when the model only called tools); text parts of a list are joined."""
        content = self.message.get("content")
        if content is None:
            return ""
        if isinstance(content, list):  # some servers return content parts
            return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return str(content)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        calls = self.message.get("tool_calls")
        return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []

    def tokens(self, key: str) -> int | None:
        """``usage[key]`` as an int (None when the endpoint did not report it)."""
        value = (self.usage or {}).get(key)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part (safe to record)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class ChatClient:
    """POSTs chat-completion bodies to ``{base_url}/chat/completions`` with time-outs and retries.

    ``retries`` counts the attempts after the first; ``timeout`` (seconds) bounds connecting and each
    read of the socket. Thread-safe: concurrent :meth:`complete` calls share nothing but settings.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError("need retries >= 0, timeout > 0 and backoff >= 0")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {redact_url(base_url)!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key or None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep

    def __repr__(self) -> str:  # never shows the key
        key = "set" if self._api_key else "none"
        url = redact_url(self.url)
        return f"ChatClient(url={url!r}, api_key={key}, timeout={self.timeout}, retries={self.retries})"

    def _request(self, body: dict[str, Any]) -> urllib.request.Request:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return urllib.request.Request(self.url, data=data, headers=headers, method="POST")

    def _attempt(self, request: urllib.request.Request) -> ChatReply:
        try:
            # the scheme is checked in __init__, so this cannot open local files
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            message = f"HTTP {err.code}{_error_excerpt(err)}"
            if err.code in RETRYABLE_STATUS or err.code >= 500:
                raise _Retry(message, err.code) from err
            raise EndpointError(message, status=err.code) from err
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(err, TimeoutError) or isinstance(reason, TimeoutError):
                raise _Retry(f"timed out after {self.timeout:g} s") from err
            raise _Retry(f"network error: {reason}") from err
        try:
            body = json.loads(raw)
            choice = body["choices"][0]
            message = choice["message"]
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            shown = raw[:80].decode("utf-8", errors="replace")
            raise _Retry(f"malformed response body ({type(err).__name__}): {shown!r}", 200) from err
        usage = body.get("usage")
        return ChatReply(
            message=message,
            finish_reason=choice.get("finish_reason"),
            usage=usage if isinstance(usage, dict) else None,
            body=body,
        )

    def complete(self, body: dict[str, Any], check: Callable[[ChatReply], None] | None = None) -> ChatReply:
        """Send ``body``; the first usable reply, or :class:`EndpointError` after the last attempt.

        ``check`` may raise :class:`RetryableReply` to reject a reply and try again.
        """
        request = self._request(body)
        last, status = "no attempt made", None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            try:
                reply = self._attempt(request)
                if check is not None:
                    check(reply)
            except _Retry as err:
                last, status = str(err), err.status
                continue
            except RetryableReply as err:
                last, status = str(err), 200
                continue
            except EndpointError as err:
                err.attempts = attempt + 1
                raise
            return ChatReply(reply.message, reply.finish_reason, reply.usage, attempt + 1, reply.body)
        raise EndpointError(last, status=status, attempts=self.retries + 1)


def _error_excerpt(err: urllib.error.HTTPError) -> str:
    """The server's error message from an HTTP error body, as ": <message>" ("" when there is none)."""
    try:
        raw = err.read(4096)
    except Exception:  # noqa: BLE001 - the status alone must still come through
        return ""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
        detail = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        text = detail if isinstance(detail, str) else json.dumps(detail)
    except ValueError:
        pass
    text = " ".join(text.split())
    if not text:
        return ""
    return ": " + (text if len(text) <= _BODY_EXCERPT else text[:_BODY_EXCERPT] + "...")
