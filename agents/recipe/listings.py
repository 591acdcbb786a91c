"""How right an agent's frame listings are inside its tool episodes.

The search reference that Stage II imitates writes two listings: after the preview, every preview frame
with whether it shows the white bar ("The preview frames: 0.5 no; 8.5 bar; ..."), and after a crop,
every crop frame with the symbol it shows ("The crop frames: 30.0 no; 30.5 a red ring at the centre;
..."). Both are true or false by the sample's dense captions at the times of the frames the agent was
shown, so a listing can be scored wherever the agent writes one, on its own crops too. Held-out
accuracy says whether the agent answers right; these scores say which step of the search goes wrong:
the preview listing, the crop listing, or what follows them (docs/agents.md, "Testbed recipe").

What follows a crop listing is scored too: the close crop the agent calls after it ("I look closely at
33.5-37.5 s"), right when its two times are the reference's window on the true listing (from the frame
before the first that shows the symbol to the frame after the last). So is what follows the preview
listing: the first crop, right when it is the reference's own first crop on the same preview frames
(:func:`first_crop_scores`), with the questions that name a later highlighted interval ("the third
highlighted interval") counted apart, since those need the stretches counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.rollout.trajectory import Trajectory, load_trajectories
from medscope_gym.agents.scripted import (
    CLOSE_LOOK,
    SearchingOracle,
    SearchStyle,
    close_window,
    marked_stretches,
    named_rank,
    unmarked_item,
)
from medscope_gym.protocol import parse_turn
from medscope_gym.suite import Sample, Suite
from medscope_gym.synthetic.testbed import NOTHING_HIGHLIGHTED, SYMBOLS, symbol_caption

__all__ = [
    "LISTING_KINDS",
    "SCORED_KINDS",
    "first_crop_scores",
    "listing_scores",
    "saved_listing_scores",
    "true_listing",
]

LISTING_KINDS: tuple[str, ...] = ("preview", "crop")
#: What :func:`listing_scores` reports: the listings, and ``close``, the close crop after a crop listing.
SCORED_KINDS: tuple[str, ...] = (*LISTING_KINDS, "close")
#: A listing inside an assistant turn: up to the full stop that ends it (a time's "." is followed by a digit).
_LISTING = re.compile(r"The (preview|crop) frames: (.+?)\.(?=\s|<|$)")
_SYMBOL_CAPTIONS = frozenset(symbol_caption(s) for s in SYMBOLS)


def _true_labels(sample: Sample, times: Iterable[float], kind: str) -> list[str]:
    """What the sample's captions say each frame at ``times`` shows: ``preview``, "bar" where a
    highlight is on screen, else "no"; ``crop``, the symbol's caption where one is, else "no"."""
    labels = []
    for t in times:
        caption = sample.caption_at(float(t))
        if kind == "preview":
            labels.append("no" if caption in (None, NOTHING_HIGHLIGHTED) else "bar")
        else:
            labels.append(caption if caption in _SYMBOL_CAPTIONS else "no")
    return labels


def true_listing(sample: Sample, times: Iterable[float], kind: str, style: SearchStyle | None = None) -> str:
    """The listing of the frames at ``times`` that the sample's captions make true (:func:`_true_labels`),
    a crop's as ``style`` writes it (:meth:`~medscope_gym.agents.scripted.SearchStyle.crop_listing`)."""
    times = list(times)
    labels = _true_labels(sample, times, kind)
    style = style or SearchStyle()
    return style.crop_listing(times, labels) if kind == "crop" else style.preview_listing(times, labels)


def _shown_times(trajectory: Trajectory, turn: int) -> np.ndarray:
    media = trajectory.turns[turn].media
    times = media.image_times if media.image_times is not None else media.video_times
    return np.asarray(() if times is None else times, dtype=np.float64).reshape(-1)


def _close_crop(text: str) -> tuple[float, float] | None:
    """The window of a turn's ``crop_video`` call, if the turn is a close crop after a crop listing."""
    return _crop_call(text) if CLOSE_LOOK in text else None


def _crop_call(text: str) -> tuple[float, float] | None:
    """The window of a turn's ``crop_video`` call (None: no such call, or its times unreadable)."""
    call = parse_turn(text).tool_call
    if call is None or call.name != "crop_video":
        return None
    try:
        return float(call.arguments["start_time"]), float(call.arguments["end_time"])
    except (KeyError, TypeError, ValueError):
        return None


def listing_scores(
    trajectories: Iterable[Trajectory], samples: Mapping[str, Sample], style: SearchStyle | None = None
) -> dict[str, Any]:
    """Per kind: ``written`` (listings the agent wrote), ``exact`` (share exactly right) and ``items``
    (share of the true items written right, in place), over every listing in ``trajectories``. A
    preview listing counts on the first turn only (its frames are the preview); a crop listing on a
    turn whose observation was a crop. ``close``: every close crop written after a crop listing,
    ``exact`` when both times are the window on the true listing (none when no shown frame holds the
    symbol), ``items`` the share of the two times right. Kinds with nothing written are left out.

    Where a step goes wrong, ``crop`` adds ``on_screen`` (crop listings of frames of which one shows
    the symbol) and ``named`` (of those, listings naming a symbol anywhere); ``close`` adds
    ``after_named`` (close crops after a listing that names a symbol at times it wrote well) and
    ``own`` (of those, close crops that are the window on the agent's own listing, right or wrong).
    ``style``: how the run's reference writes crop listings and where its close crops start
    (:class:`~medscope_gym.agents.scripted.SearchStyle`). A listing of the close crop before the answer
    (``SearchStyle.list_close``) counts as a crop listing.
    """
    style = style or SearchStyle()
    found: dict[str, list[tuple[bool, float]]] = {kind: [] for kind in SCORED_KINDS}
    counts = {"on_screen": 0, "named": 0, "after_named": 0, "own": 0}
    for trajectory in trajectories:
        sample = samples[trajectory.sample_id]
        for k, turn in enumerate(trajectory.turns):
            for match in _LISTING.finditer(turn.action_text):
                kind, written = match.group(1), match.group(2)
                times = _shown_times(trajectory, k)
                if (kind == "preview") != (k == 0) or not len(times):
                    continue
                truth = true_listing(sample, times, kind, style)
                items, right_items = written.split("; "), truth.split("; ")
                own = _own_window(items, style.close_from) if kind == "crop" else None
                if kind == "crop" and any(label != "no" for label in _true_labels(sample, times, kind)):
                    counts["on_screen"] += 1
                    counts["named"] += any(_label(item) != "no" for item in items)
                hits = sum(a == b for a, b in zip(items, right_items))
                found[kind].append((written == truth, hits / len(right_items)))
                window = _close_crop(turn.action_text) if kind == "crop" else None
                if window is not None:
                    truth_labels = _true_labels(sample, times, "crop")
                    right = close_window(times, truth_labels, style.close_from) or (None, None)
                    found["close"].append((window == right, sum(a == b for a, b in zip(window, right)) / 2))
                    if own is not None:
                        counts["after_named"] += 1
                        counts["own"] += window == own
    scores: dict[str, Any] = {
        kind: {
            "written": len(rows),
            "exact": float(np.mean([e for e, _ in rows])),
            "items": float(np.mean([i for _, i in rows])),
        }
        for kind, rows in found.items()
        if rows
    }
    for kind, keys in (("crop", ("on_screen", "named")), ("close", ("after_named", "own"))):
        if kind in scores:
            scores[kind].update({key: counts[key] for key in keys})
    return scores


def first_crop_scores(
    trajectories: Iterable[Trajectory],
    samples: Mapping[str, Sample],
    style: SearchStyle | None = None,
    decimals: int | None = 1,
) -> dict[str, Any]:
    """The first turn's crop against the search reference's first crop on the same preview frames.

    ``written``: episodes whose first turn calls ``crop_video``; ``exact``: share of those equal to the
    reference's (written in ``style``, with ``decimals`` as the recipe's SFT stages write it);
    ``zero_length``: crops whose two times are one. ``ranked``: crops for questions that name the
    second or a later highlighted interval, of which ``ranked_exact`` are the reference's and
    ``ranked_on_first`` crop the *first* stretch instead (the preview's first run of marked frames):
    an agent that does not count the stretches it listed. Empty when no first crop was written.
    """
    style = style or SearchStyle()
    rows: list[bool] = []
    counts = {"zero_length": 0, "ranked": 0, "ranked_exact": 0, "ranked_on_first": 0}
    for trajectory in trajectories:
        sample = samples[trajectory.sample_id]
        times = np.sort(_shown_times(trajectory, 0)) if trajectory.turns else np.array([])
        window = _crop_call(trajectory.turns[0].action_text) if len(times) else None
        if window is None:
            continue
        reference = SearchingOracle(decimals=decimals, style=style)
        reference.begin(0, {"video_times": times}, {"duration": sample.duration}, sample)
        expected = _crop_call(reference.act([0], [{}], [{"tool_log": []}])[0])
        rows.append(window == expected)
        counts["zero_length"] += window[0] == window[1]
        rank = named_rank(sample.question)
        if rank is not None and rank > 0:
            counts["ranked"] += 1
            counts["ranked_exact"] += window == expected
            counts["ranked_on_first"] += window == _first_stretch(sample, times)
    if not rows:
        return {}
    return {"written": len(rows), "exact": float(np.mean(rows)), **counts}


def _first_stretch(sample: Sample, times: np.ndarray) -> tuple[float, float] | None:
    """The first run of consecutive preview frames that show the bar: (its first time, its last)."""
    marked = [label == "bar" for label in _true_labels(sample, times, "preview")]
    return next(iter(marked_stretches(times, marked)), None)


def saved_listing_scores(
    evaluated: str | Path, heldout: str | Path, style: SearchStyle | None = None
) -> dict[str, Any]:
    """:func:`listing_scores` of the episodes an evaluation saved under ``evaluated/trajectories``, on
    the samples of the suite folder ``heldout``, with ``first_crop`` (:func:`first_crop_scores`) when
    any first turn crops."""
    samples = {s.id: s for s in Suite.from_spec(str(heldout))}
    trajectories = load_trajectories(Path(evaluated) / "trajectories", frames=False)
    scores = listing_scores(trajectories, samples, style)
    first = first_crop_scores(trajectories, samples, style)
    return {**scores, "first_crop": first} if first else scores


def _own_window(items: list[str], close_from: str = "before") -> tuple[float, float] | None:
    """The close crop an agent's own crop listing calls for ("30.0 no; 30.5 a red ring ..."): the
    window from its item before the first that names something to the item after the last; None when
    it names nothing or an item is not "time label" (marked or not,
    :func:`~medscope_gym.agents.scripted.unmarked_item`)."""
    try:
        times = [float(unmarked_item(item).split(" ", 1)[0]) for item in items]
    except ValueError:
        return None
    return close_window(times, [_label(item) for item in items], close_from)


def _label(item: str) -> str:
    """What a listing's item says its frame shows (after the time; "no" when nothing follows it)."""
    item = unmarked_item(item)
    return item.split(" ", 1)[1] if " " in item else "no"
