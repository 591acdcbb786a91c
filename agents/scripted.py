"""Scripted policies: baselines and the upper bound, using only the public env API.

- ``oracle``: reads the ground truth and acts like the paper's coarse-to-fine agent: after
  the preview it crops the evidence window, looks at the decisive frame, then answers.
  Upper bound of the reward, and the source of reference trajectories.
- ``no_tools``: answers right after the preview without calling a tool. A scripted agent
  cannot read pixels, so its answer is a guess (a seeded uniform option; for interval
  questions the middle tenth of the video): it measures what skipping evidence costs.
- ``random``: each turn a uniformly random action (crop, frame or answer) with random
  arguments; always well-formed, so it keeps the format reward.

:class:`SearchingOracle` is a reference for SFT, not a baseline: it also reads the ground truth, but
every choice it makes and every number it writes could have come from what it was shown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medscope_gym.agents.policy import Policy
from medscope_gym.chat import even_subsample, time_text
from medscope_gym.config import Config
from medscope_gym.errors import ConfigError
from medscope_gym.protocol import format_answer, format_tool_call
from medscope_gym.suite import Sample
from medscope_gym.suite.labels import ORDINALS, ordinal

__all__ = [
    "NoToolsPolicy",
    "OraclePolicy",
    "RandomPolicy",
    "SCRIPTED_POLICIES",
    "SearchingOracle",
    "CLOSE_FROM",
    "CLOSE_LOOK",
    "CROP_LISTING",
    "FIRST_MARK",
    "FROM_CROP",
    "NOT_ASKED",
    "PREVIEW_LISTING",
    "STRETCHES",
    "close_look",
    "close_window",
    "frame_listing",
    "make_scripted_policy",
    "marked_stretches",
    "named_interval",
    "named_rank",
    "option_text",
    "oracle_answer",
    "unmarked_item",
]

_OPTION_RE = re.compile(r"^([A-Z])\. ", re.MULTILINE)
#: A listed item's mark: a word in front of its time, or a word and the time again after its label.
_ITEM_MARK = re.compile(r"^[a-z]+ (?=\d)|, [a-z]+ \d+(?:\.\d+)?$")


def _answer_form(text: str) -> tuple[str, list[str]]:
    """("choice", letters) / ("interval", []) / ("text", []) read from the reset observation text."""
    letters = _OPTION_RE.findall(text)
    if letters:
        return "choice", letters
    if "[start, end]" in text:
        return "interval", []
    return "text", []


class OraclePolicy(Policy):
    """Crop the ground-truth evidence, get_frame at its centre, answer correctly.

    The next step follows the env's tool log (``info["tool_log"]``), not a turn counter: crop until a
    crop_video succeeded, get_frame until a get_frame succeeded, then answer. So the oracle also acts
    sensibly in an episode someone else started (a failed call is retried, a successful one not
    repeated), which :mod:`medscope_gym.agents.sft.dagger` relies on.

    ``decimals`` None sends ground-truth numbers out exactly. With ``decimals=k`` every number the
    oracle writes has at most k decimals (the crop widened outwards so it still covers the evidence):
    one number format, far easier for a small model to learn from SFT data than annotation floats.

    ``tools=False`` makes the answer-only reference: the correct answer right after the preview, no tool
    call (SFT on it trains the answer-only model of ``medscope recipe``).

    ``crop_to_preview=True`` widens an evidence window outwards to the preview frames around it (the
    last preview frame at or before its start, the first at or after its end): the crop a searching
    agent can actually derive from what it was shown, "between the two preview frames where the
    highlight is", rather than ground-truth seconds it could not know.
    """

    name = "oracle"
    uses_ground_truth = True

    def __init__(
        self,
        moment_pad: float = 2.0,
        decimals: int | None = None,
        tools: bool = True,
        crop_to_preview: bool = False,
    ) -> None:
        self.moment_pad = moment_pad
        self.decimals = decimals
        self.tools = tools
        self.crop_to_preview = crop_to_preview
        self._state: dict[int, dict[str, Any]] = {}

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        sample = self.episode_sample(sample)
        times = np.asarray(obs.get("video_times", ()), dtype=np.float64).reshape(-1)
        self._state[slot] = {"sample": sample, "duration": float(info["duration"]), "preview": np.sort(times)}

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ):
        return [self._next(slot, info) for slot, info in zip(slots, infos)]

    def _next(self, slot: int, info: dict[str, Any]) -> str:
        st = self._state[slot]
        done = {entry["name"] for entry in info.get("tool_log", ()) if entry.get("ok")}
        sample: Sample = st["sample"]
        # Ground-truth values go out untouched (the crop's IoU stays exactly 1); values the oracle
        # computes are rounded to milliseconds so no float noise (45.400000000000006) reaches SFT data.
        start, end = sample.evidence[0]
        centre = start
        if start == end:  # a moment: crop a short window around it
            start = round(max(0.0, start - self.moment_pad), 3)
            end = round(min(st["duration"], end + self.moment_pad), 3)
        else:
            centre = round((start + end) / 2, 3)
            if self.crop_to_preview and len(st["preview"]):
                start, end = _between_preview_frames(st["preview"], start, end, st["duration"])
        if self.decimals is not None:
            scale = 10**self.decimals
            centre = round(centre, self.decimals)
            start = math.floor(start * scale + 1e-9) / scale
            end = min(math.ceil(end * scale - 1e-9) / scale, math.floor(st["duration"] * scale) / scale)
        if not self.tools:  # answer-only reference: the right answer straight after the preview
            return format_answer(
                oracle_answer(sample, self.decimals),
                think="The preview and the question settle it; I answer without looking closer.",
            )
        if "crop_video" not in done:
            return format_tool_call(
                "crop_video",
                {"start_time": start, "end_time": end},
                think=(
                    f"The preview covers the whole {st['duration']:.0f} s video. The question hinges on "
                    f"what happens around {start:.1f}-{end:.1f} s, so I look at that interval closely."
                ),
            )
        if "get_frame" not in done:
            return format_tool_call(
                "get_frame",
                {"timestamp": centre},
                think=f"The crop shows the relevant moment; I check the frame at {centre:.1f} s in detail.",
            )
        return format_answer(oracle_answer(sample, self.decimals), think=_seen(sample, centre))


#: How the search reference opens its first turn's reasoning, before the preview's frame listing.
PREVIEW_LISTING = "The preview frames: "
#: How it opens its reasoning after a crop, before the crop's frame listing.
CROP_LISTING = "The crop frames: "
#: How it says a crop showed something other than what the question asks about, before it names the
#: next highlighted interval.
NOT_ASKED = "not what the question asks about"
#: How it opens the list of the preview's highlighted stretches (``SearchStyle.list_stretches``).
STRETCHES = "The highlighted intervals: "
#: How it opens a move-on's copy of that list from the stretch just cropped (``SearchStyle.next_from_crop``).
FROM_CROP = "the highlighted intervals from this one on: "
#: How it names its close crop after a crop listing (:func:`close_look`).
CLOSE_LOOK = "I look closely at "
#: Where a close crop after a crop listing starts (:func:`close_window`): at the listed frame ``before``
#: the first that shows something, or at that ``first`` frame itself.
CLOSE_FROM: tuple[str, ...] = ("before", "first")
#: The word a crop listing writes at the first frame that shows something (``SearchStyle.mark_first``:
#: "30.0 no; first 30.5 a red ring at the centre; ..."; ``mark_after``: "30.5 a red ring ..., first 30.5").
FIRST_MARK = "first"


@dataclass(frozen=True)
class SearchStyle(Config):
    """How :class:`SearchingOracle` writes the steps after a crop listing, which a small model copying
    it finds hard (docs/agents.md, "Search reference"). The defaults are the reference's original
    script."""

    close_from: str = "before"
    """Where the close crop starts: "before", the listed frame before the first that shows the
    symbol, or "first", that frame (:func:`close_window`)."""
    choice_text: bool = False
    """Answer a choice question with the option's text (the symbol just named: ``<answer>red
    ring</answer>``), which the judge accepts as that option, instead of its letter. The letter stands
    before the text in the question, and finding it means looking back from the text."""
    list_close: bool = False
    """List the close crop's frames before answering, as after a coarse crop. An interval answer then
    runs from the first listed frame that shows the symbol to the first after it that does not (or the
    crop's end), times the model can copy, instead of the ground truth it cannot see. The two agree
    when the close crop shows every frame from before the symbol to after it; with ``close_from``
    "first" the symbol may begin up to one coarse frame before the close crop."""
    mark_first: bool = False
    """Write :data:`FIRST_MARK` in front of the time of a crop listing's first frame that shows the
    symbol ("30.0 no; first 30.5 a red ring ..."). A model writes each token seeing only those before
    it, so a time cannot tell from itself that the label after it is the first symbol; a time right
    after a word used nowhere else in the listing can be found and copied by that word. But the
    writer must decide on the word before it lists that frame: the recipe's tiny model, trained on
    it from the start, never wrote it (docs/results.md, "Marked listings")."""
    mark_after: bool = False
    """Write :data:`FIRST_MARK` and the time again *after* the label of a crop listing's first frame
    that shows the symbol ("30.0 no; 30.5 a red ring at the centre, first 30.5; 31.0 a red ring ...").
    Unlike ``mark_first``, the writer decides on it from what it has already written (this label, and
    "no" or nothing before it), and the close crop can still copy the time after the word."""
    rank_stretches: bool = False
    """Write each marked stretch's rank ("first", "second", ...) in front of the time of its first frame
    in the preview listing ("0.5 no; first 6.5 bar; 12.5 bar; 19.5 no; second 25.5 bar"). The crop of
    "the second highlighted interval" then starts at the time after the question's own word, and the
    first stretch's start is no longer the first of several identical "bar" items. The rank stands
    where ``mark_first``'s word does, before the frame is looked at (docs/results.md, "Marked
    listings")."""
    rank_after: bool = False
    """Write each marked stretch's rank and its time again *after* the label of its first frame in the
    preview listing ("0.5 no; 6.5 bar, first 6.5; 12.5 bar; 19.5 no; 25.5 bar, second 25.5"), as
    ``mark_after`` does in a crop listing: the writer counts the stretches it has already listed instead
    of deciding on the rank before it looks at the frame."""

    list_stretches: bool = False
    """After the preview listing, write the highlighted stretches it shows, in order (":data:`STRETCHES`
    0.5-16.5 s; 110.0-116.0 s; 160.5-165.0 s."). Each later pick is then a copy from a short list: the
    one the question names, or, after a crop that missed, the item after the one just cropped, found
    by its own times. Without it that stretch has to be found among the 16 listed frames by counting
    runs of "bar", which the recipe's tiny model did not learn (docs/results.md, "The question,
    restated")."""

    rank_list: bool = False
    """With ``list_stretches``, write each stretch of that list after its rank (":data:`STRETCHES` first
    0.5-16.5 s; second 110.0-116.0 s."). The pick that follows ("The second highlighted interval is
    110.0-116.0 s") then finds its times after the rank it names, a copy by the word in front of them,
    instead of counting the list's items to the named one. Drilled from v20's Stage I it raised the
    pick no more than one check's swing in 600 steps (docs/results.md, "Stage II's rate, and a ranked
    list")."""

    next_from_crop: bool = False
    """With ``list_stretches``, write a move-on as that list again from the stretch just cropped, to the
    next one (":data:`FROM_CROP` 65.5-81.5 s; 120.0-130.5 s.") instead of the next one alone. The first
    item is the crop's own times, which the tool response right above states; the second is then what
    follows those times in the list, a copy by what precedes it instead of a search for the item after
    the one cropped. Drilled from v20's Stage I it was learned no faster than the next stretch alone
    (docs/results.md, "The move-on, copied")."""

    name_first: bool = False
    """Open the first turn with the highlighted interval the question names, as Stage I's ordinal
    drill answers ("The third highlighted interval."; "The first ..." where it names none and the
    search starts there; :func:`named_interval`), before the preview listing. The pick after the
    listing then copies that rank from the turn's first words instead of reading it from the
    question, 200 tokens back: v20's Stage I wrote "first" for every later pick, teacher-forced. In
    300 steps of ``select`` from there it raised no pick (docs/results.md, "The move-on, copied")."""

    def __post_init__(self) -> None:
        if self.next_from_crop and not self.list_stretches:
            raise ConfigError("SearchStyle.next_from_crop copies the list list_stretches writes; set both")
        if self.rank_list and not self.list_stretches:
            raise ConfigError("SearchStyle.rank_list ranks the list list_stretches writes; set both")
        if self.close_from not in CLOSE_FROM:
            raise ConfigError(f"SearchStyle.close_from must be one of {CLOSE_FROM}, got {self.close_from!r}")
        if self.mark_first and self.mark_after:
            raise ConfigError("SearchStyle: mark_first and mark_after place one mark two ways; set one")
        if self.rank_stretches and self.rank_after:
            raise ConfigError("SearchStyle: rank_stretches and rank_after place one rank two ways; set one")

    def crop_listing(self, times: Sequence[float], labels: Sequence[str]) -> str:
        """A crop's frames listed in this style (:func:`frame_listing`, marked when ``mark_first`` or
        ``mark_after``)."""
        marks = (FIRST_MARK,) if self.mark_first or self.mark_after else ()
        return frame_listing(times, labels, marks, after=self.mark_after)

    def preview_listing(self, times: Sequence[float], labels: Sequence[str]) -> str:
        """The preview's frames listed in this style (:func:`frame_listing`, ranked when
        ``rank_stretches`` or ``rank_after``)."""
        ranks = ORDINALS if self.rank_stretches or self.rank_after else ()
        return frame_listing(times, labels, ranks, after=self.rank_after)


class SearchingOracle(Policy):
    """A reference that acts only on what it was shown: it finds the marked stretches of the preview,
    crops the one the question names, or searches them in order, and answers from what the crop shows.

    :class:`OraclePolicy` crops the evidence straight away. Where the question names the symbol but not
    where it is ("When is the blue triangle on screen?"), that choice cannot be derived from the
    preview, and a model imitating it learns to guess. This reference writes out the steps a model can
    copy. First, every preview frame's time and whether it is marked (:func:`frame_listing`: "The
    preview frames: 0.5 no; 6.5 no; 12.5 bar; 19.5 bar; ..."). A run of consecutive marked frames is
    one stretch. If the question names one by its rank ("the second highlighted interval"),
    it crops that stretch. Otherwise it crops the stretches in order, and after each one says what the
    crop showed, until the crop holds the evidence. There it names what it sees and crops that closely
    (the evidence window; the fine step of coarse-to-fine, which the evidence reward scores), when
    ``max_turns`` leaves a turn for it. Then it answers and names what it saw, as :class:`OraclePolicy`
    does.

    A preview frame is marked when the sample's dense caption at its time is not ``unmarked``; the
    testbed's captions call every moment outside a highlight "nothing highlighted". What a crop
    "shows" is the caption lying strictly inside it (the testbed's symbol; none: "no symbol"). Samples
    without captions, or with evidence in no marked stretch, are cropped as
    ``OraclePolicy(crop_to_preview=True)`` would.

    ``list_crops`` = N > 0 is for a model shown each crop as N separate timestamped frames
    (``FrameConfig.crops_as_frames``): after a crop the reference lists those frames with what each
    shows ("The crop frames: 30.0 no; 31.5 a red ring at the centre; ..."), and its close crop runs
    from the frame before the first that shows the symbol to the frame after the last, times it was
    shown, instead of the evidence's own (which no frame may show exactly). ``style``
    (:class:`SearchStyle`) changes where that close crop starts, whether a choice is answered by its
    letter or its text, and whether the close crop is listed too before the answer.
    """

    name = "searching_oracle"
    uses_ground_truth = True

    def __init__(
        self,
        decimals: int | None = None,
        unmarked: str = "nothing highlighted",
        max_turns: int = 5,
        list_crops: int = 0,
        style: SearchStyle | None = None,
    ) -> None:
        self.decimals = decimals
        self.unmarked = unmarked
        self.max_turns = max_turns
        self.list_crops = list_crops
        self.style = style or SearchStyle()
        self._state: dict[int, dict[str, Any]] = {}

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        sample = self.episode_sample(sample)
        preview = np.sort(np.asarray(obs.get("video_times", ()), dtype=np.float64).reshape(-1))
        duration = float(info["duration"])
        marked = [
            i for i, t in enumerate(preview) if sample.caption_at(float(t)) not in (None, self.unmarked)
        ]
        runs = marked_stretches(preview, [i in marked for i in range(len(preview))])
        start, end = sample.evidence[0] if sample.evidence else (0.0, duration)
        centre = (start + end) / 2
        target = next((k for k, (a, b) in enumerate(runs) if a <= centre <= b and b > a), None)
        named = named_rank(sample.question)
        if target is None:  # nothing to search: the crop OraclePolicy(crop_to_preview=True) makes
            order = (
                [_between_preview_frames(preview, start, end, duration)] if len(preview) else [(start, end)]
            )
            runs, target = [], None
        else:
            order = [runs[target]] if named == target else runs[: target + 1]
        found = target is not None and named == target
        fine = None
        if target is not None and len(order) + 2 <= self.max_turns and end > start:
            fine = (start, end)  # the evidence itself, as the coarse crop showed it
            if self.decimals is not None:
                scale = 10**self.decimals
                fine = (math.floor(start * scale + 1e-9) / scale, math.ceil(end * scale - 1e-9) / scale)
        self._state[slot] = {
            "sample": sample,
            "preview": preview,
            "marked": [i in marked for i in range(len(preview))],
            "runs": runs,
            "order": order,
            "named": found,
            "fine": fine,
        }

    def crops_named(self, slot: int) -> bool:
        """Whether the episode in ``slot`` crops the stretch its question names by rank straight away
        (False where the question names none, or where the named stretch is not the one the preview
        ranks so and the reference searches from the first instead)."""
        return bool(self._state[slot]["named"])

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ):
        return [self._next(slot, obs, info) for slot, obs, info in zip(slots, observations, infos)]

    def _next(self, slot: int, obs: dict[str, Any], info: dict[str, Any]) -> str:
        st = self._state[slot]
        sample: Sample = st["sample"]
        crops = sum(
            1 for entry in info.get("tool_log", ()) if entry.get("name") == "crop_video" and entry.get("ok")
        )
        order: list[tuple[float, float]] = st["order"]
        listed = (
            self._crop_listing(sample, obs, *order[crops - 1])
            if self.list_crops and 0 < crops <= len(order)
            else None
        )
        if crops == len(order) and st["fine"] is not None:
            if listed is not None:
                text, (a, b), _ = listed
                think = close_look(text, a, b)
            else:
                a, b = st["fine"]
                seen = _inside(sample, *order[-1]) or "what the question asks about"
                think = (
                    f"The crop shows {seen}, at about {time_text(a)}-{time_text(b)} s; "
                    "I look at that closely."
                )
            return format_tool_call("crop_video", {"start_time": a, "end_time": b}, think=think)
        if crops >= len(order):
            return self._answer(sample, obs, info, order[-1], closed=crops > len(order))
        a, b = (round(x, 3) for x in order[crops])
        if crops == 0:
            if st["runs"]:
                labels = ["bar" if m else "no" for m in st["marked"]]
                think = f"{named_interval(sample.question)} " if self.style.name_first else ""
                think += f"{PREVIEW_LISTING}{self.style.preview_listing(st['preview'], labels)}. "
                if self.style.list_stretches:
                    items = [f"{time_text(x)}-{time_text(y)} s" for x, y in st["runs"]]
                    if self.style.rank_list:
                        items = [f"{ordinal(i)} {item}" for i, item in enumerate(items)]
                    think += f"{STRETCHES}{'; '.join(items)}. "
                k = st["runs"].index((a, b))
                if st["named"]:
                    think += (
                        f"The {ordinal(k)} highlighted interval is {time_text(a)}-{time_text(b)} s, "
                        "so I crop it."
                    )
                else:
                    think += (
                        f"I crop the first highlighted interval, {time_text(a)}-{time_text(b)} s, and look."
                    )
            else:
                think = (
                    f"The question hinges on {time_text(a)}-{time_text(b)} s, "
                    "so I look at that interval closely."
                )
        else:
            seen = _inside(sample, *order[crops - 1]) or "no symbol"
            think = f"{listed[0]} " if listed is not None else ""
            x, y = order[crops - 1]
            where = (
                f"{FROM_CROP}{time_text(x)}-{time_text(y)} s; "
                if self.style.next_from_crop
                else "the next highlighted interval is "
            )
            think += f"The crop shows {seen}, {NOT_ASKED}; {where}{time_text(a)}-{time_text(b)} s."
        return format_tool_call("crop_video", {"start_time": a, "end_time": b}, think=think)

    def _answer(
        self,
        sample: Sample,
        obs: dict[str, Any],
        info: dict[str, Any],
        coarse: tuple[float, float],
        closed: bool,
    ) -> str:
        """The last turn: what the crop showed, then the answer (``closed``: after the close crop, whose
        frames ``obs`` holds; the style may list them and answer an interval from the listing: from the
        first frame that shows the symbol to the first after it that does not, or to the crop's end,
        which no frame of a crop shows)."""
        seen = _inside(sample, *coarse)
        if not seen:
            return format_answer(oracle_answer(sample, self.decimals), think=_seen(sample, sum(coarse) / 2))
        answer = oracle_answer(sample, self.decimals)
        crop_end = next(
            (
                float(entry["interval"][1])
                for entry in reversed(info.get("tool_log", ()))
                if entry.get("name") == "crop_video" and entry.get("ok") and "interval" in entry
            ),
            None,
        )
        listed = (
            self._crop_listing(sample, obs, *coarse, crop_end=crop_end)
            if self.style.list_close and closed
            else None
        )
        think = f"{listed[0]} " if listed is not None else ""
        if sample.answer_type == "interval" and listed is not None:
            a, b = listed[2]
            answer = f"[{time_text(a)}, {time_text(b)}]"  # the listing's own times
        text = option_text(sample)
        if self.style.choice_text and text is not None:
            answer = text
            think += f"The crop shows {seen}."
        else:
            think += f"The crop shows {seen}.{_option_named(sample)}"
        return format_answer(answer, think=think)

    def _crop_listing(
        self, sample: Sample, obs: dict[str, Any], start: float, end: float, crop_end: float | None = None
    ) -> tuple[str, tuple[float, float], tuple[float, float]] | None:
        """The crop's shown frames listed with what each shows (the caption strictly inside the crop
        window ``start``-``end``, else "no"), the close crop's window (:func:`close_window` as the style
        starts it: every time in it is one the model was shown) and the span from the first frame that
        shows it to the first after it that does not (``crop_end``, the crop's own end, when none
        does). None when no frame shows it."""
        times = np.asarray(obs.get("video_times", ()), dtype=np.float64).reshape(-1)
        times = times[even_subsample(len(times), self.list_crops)]  # as ChatEncoder thins a crop
        inside = _inside(sample, start, end)
        labels = [inside if inside and sample.caption_at(float(t)) == inside else "no" for t in times]
        window = close_window(times, labels, self.style.close_from)
        if window is None:
            return None
        after = [] if crop_end is None or crop_end <= times[-1] else [crop_end]
        span = close_window([*times, *after], [*labels, *["no"] * len(after)], "first")
        return f"{CROP_LISTING}{self.style.crop_listing(times, labels)}.", window, span


def marked_stretches(times: Sequence[float], marked: Sequence[bool]) -> list[tuple[float, float]]:
    """Each run of consecutive marked frames as (its first time, its last): the highlighted stretches
    :class:`SearchingOracle` reads off a preview listing."""
    runs: list[tuple[float, float]] = []
    for i, (t, on) in enumerate(zip(times, marked)):
        if on and i > 0 and marked[i - 1]:
            runs[-1] = (runs[-1][0], float(t))
        elif on:
            runs.append((float(t), float(t)))
    return runs


def close_window(
    times: Sequence[float], labels: Sequence[str], start: str = "before"
) -> tuple[float, float] | None:
    """From the listed frame before the first that shows something ("no" shows nothing) to the frame
    after the last: the close crop :class:`SearchingOracle` makes after a crop listing, every time one
    the model was shown. None when no frame shows anything.

    ``start="first"`` starts at the first frame that shows something instead: its time stands right in
    front of that frame's label. The recipe's tiny model writes the end right and the start wrong
    under either rule (docs/results.md, "Search reference styles")."""
    if start not in CLOSE_FROM:
        raise ValueError(f"close_window: start must be one of {CLOSE_FROM}, got {start!r}")
    hits = [i for i, label in enumerate(labels) if label != "no"]
    if not hits:
        return None
    first = hits[0] if start == "first" else max(hits[0] - 1, 0)
    a, b = times[first], times[min(hits[-1] + 1, len(times) - 1)]
    return round(float(a), 3), round(float(b), 3)


def close_look(listing: str, start: float, end: float) -> str:
    """The reasoning of :class:`SearchingOracle`'s turn after a crop listing: the listing, then the
    close crop it picks (:func:`close_window`)."""
    return f"{listing} {CLOSE_LOOK}{time_text(start)}-{time_text(end)} s, the frames around it."


def frame_listing(
    times: Sequence[float], labels: Sequence[str], marks: Sequence[str] = (), after: bool = False
) -> str:
    """Every shown frame's time and what it shows, in order: ``"0.5 no; 6.5 bar; 12.5 no"``. ``marks[k]``
    stands in front of the first item of the k-th run of items that show something
    (``("first",)``: ``"0.5 no; first 6.5 bar; 12.5 no"``); with ``after``, it follows that item's
    label, with the time again (``"0.5 no; 6.5 bar, first 6.5; 12.5 no"``).

    One judgement per frame, each beside the time it copies. Listing only the marked frames' times
    asks a small model to find the frames and gather their times in one step; from scratch, the
    recipe's tiny model never got such a list exactly right, and learned this one (docs/results.md,
    "Listing probe")."""
    items = [f"{time_text(t)} {label}" for t, label in zip(times, labels, strict=True)]
    starts = [i for i, label in enumerate(labels) if label != "no" and (i == 0 or labels[i - 1] == "no")]
    for mark, i in zip(marks, starts):
        items[i] = f"{items[i]}, {mark} {time_text(times[i])}" if after else f"{mark} {items[i]}"
    return "; ".join(items)


def unmarked_item(item: str) -> str:
    """A listing's item without the mark :func:`frame_listing` writes at a run's first frame
    (``"first 30.5 a red ring"`` and ``"30.5 a red ring, first 30.5"`` are ``"30.5 a red ring"``)."""
    return _ITEM_MARK.sub("", item)


def _inside(sample: Sample, start: float, end: float) -> str | None:
    """The caption lying strictly between ``start`` and ``end`` (what a crop there shows)."""
    for caption in sample.captions or ():
        if start < caption.start and caption.end < end:
            return caption.text
    return None


def named_interval(question: str) -> str:
    """The highlighted interval ``question`` names by rank, as the search reference says it ("The third
    highlighted interval."), or the first where it names none: a search starts there."""
    return f"The {ordinal(named_rank(question) or 0)} highlighted interval."


def named_rank(question: str) -> int | None:
    """0 for "the first highlighted ...", 1 for "the second ...": the rank a question names, if any."""
    match = re.search(r"\bthe (\w+) highlighted\b", question)
    if match and match.group(1) in ORDINALS:
        return ORDINALS.index(match.group(1))
    return None


def _between_preview_frames(preview: np.ndarray, start: float, end: float, duration: float):
    """``[start, end]`` widened to the preview frames around it (the video's ends where there is none)."""
    before = preview[preview <= start]
    after = preview[preview >= end]
    return (float(before[-1]) if len(before) else 0.0), (float(after[0]) if len(after) else duration)


def _seen(sample: Sample, moment: float) -> str:
    """The answer turn's reasoning: what the inspected frames show (the sample's dense caption at the
    evidence) and, for a choice question, which option that is. Naming what was seen before answering
    is the visual chain of thought: reading the frames and matching an option become two steps."""
    start, end = sample.evidence[0] if sample.evidence else (moment, moment)
    best, overlap = None, -1.0
    for caption in sample.captions or ():
        if start == end:
            score = 1.0 if caption.start <= moment < caption.end else -1.0
        else:
            score = min(end, caption.end) - max(start, caption.start)
        if score > overlap and score >= 0:
            best, overlap = caption, score
    if best is None:
        return "The frames I inspected settle the question."
    return f"At {moment:.1f} s the frames show {best.text}.{_option_named(sample)}"


def _option_named(sample: Sample) -> str:
    """The sentence ' That is option B, red ring.' for a choice question, else an empty string."""
    if sample.answer_type == "choice" and sample.options:
        letter = sample.answer.strip()
        index = ord(letter) - ord("A") if len(letter) == 1 else -1
        if 0 <= index < len(sample.options):
            return f" That is option {letter}, {sample.options[index]}."
    return ""


def option_text(sample: Sample) -> str | None:
    """The text of a choice question's right option (``SearchStyle.choice_text`` answers with it);
    None for other questions."""
    letter = sample.answer.strip()
    index = ord(letter) - ord("A") if sample.answer_type == "choice" and len(letter) == 1 else -1
    return sample.options[index] if 0 <= index < len(sample.options or ()) else None


def oracle_answer(sample: Sample, decimals: int | None = None) -> str:
    """The ground-truth answer as the oracle writes it: a choice's letter, or ``[start, end]`` rounded
    to ``decimals``."""
    if sample.answer_type == "interval":
        s, e = sample.answer_interval
        if decimals is not None:
            s, e = round(s, decimals), round(e, decimals)
        return f"[{s}, {e}]"
    return sample.answer


class NoToolsPolicy(Policy):
    """Answer immediately after the preview, without calling any tool."""

    name = "no_tools"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ):
        return [self._answer(obs, info) for obs, info in zip(observations, infos)]

    def _answer(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        kind, letters = _answer_form(str(obs["text"]))
        duration = float(info["duration"])
        if kind == "choice":
            guess = str(self.rng.choice(letters))
        elif kind == "interval":
            guess = f"[{0.45 * duration:.1f}, {0.55 * duration:.1f}]"
        else:
            guess = "not visible in the preview"
        return format_answer(guess, think="The preview alone has to do; I answer without looking closer.")


class RandomPolicy(Policy):
    """A uniformly random well-formed action every turn."""

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self._form: dict[int, tuple[str, list[str]]] = {}

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        self._form[slot] = _answer_form(str(obs["text"]))

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ):
        return [self._random(slot, info) for slot, info in zip(slots, infos)]

    def _random(self, slot: int, info: dict[str, Any]) -> str:
        duration = float(info["duration"])
        choice = int(self.rng.integers(3))
        if choice == 0:
            a, b = np.sort(self.rng.uniform(0.0, duration, size=2))
            if b - a < 0.5:
                b = min(duration, a + 0.5)
            return format_tool_call(
                "crop_video",
                {"start_time": round(float(a), 2), "end_time": round(float(b), 2)},
                think="I look at a random interval.",
            )
        if choice == 1:
            t = float(self.rng.uniform(0.0, duration))
            return format_tool_call(
                "get_frame", {"timestamp": round(t, 2)}, think="I look at a random frame."
            )
        kind, letters = self._form.get(slot, ("text", []))
        if kind == "choice":
            guess = str(self.rng.choice(letters))
        elif kind == "interval":
            a, b = np.sort(self.rng.uniform(0.0, duration, size=2))
            guess = f"[{a:.1f}, {b:.1f}]"
        else:
            guess = "unknown"
        return format_answer(guess, think="I answer at random.")


SCRIPTED_POLICIES = {
    "oracle": OraclePolicy,
    "search": SearchingOracle,
    "no_tools": NoToolsPolicy,
    "random": RandomPolicy,
}
#: The crop frames ``make_scripted_policy("search")`` lists: the recipe's ``max_crop_frames``.
SEARCH_CROP_FRAMES = 16


def make_scripted_policy(name: str, seed: int | None = None) -> Policy:
    """Build a scripted policy by name ("oracle", "search", "no_tools", "random"). "search" is the
    recipe's Stage II reference: it lists up to ``SEARCH_CROP_FRAMES`` frames of each crop."""
    if name not in SCRIPTED_POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(SCRIPTED_POLICIES)}")
    if name == "oracle":
        return OraclePolicy()
    if name == "search":
        return SearchingOracle(list_crops=SEARCH_CROP_FRAMES)
    return SCRIPTED_POLICIES[name](seed=seed)
