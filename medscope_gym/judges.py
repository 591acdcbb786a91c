"""Answer judges: the accuracy part of the reward (R_acc).

Multiple choice and interval answers have exact judges. Free-text answers need a pluggable judge: an
offline lexical one by default (deterministic, no network, good enough for synthetic suites) and one that
asks an OpenAI-compatible chat endpoint, as the paper did. A judge that cannot reach a verdict returns
``failed=True`` so a training loop can tell "wrong answer" from "no verdict" instead of learning from a
silent zero.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from medscope_gym.intervals import Interval, parse_interval, temporal_iou
from medscope_gym.openai_client import ChatClient, ChatReply, EndpointError, RetryableReply
from medscope_gym.protocol import MAX_ANSWER_CHARS

__all__ = [
    "AnswerJudge",
    "JudgeResult",
    "LexicalJudge",
    "OpenAIChatJudge",
    "judge_choice",
    "judge_interval",
    "normalise_choice",
    "score_answer",
]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class JudgeResult:
    """A score in [0, 1], why, and whether the judge failed to reach a verdict."""

    score: float
    reason: str
    failed: bool = False


class AnswerJudge(Protocol):
    """Anything that scores a free-text prediction against a reference answer."""

    def __call__(self, question: str, reference: str, prediction: str) -> JudgeResult: ...


def _normalise_text(text: str) -> str:
    """Lowercase, NFKC, punctuation to spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


# A lone letter, optionally bracketed and followed by ".", ":" or ")".
_BARE_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:)]?$")
# "B. text", "B) text", "B: text", "(B) text".
_LETTER_THEN_TEXT = re.compile(r"^(?:\(([A-Za-z])\)|([A-Za-z])[.:)])\s*(.+)$", re.DOTALL)
# "Option B", "answer: (b)", "The correct choice is B". A lowercase letter must end the clause so that the
# article in "the answer is a grasper" is not read as option A.
_KEYWORD_LETTER = re.compile(
    r"\b(?i:option|answer|choice)\b(?i:\s+is)?\s*[:=]?\s*\(?(?:([A-Z])\b|([a-z])(?=\s*(?:$|[).:,;!])))"
)
_ANSWER_PREFIX = re.compile(
    r"^(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)\s*(?:is|:)\s*", re.IGNORECASE
)


def _letter_index(letter: str, n_options: int) -> int | None:
    index = _LETTERS.find(letter.upper())
    return index if 0 <= index < n_options else None


def _match_option_text(text: str, options: Sequence[str]) -> int | None:
    key = _normalise_text(text)
    if not key:
        return None
    hits = [i for i, opt in enumerate(options) if _normalise_text(str(opt)) == key]
    return hits[0] if len(hits) == 1 else None


def normalise_choice(prediction: str, options: Sequence[str]) -> int | None:
    """Map a multiple-choice prediction to an option index, or None when unmatched or ambiguous.

    Accepts a letter ("B", "(b)", "B.", "Option B", "The answer is B"), "B) <text>", or the text of one
    option (case, punctuation and whitespace ignored). "B. <text of option C>" is ambiguous → None.
    """
    if not isinstance(prediction, str) or not options:
        return None
    n = len(options)
    pred = prediction.strip()
    if not pred:
        return None

    bare = _BARE_LETTER.match(pred)
    if bare:
        return _letter_index(bare.group(1), n)

    lettered = _LETTER_THEN_TEXT.match(pred)
    if lettered:
        index = _letter_index(lettered.group(1) or lettered.group(2), n)
        by_text = _match_option_text(lettered.group(3), options)
        if index is not None and (by_text is None or by_text == index):
            return index
        if index is None and by_text is not None:
            return None  # letter out of range but text names an option: contradictory
        if index is not None:
            return None  # the letter and the text name different options

    by_text = _match_option_text(pred, options)
    if by_text is not None:
        return by_text
    stripped = _ANSWER_PREFIX.sub("", pred, count=1)
    if stripped != pred:
        by_text = _match_option_text(stripped, options)
        if by_text is not None:
            return by_text

    letters = {(m.group(1) or m.group(2)).upper() for m in _KEYWORD_LETTER.finditer(pred)}
    if len(letters) == 1:
        return _letter_index(letters.pop(), n)
    return None


def judge_choice(prediction: str, options: Sequence[str], answer_letter: str) -> JudgeResult:
    """1.0 when the prediction names the correct option, else 0.0."""
    if not options:
        return JudgeResult(0.0, "the sample has no options", failed=True)
    ref = answer_letter.strip().upper() if isinstance(answer_letter, str) else ""
    ref_index = _letter_index(ref, len(options)) if len(ref) == 1 else None
    if ref_index is None:
        return JudgeResult(0.0, f"reference {answer_letter!r} is not an option letter", failed=True)
    got = normalise_choice(prediction, options)
    if got is None:
        return JudgeResult(0.0, "prediction does not name exactly one option")
    if got == ref_index:
        return JudgeResult(1.0, f"correct option {ref}")
    return JudgeResult(0.0, f"chose {_LETTERS[got]}, correct is {ref}")


def judge_interval(prediction: str, reference_interval: Interval) -> JudgeResult:
    """Temporal IoU between a predicted "[start, end]" and the reference interval."""
    pred = parse_interval(prediction) if isinstance(prediction, str) else None
    if pred is None:
        return JudgeResult(0.0, "prediction is not an interval like [start, end] in seconds")
    iou = temporal_iou(pred, reference_interval)
    return JudgeResult(float(iou), f"IoU {iou:.3f} between {pred} and {tuple(reference_interval)}")


# Small on purpose: dropping too much would make "no bleeding" match "bleeding".
_STOP_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "by",
        "with",
        "from",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "into",
        "there",
        "their",
        "then",
        "than",
        "which",
        "who",
        "what",
        "when",
        "where",
        "how",
        "do",
        "does",
        "did",
    }
)


class LexicalJudge:
    """Offline free-text judge: token F1 after normalisation, mapped to {0, 0.5, 1}.

    Deterministic and free, so it suits synthetic suites and CI; it cannot judge paraphrases, which is
    what :class:`OpenAIChatJudge` is for.
    """

    def __init__(
        self,
        full_threshold: float = 0.8,
        half_threshold: float = 0.4,
        stop_words: frozenset[str] = _STOP_WORDS,
    ) -> None:
        if not 0.0 <= half_threshold <= full_threshold <= 1.0:
            raise ValueError("need 0 <= half_threshold <= full_threshold <= 1")
        self.full_threshold = full_threshold
        self.half_threshold = half_threshold
        self.stop_words = stop_words

    def _tokens(self, normalised: str) -> list[str]:
        return [t for t in normalised.split() if t not in self.stop_words]

    def __call__(self, question: str, reference: str, prediction: str) -> JudgeResult:
        ref_norm, pred_norm = _normalise_text(str(reference)), _normalise_text(str(prediction))
        if not pred_norm:
            return JudgeResult(0.0, "empty prediction")
        if ref_norm == pred_norm:
            return JudgeResult(1.0, "exact match after normalisation")
        ref_tokens, pred_tokens = Counter(self._tokens(ref_norm)), Counter(self._tokens(pred_norm))
        common = sum((ref_tokens & pred_tokens).values())
        if common == 0:
            return JudgeResult(0.0, "no content words in common")
        precision = common / sum(pred_tokens.values())
        recall = common / sum(ref_tokens.values())
        f1 = 2 * precision * recall / (precision + recall)
        if f1 >= self.full_threshold - 1e-9:  # F1 of exactly 4/5 must reach a 0.8 threshold
            score = 1.0
        elif f1 >= self.half_threshold - 1e-9:
            score = 0.5
        else:
            score = 0.0
        return JudgeResult(score, f"token F1 {f1:.3f}")


_JUDGE_SYSTEM = (
    "You grade answers to questions about medical videos. Compare the candidate answer with the reference "
    "answer. Reply with a single number and nothing else: 1 if the candidate means the same as the "
    "reference, 0.5 if it is partly correct or incomplete, 0 if it is wrong or unrelated."
)
_VERDICT_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])")


def _parse_verdict(content: str) -> float | None:
    """First number in the reply that is one of 0, 0.5, 1."""
    for token in _VERDICT_NUMBER.findall(content):
        value = float(token)
        if value in (0.0, 0.5, 1.0):
            return value
    return None


class OpenAIChatJudge:
    """Free-text judge backed by an OpenAI-compatible ``/chat/completions`` endpoint (standard library only).

    Requests go through :class:`medscope_gym.openai_client.ChatClient`: network errors, timeouts, HTTP
    408/409/429/5xx, malformed bodies and replies without a 0/0.5/1 verdict are retried with exponential
    backoff (``backoff * 2**k`` seconds); other HTTP errors fail at once. ``retries`` counts the attempts
    after the first. On final failure the result has ``failed=True`` and says what went wrong.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = ChatClient(base_url, api_key, timeout, retries, backoff, sleep=sleep)
        self.url = self.client.url
        self.model = model
        #: Attempts made by the most recent call (for logging and tests).
        self.last_attempts = 0

    def _body(self, question: str, reference: str, prediction: str) -> dict[str, Any]:
        user = f"Question: {question}\nReference answer: {reference}\nCandidate answer: {prediction}\nScore:"
        return {
            "model": self.model,
            "messages": [{"role": "system", "content": _JUDGE_SYSTEM}, {"role": "user", "content": user}],
            "temperature": 0.0,
            "max_tokens": 8,
        }

    def __call__(self, question: str, reference: str, prediction: str) -> JudgeResult:
        self.last_attempts = 0
        try:
            reply = self.client.complete(self._body(question, reference, prediction), check=_check_verdict)
        except EndpointError as err:
            self.last_attempts = err.attempts
            reason = f"judge failed after {err.attempts} attempt(s): {err}"
            return JudgeResult(0.0, reason, failed=True)
        self.last_attempts = reply.attempts
        score = _parse_verdict(reply.content)
        return JudgeResult(score, f"LLM judge verdict {score:g}")


def _check_verdict(reply: ChatReply) -> None:
    if _parse_verdict(reply.content) is None:
        raise RetryableReply(f"no 0/0.5/1 verdict in reply {reply.content[:80]!r}")


def score_answer(sample_like: Any, prediction: str, text_judge: AnswerJudge | None = None) -> JudgeResult:
    """Score a final answer by the sample's ``answer_type`` ("choice", "interval" or "text").

    ``sample_like`` needs ``question``, ``options``, ``answer`` and ``answer_type``; for "choice" the
    answer is the option letter, for "interval" it is "[s, e]". Never raises: problems with the sample or
    the judge come back as ``failed=True``.
    """
    if not isinstance(prediction, str):
        return JudgeResult(0.0, f"prediction is not text ({type(prediction).__name__})")
    if len(prediction) >= MAX_ANSWER_CHARS:
        return JudgeResult(0.0, "answer too long")
    try:
        answer_type = sample_like.answer_type
        if answer_type == "choice":
            return judge_choice(prediction, sample_like.options or (), sample_like.answer)
        if answer_type == "interval":
            reference = parse_interval(sample_like.answer)
            if reference is None:
                return JudgeResult(0.0, f"reference {sample_like.answer!r} is not an interval", failed=True)
            return judge_interval(prediction, reference)
        if answer_type == "text":
            judge = text_judge if text_judge is not None else LexicalJudge()
            return judge(sample_like.question, sample_like.answer, prediction)
        return JudgeResult(0.0, f"unknown answer_type {answer_type!r}", failed=True)
    except Exception as err:  # noqa: BLE001 - a broken sample or plug-in judge must not crash an episode
        return JudgeResult(0.0, f"judge error: {type(err).__name__}: {err}", failed=True)
