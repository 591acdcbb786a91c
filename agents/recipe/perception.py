"""Stage I of the testbed recipe: perception warm-up on dense captions and timestamped previews.

The paper warms the model up on dense timestamped captions before any tool use. Here that is a set of
single-turn skills, each trained with a fresh testbed video per example (nothing is seen twice) and
scored on videos no training example came from:

- ``symbol``: three frames at a symbol, each followed by its time (as ``get_frame`` shows them), and the
  symbol in the dense captions' words ("a red ring at the centre");
- ``frames``: the same at any moment, half at a symbol: what the middle frame shows ("a red ring at the
  centre", "nothing highlighted", "a highlighted interval, no symbol");
- ``crop``: a 2 fps clip between the two preview frames around a symbol (as ``crop_video`` shows it, one
  video) and the symbol, in the same words; with ``crops_as_frames``, the clip as timestamped frames
  and every frame listed with what it shows ("30.0 no; 30.5 a red ring at the centre; ..."), as Stage
  II's reference lists a crop;
- ``preview``: the 16 timestamped 32×32 preview frames and the k-th highlighted interval, answered
  with the two preview frames around its symbol ("35.5-43.5 s"), which are the times a crop needs;
- ``highlights``: the same preview, answered with every frame's time and whether it shows the white
  bar ("0.5 no; 8.5 no; 16.5 bar; ..."), the first turn of Stage II's reference: one look and one
  copied time per frame, the step of ``preview`` that needs the pixels (not in the default mix;
  ``medscope recipe-probe --skills highlights`` measures it);
- ``select``: the step after that listing, in an episode's first turn: the listing given (shown, not
  trained on), the answer is the reference's interval sentence and its ``crop_video`` call ("The
  second highlighted interval is 89.5-98.5 s, so I crop it." and the call with those two times). It
  asks for two copies that nothing else drills: the question's ordinal, and times from the listing
  into the sentence and from the sentence into the call. Scored as a whole and per part
  (``select/words``, ``select/times``, ``select/call``), and per what the question names
  (``select/first``: the first highlighted interval, or none, when the reference searches from the
  first; ``select/later``: the second to fourth). Half or more of the picks are of the first, so a
  model that always picks it passes ``select`` 0.5; only ``select/later`` shows the question read;
- ``zoom``: the step after a crop listing, in a crop's turn: the crop's frames and the env's lines, the
  listing given, the answer is the reference's close crop, from the listed frame before the first that
  shows the symbol to the frame after the last ("I look closely at 33.5-37.5 s, the frames around
  it." and the call with those times): one look back along the listing and two copied times. Always
  listed as frames. Scored as ``select`` is (``zoom/words``, ``zoom/times``, ``zoom/call``);
- ``window``: ``zoom`` without its frames: the crop's lines and the listing as text, the same close
  crop as the answer. The look back along the listing needs no pixels, and the turn without its
  frames is under half as long (~375 tokens, ~810 with them), so it is drilled on its own
  (``window_steps``) as ``copy`` drills copying.
  Its held-out examples are ``zoom``'s, frames removed: the two scores differ only by the frames;
- ``ordinal``: ``select``'s question alone, as text (no frames, no listing), answered with the
  highlighted interval the reference crops first ("The third highlighted interval."; a grounding
  question names none, and the search starts at the first). ``ordinal_steps`` of it come after the
  window drill: the copy of the question's ordinal that ``select`` needs, drilled where it is the
  answer's one decision (the same videos' questions as ``select``'s; scored ``ordinal/first`` and
  ``ordinal/later`` as ``select`` is);
- ``answer``: the step after the close crop, in its turn: the question as the env asks it, the close
  crop's frames with the env's lines, and the reference's last turn as the answer ("The crop shows a
  red ring at the centre. That is option B, red ring." and ``<answer>B</answer>``; for a grounding
  question the interval, from the frames that show the symbol). Scored per kind of answer
  (``answer/choice``, ``answer/interval``);
- ``copy``: no frames; a text list of 8-16 items at random times ("24.0 bar; 63.0 no; 109.0 a green
  cross at the centre; ...") written out again. Every answer token is a copy from the context: the
  drill for what ``select`` and the listings need and a model from scratch cannot do
  (docs/results.md, "The copy wall"). ``copy_steps`` of it come first.

A turn of a tool episode spends ~150 imitated tokens on protocol text and two or three on what the
frames showed. These examples spend every imitated token on reading, at a tenth of the sequence
length. After the copy drill, ``window_steps`` of ``window`` and ``ordinal_steps`` of ``ordinal``,
then reading: ``reading_steps`` of
``symbol`` alone (or reading first, before the drills: ``reading_first``). A model from scratch
learns the colours at once and the shapes only after several thousand symbol examples, suddenly; in
a mix where a sixth of the examples are frames at a symbol, it had not by 900 steps (docs/results.md).
Then ``listing_steps`` of the listings alone (``listing_shares`` weights them): a listing, too, is
learned suddenly and late. Then the mix. The chat
layout is the episodes' own (each image followed by its time, ``at t s``), so what is learned here
carries over.
``medscope recipe-probe`` trains these skills alone, from scratch (docs/results.md, "Reading probe").
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.agents.scripted import SearchStyle, unmarked_item
from medscope_gym.config import Config, check, non_negative_int, positive_float, positive_int
from medscope_gym.errors import ConfigError

__all__ = [
    "ExampleBatcher",
    "PERCEPTION_SKILLS",
    "PerceptionConfig",
    "Rehearsal",
    "backward_step",
    "listing_skills",
    "make_examples",
    "run_perception",
    "policy_system_prompt",
    "save_perception_model",
    "train_perception",
]

PERCEPTION_SKILLS: tuple[str, ...] = (
    "symbol",
    "frames",
    "crop",
    "preview",
    "highlights",
    "select",
    "copy",
    "zoom",
    "window",
    "answer",
    "ordinal",
    "search",
)
_QUESTIONS = {
    "symbol": "What is on screen in these frames?",
    "frames": "What is on screen in these frames?",
    "crop": "Which symbol does this clip show?",
    "highlights": "Which preview frames show the white bar?",
    "copy": "Write this list out again, item by item:",
    "ordinal": "Which highlighted interval does the question name, or search from?",
}
_CROP_LISTING = "What does each frame of this crop show?"
#: A close crop's times as the search reference writes them, and what its answer turn says it saw.
_CLOSE_TIMES = re.compile(r"I look closely at (\S+)-(\S+) s")
#: A crop call's two times, where a turn has no close crop (``select``'s first crop).
_CALL_TIMES = re.compile(r'"start_time": ([^,]+), "end_time": ([^}]+)\}')
_READ = re.compile(r"The crop shows (a .+? at the centre)")
#: Turns and tool calls of the recipe's episodes (ClinVideoEnv's defaults), for the budget line.
_ENV_TURNS = 5
#: Held-out videos: seeds no training stream draws (training streams start at 1e6 * (seed + 1)).
_HELDOUT_SEED = 999_000_000
#: Text drills and the skill whose examples they are, frames removed: the same draws from a seed.
_FRAMELESS = {"window": "zoom", "ordinal": "select"}


def _drawn_as(skill: str) -> str:
    """The skill whose random stream ``skill``'s examples come from (a text drill: its framed skill's)."""
    return _FRAMELESS.get(skill, skill)


@dataclass
class PerceptionConfig(Config):
    """Stage I: single-turn perception examples from fresh testbed videos."""

    steps: int = 800
    """Optimizer steps on the mix of ``skills``."""
    copy_steps: int = 0
    """Optimizer steps on ``copy`` alone before everything else: text lists written out again, so the
    model learns to copy from its context (the times of a listing, the question's ordinal, the call's
    times) where only a few tokens of each later example ask for it."""
    copy_until: float | None = None
    """Held-out ``copy/items`` (the share of list items written out right) the copy drill must reach
    before the next phase starts (None: the drill is ``copy_steps`` long). Checked and extended like
    ``reading_until``, ``copy_chunk`` steps at a time up to ``copy_max_steps``, on fresh lists. Copying,
    like reading, is learned suddenly and at a step that depends on the seed: after 3,000 steps v17r's
    seed 1 wrote 0.967 of the items right and its seed 2 0.601 (docs/results.md, "v18: reading
    first"). A seed that reaches it in ``copy_steps`` trains exactly as without it."""
    copy_chunk: int = 200
    """Steps added to the copy drill at a time while ``copy_until`` is not reached."""
    copy_max_steps: int = 6000
    """Most steps the copy drill takes with ``copy_until`` (its ``copy_steps`` included)."""
    window_steps: int = 0
    """Optimizer steps on ``window`` alone after the copy drill: a crop listing given as text, the close
    crop around its symbol as the answer (``zoom``'s step without the frames). In the listing phase,
    ``zoom`` shared with three other skills was not learned (docs/results.md, "v9"). Without it,
    seed 0's Stage I learned every skill but ``zoom`` better (docs/results.md, "After v10")."""
    ordinal_steps: int = 0
    """Optimizer steps on ``ordinal`` alone after the window drill, before the listing phase: an
    episode's question as text, answered with the highlighted interval the reference crops first ("The
    third highlighted interval."; a grounding question's search starts at the first). No Stage I had
    taught the pick to read the question (v18kld seed 2: ``select/later`` 0.000). From that model the
    drill is learned in 200 steps, and at even preview times the pick after 300 of it reached
    ``select/later`` 0.692 and 0.654 in 300 steps (two seeds), ``select`` alone 0.346 (one seed; the
    scores swing as much; docs/results.md, "The question, unread")."""
    search_steps: int = 0
    """Optimizer steps on ``search`` alone after the ordinal drill, before the listing phase: an episode
    as text up to a crop's listing, answered with the search reference's next step, the close crop or
    the next highlighted interval's crop. Nothing else in Stage I shows a turn that moves on, and no
    Stage II model did: on v18kld seed 2's held-out grounding questions every episode closed in on the
    first stretch, whatever it showed (docs/results.md, "The question, unread")."""
    restate_question: bool = False
    """Open every crop's turn (``search``'s tool responses, and ``crop``, ``zoom`` and ``window`` laid
    out as an episode's) with the question, as a policy with ``FrameConfig.restate_question`` is shown
    them (the recipe sets it from its ``frames``)."""
    reading_steps: int = 0
    """Optimizer steps on ``symbol`` alone before the mix (one learning-rate schedule over all phases)."""
    reading_first: bool = False
    """Put the reading phase first, before the copy drill and the window drill (False: after them).
    Read after the drill, the model loses the drill's copying while it learns the shapes (v17r seed 1:
    copy items 0.967 before the reading phase, 0.040 after it), and the listing phase brings the
    listings' times back but not their labels (docs/results.md, "v17r: reading until it reads").
    The copy drill has no frames, so it does not train the vision tower that reading shaped."""
    reading_until: float | None = None
    """Held-out ``symbol`` accuracy the reading phase must reach before the next phase starts (None: the
    phase is ``reading_steps`` long). Checked when those steps end; below it, reading goes on for
    ``reading_chunk`` more steps on fresh videos, checked again after each chunk, up to
    ``reading_max_steps`` in all, and the learning-rate schedule stretches over the added steps. A
    model from scratch learns the shapes suddenly, at a time that depends on the seed: v17's 600
    steps took seed 0's ``symbol`` to 1.000 and seeds 1 and 2 to 0.600 and 0.583, and those two never
    learned the crop listing (docs/results.md, "v17 on three seeds"). A seed that reaches it in
    ``reading_steps`` trains exactly as without it."""
    reading_chunk: int = 200
    """Steps added to the reading phase at a time while ``reading_until`` is not reached."""
    reading_max_steps: int = 1800
    """Most steps the reading phase takes with ``reading_until`` (its ``reading_steps`` included)."""
    rehearse_earlier: int = 0
    """Examples of each step, in every drill after the first and in the listing phase, that rehearse the
    drills before it (``symbol``, ``copy``, ``window``, whichever came earlier, one skill per step in
    turn), fresh ones from a stream of their own, in place of as many of the phase's own. Each phase
    wipes out what the one before it taught: reading, the copy drill's copying (0.967 → 0.040 of the
    items, v17r seed 1); the copy drill, reading (held-out ``symbol`` 1.000 → 0.000, v18 seed 2); and
    the listing phase then has to learn both again (docs/results.md, "v18: reading first"). 0: none."""
    listing_steps: int = 0
    """Optimizer steps on the listing skills alone after the reading phase, before the mix:
    ``highlights``, ``crop`` when ``crops_as_frames`` (its answer is then a listing too), and
    ``select``, ``zoom`` and ``answer`` when they are among ``skills`` (the steps after the listings
    and after the close crop)."""
    listing_until: dict[str, float] = field(default_factory=dict)
    """Held-out scores the listing phase must all reach before the mix starts (``{"select": 0.5}``: any
    score of a listing skill, e.g. ``crop``, ``crop@episode/shown``; empty: the phase is
    ``listing_steps`` long). Checked when those steps end; below, the phase goes on for
    ``listing_chunk`` more steps of fresh examples in its shares, checked again after each chunk, up to
    ``listing_max_steps`` in all. The listing phase's skills are learned one after another, each
    suddenly: v18's seed 2 listed the preview only after 1,200 of its 3,000 steps and never picked
    the interval (``select`` 0.017); 600 more listing steps from its end took ``select`` to 0.475
    (docs/results.md, "v18: reading first")."""
    listing_chunk: int = 200
    """Steps added to the listing phase at a time while ``listing_until`` is not reached."""
    listing_max_steps: int = 6000
    """Most steps the listing phase takes with ``listing_until`` (its ``listing_steps`` included)."""
    listing_shares: dict[str, float] = field(default_factory=dict)
    """Relative share of each listing-phase skill (``{"crop": 3.0}``; 1 for any not named). v10's
    Stage I, the crop listing sharing the phase four ways, named the symbol in 0.55 and 0.30 of the
    held-out crops it wrote itself; 600 more steps of it alone took both to 0.93 and wiped out
    ``select``, ``zoom`` and the preview listing (docs/results.md, "After v10"): the crop listing
    needs more of the phase, the others their share of it."""
    batch_size: int = 8
    """Examples per step, each from a fresh video."""
    micro_batches: int = 1
    """Forward/backward passes per step: the step's examples sorted by length and split into this many
    groups, each loss weighted by its share of the step's answer tokens. The gradient is the one
    batch's, up to float rounding, with less padding: examples of different skills differ in length by
    up to 2x (``python -m benchmarks.perception_step`` measures the time). 1: one padded batch."""
    learning_rate: float = 5e-4
    """Peak AdamW learning rate (``warmup_steps`` of linear warm-up, then linear decay to 0)."""
    warmup_steps: int = 20
    """Linear warm-up of the learning rate."""
    decay_steps: int | None = None
    """Steps at the end over which the learning rate decays linearly to 0, after staying at its peak
    (None: it decays over all of Stage I). One decay over every phase leaves the last ones the least:
    v18 seed 2's listing phase ended at 4e-5, and from its end 600 listing steps at 5e-5 taught the
    pick of the interval to 0.125 of held-out first turns, at 2e-4 to 0.475 (docs/results.md, "v18:
    reading first"). Steps the waiting phases add come before the decay."""
    skills: tuple[str, ...] = ("symbol", "frames", "crop", "preview")
    """Skills mixed in equal shares (any of :data:`PERCEPTION_SKILLS`)."""
    heldout: int = 60
    """Held-out examples per skill, scored every ``eval_every`` steps and at the end."""
    eval_every: int = 200
    """Steps between held-out scores."""
    save_every: int = 600
    """Steps between Stage I's checkpoints (``checkpoint-N`` in its run folder, the latest kept), from
    which a killed run resumes exactly where it was (0: none). A step is ~0.2–1.5 s on one CPU core."""
    duration: tuple[float, float] = (90.0, 150.0)
    """Shortest and longest training video, seconds (held-out videos: the same range)."""
    events: tuple[int, int] = (3, 4)
    """Least and most symbols per video, each in its own highlighted interval (``TestbedConfig.events``):
    the intervals a question can name, and a search can move on to."""
    seed: int = 0
    """Seed of the training videos and the data order (the model's weights come from its folder)."""
    threads: int | None = 1
    """torch CPU threads."""
    crops_as_frames: bool = False
    """``crop`` examples as Stage II shows crops with ``FrameConfig.crops_as_frames``: separate
    timestamped frames, answered with every frame listed ("30.0 no; 31.5 a red ring at the centre")."""
    irregular_times: float = 0.0
    """Share of the training listings (``highlights``; ``crop`` with ``crops_as_frames``) shown at
    irregular times: the preview's 16 frames drawn at random from the whole video, a crop's from a
    window up to three times as wide, in order. The env spaces its frames evenly, and a listing of
    evenly spaced times can be written by counting on from the first one; that carries over to no other
    spacing or video length (docs/results.md, "v6 diagnosis"). Irregular times can only be copied.
    Held-out examples keep the env's even spacing."""
    even_first: float = 0.0
    """Share of the listing phase, its first steps, whose listings keep the env's even times before
    ``irregular_times`` applies: from scratch a model learns even listings quickly by counting on,
    and irregular ones, which need copying, hardly at all; from a counting model, irregular ones
    teach copying within 1,500 steps (docs/results.md, "v6 diagnosis")."""
    episode_layout: float = 0.0
    """Share of the training listings laid out as in an episode: a preview listing (``highlights``) as
    the first turn (the policy's system prompt, the frames, the env's question and preview text), a
    crop listing (``crop`` with ``crops_as_frames``) as a crop's turn (the system prompt, the frames,
    the env's crop and budget lines), each answered as the search reference opens its reasoning
    ("<think>The preview frames: 0.5 no; ...", "<think>The crop frames: ..."). A listing learned only
    in Stage I's own short layout is not written in an episode, where the answer sits a hundred tokens
    further from the frames (docs/results.md, "v6 diagnosis"). When > 0, held-out scores add
    ``highlights@episode`` and ``crop@episode``, the listings in that layout."""
    first_turn: bool = False
    """Answer an episode-layout preview example with the search reference's whole first turn: the
    listing, then the highlighted interval it picks for the question and the ``crop_video`` call, not
    the listing alone. Picking the k-th run of "bar" items and copying its two times is a step of its
    own; Stage II's ~1,600 first turns did not teach it (docs/results.md, "v6 diagnosis")."""
    heldout_duration: tuple[float, float] | None = None
    """Shortest and longest held-out video, seconds (None: ``duration``): e.g. longer than the training
    videos, to see whether a skill carries over to other lengths."""
    generated: int = 0
    """Held-out crop listings in the episode layout (``crop@episode``'s first examples) written by the
    model greedily, untaught, once at the end, and scored: ``crop@episode/generated`` (the listing
    exactly right) and ``crop@episode/generated-named`` (it names the crop's symbol on some frame);
    likewise ``select``'s first crops, ``zoom``'s close crops and ``answer``'s last turns when those
    are scored (``select/generated``, ``zoom/generated``, ``answer/generated``).
    Teacher-forced scores hide what a listing does on its own: a model that writes "no" for every
    frame is right on ~85% of the items, and one wrong label early changes what follows
    (docs/results.md, "After v10"). Needs ``crops_as_frames`` and ``episode_layout`` > 0; 40 examples take
    under a minute on one core."""
    search: dict[str, Any] = field(default_factory=dict)
    """:class:`~medscope_gym.agents.scripted.SearchStyle` fields: how ``zoom``'s close crop and
    ``answer``'s turn are written (empty: the search reference's original script; Stage II's search
    reference must use the same)."""
    ranked: bool = False
    """Score an answer naming a symbol by whether its caption is the likeliest of the twelve, not by
    exact match: reading, apart from the answer format (a Stage II model answers in the protocol's)."""

    def __post_init__(self) -> None:
        self.skills = tuple(self.skills)
        self.duration = tuple(float(x) for x in self.duration)  # type: ignore[assignment]
        from medscope_gym.synthetic.testbed import events_range

        self.events = events_range(self.events, "PerceptionConfig.events")
        if self.heldout_duration is not None:
            self.heldout_duration = tuple(float(x) for x in self.heldout_duration)  # type: ignore[assignment]
        check(self, positive_int, "batch_size", "micro_batches", "heldout", "eval_every")
        check(
            self,
            non_negative_int,
            "generated",
            "steps",
            "warmup_steps",
            "copy_steps",
            "window_steps",
            "ordinal_steps",
            "search_steps",
            "reading_steps",
            "listing_steps",
            "save_every",
        )
        check(self, positive_int, "decay_steps", optional=True)
        check(
            self,
            positive_int,
            "reading_chunk",
            "reading_max_steps",
            "copy_chunk",
            "copy_max_steps",
            "listing_chunk",
            "listing_max_steps",
        )
        for phase, score in (("reading", "symbol accuracy"), ("copy", "copy/items share")):
            until, steps = getattr(self, f"{phase}_until"), getattr(self, f"{phase}_steps")
            if until is None:
                continue
            if not 0.0 < until <= 1.0 or steps == 0:
                raise ConfigError(
                    f"PerceptionConfig.{phase}_until is a held-out {score} in (0, 1] checked after "
                    f"{phase}_steps > 0; got {until!r} with {phase}_steps {steps}"
                )
            cap = getattr(self, f"{phase}_max_steps")
            if cap < steps:
                raise ConfigError(
                    f"PerceptionConfig.{phase}_max_steps ({cap}) is below {phase}_steps ({steps})"
                )
        self.listing_until = {str(k): float(v) for k, v in self.listing_until.items()}
        if self.listing_until:
            listing = listing_skills(self)
            scored = listing + tuple(
                f"{skill}@episode"
                for skill in ("highlights", "crop")
                if skill in listing and self.episode_layout > 0
            )
            bad = {
                k: v for k, v in self.listing_until.items() if k.split("/")[0] not in scored or not 0 < v <= 1
            }
            if bad or self.listing_steps == 0 or self.listing_max_steps < self.listing_steps:
                raise ConfigError(
                    "PerceptionConfig.listing_until takes held-out scores in (0, 1] of the listing skills "
                    f"({', '.join(scored)}, e.g. 'select' or 'crop/shown'), checked after listing_steps > 0 "
                    f"and up to listing_max_steps >= listing_steps; got {bad or self.listing_until} with "
                    f"listing_steps {self.listing_steps}, listing_max_steps {self.listing_max_steps}"
                )
        if not 0 <= self.rehearse_earlier < self.batch_size:
            raise ConfigError(
                f"PerceptionConfig.rehearse_earlier takes that many of a step's {self.batch_size} examples "
                f"(batch_size); it must be in [0, batch_size), got {self.rehearse_earlier}"
            )
        check(self, positive_int, "threads", optional=True)
        check(self, positive_float, "learning_rate")
        unknown = [s for s in self.skills if s not in PERCEPTION_SKILLS]
        if unknown or not self.skills:
            raise ConfigError(
                f"PerceptionConfig.skills: unknown {unknown}; known: {', '.join(PERCEPTION_SKILLS)}"
            )
        for name in ("duration", "heldout_duration"):
            value = getattr(self, name)
            if value is not None and not 0 < value[0] <= value[1]:
                raise ConfigError(f"PerceptionConfig.{name} must be (shortest, longest), got {value}")
        crop_scored = "crop" in self.skills or self.listing_steps > 0
        if self.generated and not (self.crops_as_frames and self.episode_layout > 0 and crop_scored):
            raise ConfigError(
                "PerceptionConfig.generated scores crop@episode listings: it needs crops_as_frames, "
                f"episode_layout > 0 and crop trained (got {self.crops_as_frames}, {self.episode_layout}, "
                f"skills {list(self.skills)}, listing_steps {self.listing_steps})"
            )
        self.style  # noqa: B018 (checks the search fields early)
        self.listing_shares = {str(k): float(v) for k, v in self.listing_shares.items()}
        bad = {k: v for k, v in self.listing_shares.items() if k not in PERCEPTION_SKILLS or not v > 0}
        if bad:
            raise ConfigError(f"PerceptionConfig.listing_shares: skills with shares > 0, got {bad}")
        for name in ("irregular_times", "episode_layout", "even_first"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"PerceptionConfig.{name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def style(self) -> SearchStyle:
        """``search`` as a :class:`~medscope_gym.agents.scripted.SearchStyle`."""
        return SearchStyle.from_dict(self.search, "PerceptionConfig.search")


@dataclass
class _Example:
    skill: str
    images: list[np.ndarray]
    image_times: list[float]
    video: np.ndarray | None
    video_times: np.ndarray | None
    question: str
    answer: str
    kind: str = ""
    """What the answer is about, for per-kind scores (``frames``: symbol / highlight / nothing;
    ``answer``: choice / interval; ``select``: first / later, the highlighted interval the question
    names)."""
    episode: bool = False
    """Laid out as an episode's turn: after the system prompt, answered without ending the turn."""
    given: str = ""
    """The assistant's text before ``answer``, shown but not trained on or scored (``select``: the
    first turn's listing)."""


def _highlighted(video, frame: int) -> bool:
    """Whether frame ``frame`` shows the white bar."""
    return any(ev.highlight_start_frame <= frame < ev.highlight_end_frame for ev in video.events)


def _visible_at(video, frame: int) -> str:
    """What frame ``frame`` shows, in the dense captions' words. Only what is visible: the captions'
    "a highlighted interval begins; no symbol yet" and "the symbol has gone; the highlight ends" look
    the same in a frame, so both are "a highlighted interval, no symbol"."""
    from medscope_gym.synthetic.testbed import symbol_caption

    for ev in video.events:
        if ev.start_frame <= frame < ev.end_frame:
            return symbol_caption(ev.symbol)
    if _highlighted(video, frame):
        return "a highlighted interval, no symbol"
    return "nothing highlighted"


def _irregular(rng: np.random.Generator, first: int, last: int, count: int) -> np.ndarray:
    """``count`` distinct frames in ``[first, last]`` at random, in order (all of them when fewer)."""
    pool = np.arange(max(0, first), last + 1)
    return np.sort(rng.choice(pool, size=min(count, len(pool)), replace=False))


def _copy_example(rng: np.random.Generator, duration: tuple[float, float]) -> _Example:
    """A listing of 8-16 items at random times up to ``duration``'s longest video, each "bar", "no" or
    a symbol's caption (a third each), to be written out again: every answer token a copy from the
    question."""
    from medscope_gym.agents.scripted import frame_listing
    from medscope_gym.synthetic.testbed import SYMBOLS, symbol_caption

    count = int(rng.integers(8, 17))
    halves = rng.choice(int(2 * duration[1]), size=count, replace=False)
    captions = [symbol_caption(s) for s in SYMBOLS]
    labels = [
        ("bar", "no", captions[int(rng.integers(len(captions)))])[int(rng.integers(3))] for _ in range(count)
    ]
    listing = frame_listing(np.sort(halves) / 2, labels)
    return _Example("copy", [], [], None, None, f"{_QUESTIONS['copy']}\n{listing}", listing)


def _asked(video, seed: int) -> list:
    """The testbed questions the env would ask about ``video`` (drawn with ``seed``), as samples."""
    from medscope_gym.synthetic.testbed import MAIN_TEMPLATES, TestbedConfig, testbed_questions

    return testbed_questions(video, f"p{seed}", TestbedConfig(templates=MAIN_TEMPLATES), seed)


def _first_turn(
    video, seed: int, times: np.ndarray, rng: np.random.Generator, style: SearchStyle
) -> tuple[str, str, bool]:
    """One of ``video``'s testbed questions at random, as the env opens an episode with the preview
    frames at ``times`` (the user text), the search reference's first turn on those frames, in
    ``style``, and whether that turn crops the stretch the question names by rank
    (:meth:`~medscope_gym.agents.scripted.SearchingOracle.crops_named`)."""
    from medscope_gym.agents.scripted import SearchingOracle
    from medscope_gym.prompts import question_text
    from medscope_gym.tools import preview_text

    asked = _asked(video, seed)
    sample = asked[int(rng.integers(len(asked)))]
    question = f"{question_text(sample, video.duration)}\n{preview_text(video.duration, times)}"
    reference = SearchingOracle(style=style)
    reference.begin(0, {"video_times": times}, {"duration": video.duration}, sample)
    return question, reference.act([0], [{}], [{"tool_log": []}])[0], reference.crops_named(0)


def _questions_about(video, seed: int, event: int) -> list[str]:
    """The testbed questions about ``video``'s event ``event`` (its symbol, or its highlighted
    interval's rank), as the env asks them: a crop of that event's stretch is the one their search
    closes in on."""
    from medscope_gym.prompts import question_text

    asked = _asked(video, seed)
    return [question_text(q, video.duration) for q in asked if q.extra["query"]["event"] == event]


def _between_previews(shown: np.ndarray, k: int) -> np.ndarray:
    """Frame indices of the crop between preview frames ``k - 1`` and ``k`` (``shown``: the preview's
    frame indices), at most 16, evenly spread, as the env thins a long crop."""
    idx = np.arange(shown[k - 1], shown[k] + 1)
    return idx[np.unique(np.linspace(0, len(idx) - 1, min(len(idx), 16)).round().astype(int))]


def _last_turn(video, seed: int, rng: np.random.Generator, style: SearchStyle | None = None):
    """One of ``video``'s testbed questions at random and the close crop the search reference makes for
    it (from the listed frame before its symbol to the frame after, in the coarse crop between the
    preview frames around it): the user text (the question as the env asks it, the crop's line and
    budget line), the close crop's frames and times, the reference's last turn, which names the
    symbol and answers, and the kind of answer ("choice", "interval"). The frames are None when the
    coarse crop's frames miss the symbol. ``style``: how the search reference starts its close crop
    and writes its answer (:class:`~medscope_gym.agents.scripted.SearchStyle`)."""
    from medscope_gym.agents.scripted import SearchingOracle, close_window
    from medscope_gym.chat import tool_response
    from medscope_gym.envs.clinvideo import budget_text
    from medscope_gym.prompts import question_text
    from medscope_gym.suite.templates import balance_answer_positions
    from medscope_gym.synthetic.testbed import crop_frames, preview_frames, render_frames
    from medscope_gym.tools import crop_text

    asked = _asked(video, seed)
    # the correct option at a random letter, as the suites place it
    (sample,) = balance_answer_positions([asked[int(rng.integers(len(asked)))]], rng)
    ev = video.events[sample.extra["query"]["event"]]
    shown = preview_frames(video.num_frames, video.fps)
    coarse = _between_previews(shown, int(np.searchsorted(shown, ev.start_frame)))
    labels = ["symbol" if ev.start_frame <= f < ev.end_frame else "no" for f in coarse]
    question = question_text(sample, video.duration)
    style = style or SearchStyle()
    window = close_window((coarse / video.fps).tolist(), labels, style.close_from)
    if window is None:
        return question, None, [], "", sample.answer_type
    a, b = window
    idx = crop_frames(video.num_frames, video.fps, a, b)
    stamps = idx / video.fps
    turn = int(rng.integers(2, 5))  # the close crop comes second to fourth
    lines = tool_response(f"{question}\n{crop_text(a, b, stamps)}\n{budget_text(turn, 5, 5 - turn)}")
    reference = SearchingOracle(decimals=1, list_crops=16, style=style)
    reference.begin(0, {"video_times": shown / video.fps}, {"duration": video.duration}, sample)
    # past every crop of its plan (the close crop's frames shown), the reference answers
    ok = [{"name": "crop_video", "ok": True}] * 98 + [{"name": "crop_video", "ok": True, "interval": [a, b]}]
    answer = reference.act([0], [{"video_times": stamps}], [{"tool_log": ok}])[0]
    return lines, render_frames(video, idx), stamps.tolist(), answer, sample.answer_type


def _search_turn(
    video, seed: int, shown: np.ndarray, rng: np.random.Generator, style: SearchStyle, restate: bool
) -> tuple[str, str, str, str] | None:
    """A turn after one of the search reference's crops, as text, on one of ``video``'s testbed
    questions: the reset text (the question and the preview's line; the preview frames at indices
    ``shown`` left out), the earlier turns, tool responses and the crop's listing (given), the
    reference's next step (the answer) and its kind: ``close`` (the listing shows what the question
    asks about: the close crop) or ``next`` ("not what the question asks about; the next highlighted
    interval is ...": the next stretch's times, from the first turn's preview listing). Every question
    is played and the kind drawn evenly where the video has both: on a grounding question the
    reference moves on before as many stretches as precede the asked symbol's, and a choice question
    names its stretch, so played as they come about one turn in eight moves on. ``restate``: each
    tool response opens with the question (``FrameConfig.restate_question``). None when no turn after
    a crop lists it."""
    from medscope_gym.agents.scripted import CROP_LISTING, NOT_ASKED, SearchingOracle
    from medscope_gym.chat import tool_response
    from medscope_gym.envs.clinvideo import budget_text
    from medscope_gym.prompts import question_text
    from medscope_gym.protocol import parse_turn
    from medscope_gym.synthetic.testbed import crop_frames
    from medscope_gym.tools import crop_text, preview_text

    preview = shown / video.fps
    turns: dict[str, list[tuple[str, str, str]]] = {"close": [], "next": []}
    for sample in _asked(video, seed):
        question = question_text(sample, video.duration)
        restated = f"{question}\n" if restate else ""
        reference = SearchingOracle(decimals=1, list_crops=16, style=style)
        reference.begin(0, {"video_times": preview}, {"duration": video.duration}, sample)
        history = reference.act([0], [{}], [{"tool_log": []}])[0]
        step, crops = history, 0
        # the first crop, then each crop of the next stretch; the close crop ends the search
        while (call := parse_turn(step).tool_call) is not None and (crops == 0 or NOT_ASKED in step):
            a, b = float(call.arguments["start_time"]), float(call.arguments["end_time"])
            stamps = crop_frames(video.num_frames, video.fps, a, b) / video.fps
            crops += 1
            lines = f"{crop_text(a, b, stamps)}\n{budget_text(crops, _ENV_TURNS, _ENV_TURNS - crops)}"
            history += (
                f"<|im_end|>\n<|im_start|>user\n{tool_response(restated + lines)}"
                "<|im_end|>\n<|im_start|>assistant\n"
            )
            ok = [{"name": "crop_video", "ok": True}] * crops
            step = reference.act([0], [{"video_times": stamps}], [{"tool_log": ok}])[0]
            if step.startswith(f"<think>{CROP_LISTING}") and parse_turn(step).tool_call is not None:
                cut = step.find(". ", len(CROP_LISTING)) + 1  # the listing, given
                kind = "next" if NOT_ASKED in step else "close"
                turns[kind].append(
                    (f"{question}\n{preview_text(video.duration, preview)}", history + step[:cut], step[cut:])
                )
            history += step
    kinds = [kind for kind, found in turns.items() if found]
    if not kinds:
        return None
    kind = kinds[int(rng.integers(len(kinds)))]
    asked, given, answer = turns[kind][int(rng.integers(len(turns[kind])))]
    return asked, given, answer, kind


def make_examples(
    skill: str,
    first_seed: int,
    count: int,
    duration: tuple[float, float],
    crops_as_frames: bool = False,
    irregular: float = 0.0,
    episode: float = 0.0,
    first_turn: bool = False,
    style: SearchStyle | None = None,
    restate: bool = False,
    events: tuple[int, int] = (3, 4),
) -> list[_Example]:
    """``count`` examples of ``skill`` from consecutive testbed videos starting at seed ``first_seed``;
    ``crops_as_frames``: a ``crop`` example shows the clip as timestamped frames and is answered with
    the frames listed, as Stage II's reference lists them then; ``irregular``: the share of listings
    whose frames are drawn at random times (``PerceptionConfig.irregular_times``); ``episode``: the
    share of listings laid out as in an episode (``PerceptionConfig.episode_layout``); ``first_turn``:
    such a preview example answered with the search reference's whole first turn; ``style``: how the
    search reference writes ``zoom``'s close crop and ``answer``'s turn
    (:class:`~medscope_gym.agents.scripted.SearchStyle`); ``restate``: a crop's turn (``search``'s tool
    responses, and ``crop``, ``zoom`` and ``window`` laid out as an episode's) opens with the question,
    as a policy with ``FrameConfig.restate_question`` is shown it: for ``zoom``, a question about the
    symbol cropped, whose search closes in there; ``events``: the least and most symbols, each in its
    highlighted interval, per video (``TestbedConfig.events``)."""
    from medscope_gym.agents.scripted import (
        CROP_LISTING,
        PREVIEW_LISTING,
        close_look,
        close_window,
        named_interval,
        named_rank,
    )
    from medscope_gym.chat import tool_response
    from medscope_gym.envs.clinvideo import budget_text
    from medscope_gym.protocol import format_tool_call
    from medscope_gym.suite.labels import ordinal
    from medscope_gym.synthetic.testbed import (
        TESTBED_TOOLS,
        generate_testbed_video,
        preview_frames,
        render_frames,
        symbol_caption,
    )
    from medscope_gym.tools import crop_text
    from medscope_gym.video.resize import resize_frames

    style = style or SearchStyle()
    drawn = PERCEPTION_SKILLS.index(_drawn_as(skill))
    rng = np.random.default_rng([first_seed, drawn])
    layouts = np.random.default_rng([first_seed, drawn, 1])  # videos stay the same
    asks = np.random.default_rng([first_seed, drawn, 2])  # the restated questions: layouts stay the same
    out: list[_Example] = []
    seed = first_seed
    while len(out) < count:
        if skill == "copy":  # text alone: no video to draw
            out.append(_copy_example(rng, duration))
            continue
        video = generate_testbed_video(seed, float(rng.uniform(*duration)), events=events)
        seed += 1
        times = np.arange(video.num_frames) / video.fps  # a frame's time, as the env reports it
        j = int(rng.integers(len(video.events)))
        ev = video.events[j]
        if skill in ("symbol", "frames"):  # frames: half at a symbol, half anywhere
            centre = (
                int(rng.integers(ev.start_frame, ev.end_frame))
                if skill == "symbol" or rng.random() < 0.5
                else int(rng.integers(1, video.num_frames - 1))
            )
            idx = [centre - 1, centre, centre + 1]
            text = _visible_at(video, centre)
            kind = (
                "symbol"
                if text.endswith("at the centre")
                else "nothing"
                if "nothing" in text
                else "highlight"
            )
            frames = render_frames(video, idx)
            out.append(
                _Example(skill, list(frames), times[idx].tolist(), None, None, _QUESTIONS[skill], text, kind)
            )
        elif skill == "answer":
            question, clip, shown_times, answer, kind = _last_turn(video, seed, rng, style)
            if clip is None:  # no listed frame of the coarse crop shows the symbol: no close crop
                continue
            out.append(
                _Example(skill, list(clip), shown_times, None, None, question, answer, kind, episode=True)
            )
        elif skill == "search":  # a turn after a crop, as text: the close crop or the next stretch
            # the env's own, even preview: at random times a stretch of "bar" frames often misses its
            # symbol, and the reference has no stretch to search (one turn in nine then moves on)
            shown = preview_frames(video.num_frames, video.fps)
            played = _search_turn(video, seed, shown, rng, style, restate)
            if played is None:
                continue
            question, given, answer, kind = played
            out.append(_Example(skill, [], [], None, None, question, answer, kind, episode=True, given=given))
        elif skill in ("crop", "zoom", "window"):  # a crop between the preview frames around a symbol
            shown = preview_frames(video.num_frames, video.fps)
            k = int(np.searchsorted(shown, ev.start_frame))
            looks = skill in ("zoom", "window")  # the step after the listing
            as_frames = crops_as_frames or looks
            if as_frames and irregular and rng.random() < irregular:  # a wider window, random frames
                width = int(shown[k] - shown[k - 1])
                first = shown[k - 1] - int(rng.integers(0, width + 1))
                idx = _irregular(rng, first, min(video.num_frames - 1, first + 3 * width), 16)
            else:
                idx = _between_previews(shown, k)
            clip = render_frames(video, idx) if skill != "window" else []
            if as_frames:
                labels = [
                    symbol_caption(ev.symbol) if ev.start_frame <= f < ev.end_frame else "no" for f in idx
                ]
                listing = style.crop_listing(times[idx], labels)
                shown_times = times[idx].tolist()
                laid = looks or bool(episode and layouts.random() < episode)
                window = close_window(shown_times, labels, style.close_from)
                if looks and window is None:  # no frame of a random window shows the symbol
                    continue
                given = ""
                if laid:  # a crop's turn: its lines, then the listing (zoom: given), then the close crop
                    turn = int(layouts.integers(1, 4))  # the first to third crop of an episode
                    budget = budget_text(turn, _ENV_TURNS, _ENV_TURNS - turn)
                    lines = f"{crop_text(shown_times[0], shown_times[-1], times[idx])}\n{budget}"
                    if restate:  # the question first, as the policy is shown a tool response
                        about = _questions_about(video, seed, j)
                        if not about:
                            continue
                        lines = f"{about[int(asks.integers(len(about)))]}\n{lines}"
                    lines = tool_response(lines)  # as an episode shows a tool's text
                    answer = f"<think>{CROP_LISTING}{listing}."
                    if looks and window is not None:  # the listing given, the close crop after it
                        (a, b), given = window, answer
                        think = close_look(given.removeprefix("<think>"), a, b)
                        answer = format_tool_call("crop_video", {"start_time": a, "end_time": b}, think=think)
                        answer = answer[len(given) :]
                    out.append(
                        _Example(
                            skill,
                            list(clip),
                            shown_times if len(clip) else [],
                            None,
                            None,
                            lines,
                            answer,
                            episode=True,
                            given=given,
                        )
                    )
                else:
                    out.append(_Example(skill, list(clip), shown_times, None, None, _CROP_LISTING, listing))
            else:
                out.append(
                    _Example(skill, [], [], clip, times[idx], _QUESTIONS[skill], symbol_caption(ev.symbol))
                )
        else:  # the preview: the frames that show the bar, or the two around the k-th highlight
            shown = preview_frames(video.num_frames, video.fps)
            if skill != "preview" and irregular and rng.random() < irregular:
                shown = _irregular(rng, 0, video.num_frames - 1, len(shown))
            given, kind = "", ""
            laid = skill in ("select", "ordinal") or bool(
                skill == "highlights" and episode and layouts.random() < episode
            )
            if skill == "preview":
                j = int(rng.integers(len(video.events)))
                k = int(np.searchsorted(shown, video.events[j].start_frame))
                answer = f"{times[shown[k - 1]]:.1f}-{times[shown[k]]:.1f} s"
                question = f"Between which preview frames is the {ordinal(j)} highlighted interval?"
            else:
                answer = style.preview_listing(
                    times[shown], ["bar" if _highlighted(video, f) else "no" for f in shown]
                )
                question = _QUESTIONS["highlights"]
            if laid:  # the episode's own first turn
                question, turn, crops_named = _first_turn(video, seed, times[shown], layouts, style)
                # what the turn writes before its listing: nothing, or the interval named (name_first)
                opening = turn[: turn.find(PREVIEW_LISTING)] if PREVIEW_LISTING in turn else "<think>"
                answer = f"{opening}{PREVIEW_LISTING}{answer}."
                # at irregular times the evidence may fall in no run of "bar" frames: then the
                # reference lists nothing. Or the stretch the question names is not the one the
                # listing ranks so (two highlights in one run of "bar", one between frames): then it
                # searches from the first, against the question's words, and examples of that taught
                # the pick to ignore them (docs/results.md, "The question, unread"). Either way a
                # listing example keeps the listing alone, and there is no select example.
                named = named_rank(question)
                picked = PREVIEW_LISTING in turn and (named is None or crops_named)
                if skill in ("select", "ordinal"):
                    if not picked:
                        continue
                    cut = turn.find(". ", turn.find(PREVIEW_LISTING)) + 1  # the listing, given
                    given, answer = turn[:cut], turn[cut:]
                    rank = named or 0  # no rank named: the search starts at the first
                    kind = "later" if rank > 0 else "first"
                    if skill == "ordinal":  # the question alone, as text
                        asked = f"{question}\n{_QUESTIONS['ordinal']}"
                        answer = named_interval(question)
                        out.append(_Example(skill, [], [], None, None, asked, answer, kind))
                        continue
                elif first_turn and picked:
                    answer = turn
            small = resize_frames(render_frames(video, shown), TESTBED_TOOLS.preview_max_pixels)
            out.append(
                _Example(
                    skill,
                    list(small),
                    times[shown].tolist(),
                    None,
                    None,
                    question,
                    answer,
                    kind,
                    episode=laid,
                    given=given,
                )
            )
    return out


class ExampleBatcher:
    """Examples as chat text plus processor tensors, labels on the answer tokens only."""

    def __init__(self, processor: Any, system_prompt: str | None = None) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.system_prompt = system_prompt

    def __call__(self, batch: list[_Example]):
        import torch
        from transformers.video_utils import VideoMetadata

        from medscope_gym.chat import frame_label, times_line

        self.tokenizer.padding_side = "right"
        texts, images, videos, metadata, answers = [], [], [], [], []
        for ex in batch:
            blocks = []
            if ex.video is not None:
                blocks.append(times_line("Video frames", ex.video_times))
                blocks.append("<|vision_start|><|video_pad|><|vision_end|>")
                videos.append(ex.video)
                metadata.append(VideoMetadata(total_num_frames=len(ex.video), fps=2.0))
            for frame, t in zip(ex.images, ex.image_times):
                blocks.append("<|vision_start|><|image_pad|><|vision_end|>")
                blocks.append(frame_label(t))
                images.append(frame)
            blocks.append(ex.question)
            body = "\n".join(blocks)
            system = (
                f"<|im_start|>system\n{self.system_prompt}<|im_end|>\n"
                if ex.episode and self.system_prompt
                else ""
            )
            end = "" if ex.episode else "<|im_end|>"  # an episode's turn goes on after the listing
            texts.append(
                f"{system}<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n"
                f"{ex.given}{ex.answer}{end}"
            )
            answers.append(self.tokenizer(f"{ex.answer}{end}", add_special_tokens=False)["input_ids"])
        kwargs: dict[str, Any] = {}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = videos
            kwargs["videos_kwargs"] = {"do_sample_frames": False, "video_metadata": metadata}
        enc = self.processor(text=texts, return_tensors="pt", padding=True, **kwargs)
        labels = torch.full_like(enc["input_ids"], -100)
        for i, answer in enumerate(answers):
            ids = enc["input_ids"][i].tolist()
            end = len(ids) - ids[::-1].index(answer[-1])  # the answer's last token (right padding after)
            labels[i, end - len(answer) : end] = torch.tensor(answer)
        return enc, labels


class Rehearsal:
    """Stage I's examples beside a later SFT stage: each call is the loss on ``batch_size`` fresh
    examples of ``skills`` (in turn), from a video stream no other stage draws.

    Stage II's episodes spend two or three imitated tokens per turn on what the frames showed; trained
    on them alone at its higher learning rate, the reading Stage I taught erodes (docs/results.md, v4).
    A rehearsal batch per step keeps a gradient on it. ``train_sft(cfg, auxiliary=Rehearsal(...))``.
    ``irregular``, ``episode``, ``first_turn``, ``style``, ``restate`` and ``system_prompt`` lay the
    examples out as Stage I did (``PerceptionConfig.irregular_times``, ``episode_layout``,
    ``first_turn``, ``search`` and ``restate_question``); ``events`` draws its videos as Stage I's
    (``PerceptionConfig.events``).
    """

    def __init__(
        self,
        processor: Any,
        skills: tuple[str, ...],
        *,
        batch_size: int = 4,
        weight: float = 1.0,
        duration: tuple[float, float] = (90.0, 150.0),
        crops_as_frames: bool = False,
        seed: int = 0,
        irregular: float = 0.0,
        episode: float = 0.0,
        system_prompt: str | None = None,
        first_turn: bool = False,
        style: SearchStyle | None = None,
        restate: bool = False,
        events: tuple[int, int] = (3, 4),
    ) -> None:
        unknown = [s for s in skills if s not in PERCEPTION_SKILLS]
        if unknown or not skills:
            raise ConfigError(f"rehearsal skills: unknown {unknown}; known: {', '.join(PERCEPTION_SKILLS)}")
        if batch_size < 1 or weight <= 0:
            raise ConfigError(f"rehearsal needs batch_size >= 1 and weight > 0, got {batch_size}, {weight}")
        self.batcher = ExampleBatcher(processor, system_prompt)
        self.skills, self.batch_size, self.weight = tuple(skills), batch_size, weight
        self.irregular, self.episode, self.first_turn = irregular, episode, first_turn
        self.duration, self.crops_as_frames, self.style = duration, crops_as_frames, style
        self.restate, self.events = restate, events
        # training streams of Stage I start at 1e6 * (seed + 1); this one sits past all of them
        self._first_seed = {s: 500_000_000 + 1_000_000 * seed + 100_000 * i for i, s in enumerate(skills)}
        self._made = dict.fromkeys(skills, 0)
        self._pool: dict[str, list[_Example]] = {s: [] for s in skills}
        self._calls = 0
        self._chunk = max(64, batch_size)  # examples are made in chunks: a video per example

    def _make(self, skill: str, made: int) -> list[_Example]:
        """The chunk of ``skill``'s examples that starts ``made`` examples into its stream."""
        return make_examples(
            skill,
            self._first_seed[skill] + made,  # one video per example
            self._chunk,
            self.duration,
            self.crops_as_frames,
            self.irregular,
            self.episode,
            self.first_turn,
            self.style,
            self.restate,
            self.events,
        )

    def batch(self, skill: str | None = None) -> list[_Example]:
        """The next ``batch_size`` examples of ``skill`` (None: one skill per call, the skills in turn)."""
        if skill is None:
            skill = self.skills[self._calls % len(self.skills)]
            self._calls += 1
        pool = self._pool[skill]
        if len(pool) < self.batch_size:
            pool += self._make(skill, self._made[skill])
            self._made[skill] += self._chunk
        batch, self._pool[skill] = pool[: self.batch_size], pool[self.batch_size :]
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Where each skill's stream stands, as JSON: a resumed Stage I hands out the same examples next."""
        return {
            "calls": self._calls,
            "made": dict(self._made),
            "left": {s: len(p) for s, p in self._pool.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from a :meth:`state_dict`, making again the chunks the unused examples came from."""
        self._calls = int(state["calls"])
        for skill in self.skills:
            made, left = int(state["made"][skill]), int(state["left"][skill])
            start = (made - left) // self._chunk * self._chunk  # the chunk of the first unused example
            pool = [ex for at in range(start, made, self._chunk) for ex in self._make(skill, at)]
            self._made[skill], self._pool[skill] = made, pool[len(pool) - left :]

    def __call__(self, model: Any) -> Any:
        """``weight`` × the mean answer-token loss of the next batch, on ``model``'s device."""
        enc, labels = self.batcher(self.batch())
        device = next(model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        return self.weight * model(**enc, labels=labels.to(device)).loss


def _ranked(model: Any, batcher: ExampleBatcher, ex: _Example) -> bool:
    """Whether, of the twelve symbols' captions, the model finds the true one likeliest after ``ex``'s
    prompt: reading, whatever format the model has since learned to answer in."""
    import dataclasses

    import torch

    from medscope_gym.synthetic.testbed import SYMBOLS, symbol_caption

    options = [dataclasses.replace(ex, answer=symbol_caption(symbol)) for symbol in SYMBOLS]
    enc, labels = batcher(options)
    logp = torch.log_softmax(model(**enc).logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    mask = target != -100
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = (picked * mask).sum(dim=1)
    return options[int(total.argmax())].answer == ex.answer


def _items_right(
    target: list[int], pred: list[int], sep: int, spaced: frozenset[int] = frozenset()
) -> list[tuple[bool, bool]]:
    """Per item of a listing (tokens up to and including each ``sep``, then the rest): whether its time
    (up to the first token in ``spaced``, those beginning with a space, after the item's first other
    token) and whether the rest (what the frame shows, and the separator) are right."""
    out, time_ok, rest_ok, in_time, begun = [], True, True, True, False
    for t, p in zip(target, pred):
        in_time = in_time and not (begun and t in spaced)  # the space before a time is the time's
        begun = begun or t not in spaced
        if in_time:
            time_ok = time_ok and t == p
        else:
            rest_ok = rest_ok and t == p
        if t == sep:
            out.append((time_ok, rest_ok))
            time_ok, rest_ok, in_time, begun = True, True, True, False
    return [*out, (time_ok, rest_ok)]


def _items(answer: str) -> list[str]:
    """A listing answer's items, each "time label" ("30.5 a red ring at the centre"; "" where a part
    has no time), without the text around the listing."""
    parts = answer.split("; ")
    if len(parts) > 1:  # the sentence before the listing (SearchStyle.name_first) is no item's
        parts[0] = parts[0].split(". ")[-1]
    found = (re.search(r"\d+(?:\.\d+)? .+$", part.split(". ")[0].rstrip(".")) for part in parts)
    return [item.group(0) if item else "" for item in found]


def _shown_label(item: str) -> str | None:
    """What an item's frame shows when it shows something (a symbol's caption, "bar"), else None
    (the item's mark left out, :func:`~medscope_gym.agents.scripted.unmarked_item`)."""
    item = unmarked_item(item)
    label = item.split(" ", 1)[1] if " " in item else "no"
    return None if label == "no" else label


def _shows(answer: str) -> list[bool]:
    """Per item of a listing answer ("30.0 no; 30.5 a red ring at the centre; ..."), whether its frame
    shows something (a symbol, the bar): the items a listing of "no" alone gets wrong."""
    return [_shown_label(item) is not None for item in _items(answer)]


def _after_listing(tokenizer: Any, ids: list[int], answer: str) -> int | None:
    """Index of the first answer token after a first turn's listing (the interval the reference picks
    and its call), or None when the answer is a listing alone."""
    end = answer.find(". ", answer.find("; "))
    if "; " not in answer or end < 0 or "</think>" not in answer[end:]:
        return None
    text = ""
    for k, token in enumerate(ids):
        text += tokenizer.decode([token])
        if len(text) > end + 1:
            return k
    return None


def _pick_parts(tokenizer: Any, ids: list[int], answer: str) -> list[str]:
    """Each token of a ``select`` answer as ``words`` (the sentence's words: the ordinal, "first"),
    ``times`` (the picked interval's times in the sentence), ``call`` (those times again, in the
    call's JSON) or ``format`` (the rest of the call)."""
    think_end = answer.find("</think>")
    parts, seen = [], 0
    for token in ids:
        piece = tokenizer.decode([token])
        numeric = any(c.isdigit() for c in piece)
        if seen < think_end:
            parts.append("times" if numeric else "words")
        else:
            parts.append("call" if numeric else "format")
        seen += len(piece)
    return parts


def _accuracy(
    model: Any, batcher: ExampleBatcher, skill: str, examples: list[_Example], ranked: bool = False
) -> dict[str, float]:
    """Exact match of every answer token, teacher-forced, greedy: ``{skill: acc}``, plus ``skill/kind``
    per kind of answer where a skill has several (``frames/symbol`` is the reading alone), and for a
    listing ("0.5 no; 8.5 bar; ...") ``skill/items``: the share of its items exactly right, which
    moves long before a whole 16-item listing does, split into ``skill/times`` (the copied time right)
    and ``skill/labels`` (what the frame shows right), and ``skill/shown``: the labels of the frames
    that show something (a symbol, the bar), which a listing of "no" alone gets wrong; for a whole
    first turn (``first_turn``)
    ``skill/after``: the share whose tokens after the listing (interval and call) are all right; for
    ``select``, ``select/words``, ``select/times`` and ``select/call`` (:func:`_pick_parts`).
    ``ranked``: an answer naming a symbol counts as right when the true caption is the likeliest of
    the twelve."""
    import torch

    model.eval()
    right: list[bool] = []
    items: list[tuple[bool, bool]] = []
    shown: list[bool] = []
    after: list[bool] = []
    picks: dict[str, list[bool]] = {}
    sep = batcher.tokenizer.convert_tokens_to_ids(";")
    vocab = batcher.tokenizer.get_vocab()
    spaced = frozenset(i for token, i in vocab.items() if token.startswith(("Ġ", " ")))
    with torch.no_grad():
        for i in range(0, len(examples), 16):
            batch = examples[i : i + 16]
            enc, labels = batcher(batch)
            pred = model(**enc).logits[:, :-1].argmax(-1)
            target = labels[:, 1:]
            right += ((pred == target) | (target == -100)).all(dim=1).tolist()
            for ex, t, p in zip(batch, target, pred):
                wanted, got = t[t != -100].tolist(), p[t != -100].tolist()
                if "; " in ex.answer and not ex.given:  # a listing answered, not one given before it
                    scored = _items_right(wanted, got, sep, spaced)
                    items += scored
                    shows = _shows(ex.answer)
                    if len(shows) == len(scored):
                        shown += [label for (_, label), show in zip(scored, shows) if show]
                cut = None if ex.given else _after_listing(batcher.tokenizer, wanted, ex.answer)
                if cut is not None:
                    after.append(wanted[cut:] == got[cut:])
                if ex.given:  # select: which part of the pick is wrong
                    tags = _pick_parts(batcher.tokenizer, wanted, ex.answer)
                    for part in ("words", "times", "call"):
                        pairs = [(w, g) for w, g, tag in zip(wanted, got, tags) if tag == part]
                        picks.setdefault(part, []).append(all(w == g for w, g in pairs))
        if ranked:
            right = [
                _ranked(model, batcher, ex) if ex.answer.endswith("at the centre") else r
                for r, ex in zip(right, examples)
            ]
    model.train()
    scores = {skill: float(np.mean(right)) if right else 0.0}
    if items:
        scores[f"{skill}/items"] = float(np.mean([a and b for a, b in items]))
        scores[f"{skill}/times"] = float(np.mean([a for a, _ in items]))
        scores[f"{skill}/labels"] = float(np.mean([b for _, b in items]))
    if shown:
        scores[f"{skill}/shown"] = float(np.mean(shown))
    if after:
        scores[f"{skill}/after"] = float(np.mean(after))
    for part, hits in picks.items():
        scores[f"{skill}/{part}"] = float(np.mean(hits))
    kinds = sorted({ex.kind for ex in examples})
    if len(kinds) > 1:
        for kind in kinds:
            hits = [r for r, ex in zip(right, examples) if ex.kind == kind]
            scores[f"{skill}/{kind}"] = float(np.mean(hits))
    return scores


def _generated(model: Any, batcher: ExampleBatcher, skill: str, examples: list[_Example]) -> dict[str, float]:
    """Each example's answer written by the model greedily after its prompt, untaught:
    ``{skill}/generated``, the share that begins with the whole answer, and, where an answer has them,
    the parts: ``-named`` (a listing names what its frames show, the symbol, somewhere), ``-start`` and
    ``-end`` (a close crop's times, "I look closely at 30.0-33.5 s", else the crop call's), ``-read``
    (the answer turn's "The crop shows a red ring ..." right), and per kind of answer (``-choice``,
    ``-interval``; ``select``'s ``-first``, ``-later``)."""
    import torch

    model.eval()
    exact: list[bool] = []
    parts: dict[str, list[bool]] = {}
    with torch.no_grad():
        for ex in examples:
            enc, labels = batcher([ex])
            answer = (labels[0] != -100).nonzero()
            start = int(answer[0])
            prompt = {
                k: v[:, :start] if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v
                for k, v in enc.items()
            }
            out = model.generate(**prompt, max_new_tokens=len(answer) + 4, do_sample=False)
            text = batcher.tokenizer.decode(out[0, start:], skip_special_tokens=False)
            shown = {_shown_label(item) for item in _items(ex.answer)} - {None}
            exact.append(text.startswith(ex.answer))
            if shown:
                parts.setdefault("named", []).append(any(caption in text for caption in shown))
            times = _CLOSE_TIMES if _CLOSE_TIMES.search(ex.answer) else _CALL_TIMES
            if want := times.search(ex.answer):
                got = times.search(text)
                parts.setdefault("start", []).append(bool(got) and got.group(1) == want.group(1))
                parts.setdefault("end", []).append(bool(got) and got.group(2) == want.group(2))
            if want := _READ.search(ex.answer):
                got = _READ.search(text)
                parts.setdefault("read", []).append(bool(got) and got.group(1) == want.group(1))
            if ex.kind:
                parts.setdefault(ex.kind, []).append(exact[-1])
    model.train()
    scores = {f"{skill}/generated": float(np.mean(exact))}
    kinds = {ex.kind for ex in examples}
    for part, hits in parts.items():
        if part not in kinds or len(kinds) > 1:  # per kind only where there are several
            scores[f"{skill}/generated-{part}"] = float(np.mean(hits))
    return scores


def _shares(steps: int, skills: tuple[str, ...], per_step: dict[str, float]) -> dict[str, int]:
    """Examples of each skill in ``steps`` steps that draw ``per_step[skill]`` of a batch each, rounded
    up (the phase's examples are shuffled together and cut to its steps)."""
    return {skill: math.ceil(steps * per_step[skill] - 1e-9) for skill in skills}


def listing_skills(cfg: PerceptionConfig) -> tuple[str, ...]:
    """The listing phase's skills: the listings, then the steps after them (the preview's: select; a
    crop's: zoom; the close crop's: answer), learned as late."""
    listing = ("highlights", "crop") if cfg.crops_as_frames else ("highlights",)
    return listing + tuple(s for s in ("select", "zoom", "answer") if s in cfg.skills)


def heldout_examples(cfg: PerceptionConfig) -> dict[str, list[_Example]]:
    """The held-out examples Stage I scores: one set per skill it trains, and the listings as episodes
    lay them out (``highlights@episode``, ``crop@episode``), all in the run's
    :class:`~medscope_gym.agents.scripted.SearchStyle`. A listing scored against one without the marks
    the model learned to write could never be right."""
    style, listing = cfg.style, listing_skills(cfg)
    duration = cfg.heldout_duration or cfg.duration
    scored = tuple(
        dict.fromkeys(
            ("copy",) * (cfg.copy_steps > 0)
            + ("window",) * (cfg.window_steps > 0)
            + ("ordinal",) * (cfg.ordinal_steps > 0)
            + ("search",) * (cfg.search_steps > 0)
            + ("symbol",) * (cfg.reading_steps > 0)
            + listing * (cfg.listing_steps > 0)
            + cfg.skills
        )
    )
    heldout = {
        skill: make_examples(
            skill,
            _HELDOUT_SEED + 10_000 * PERCEPTION_SKILLS.index(_drawn_as(skill)),
            cfg.heldout,
            duration,
            cfg.crops_as_frames,
            style=style,
            restate=cfg.restate_question,
            events=cfg.events,
        )
        for skill in scored
    }
    for skill in ("highlights", "crop"):  # the listings as episodes lay them out
        if cfg.episode_layout > 0 and skill in scored and (skill == "highlights" or cfg.crops_as_frames):
            heldout[f"{skill}@episode"] = make_examples(
                skill,
                _HELDOUT_SEED + 10_000 * PERCEPTION_SKILLS.index(skill),
                cfg.heldout,
                duration,
                cfg.crops_as_frames,
                episode=1.0,
                first_turn=cfg.first_turn,
                style=style,
                restate=cfg.restate_question,  # as the run trains that layout, and episodes show it
                events=cfg.events,
            )
    return heldout


def train_perception(
    model: Any,
    processor: Any,
    cfg: PerceptionConfig,
    log: Any = None,
    system_prompt: str | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on ``cfg``'s examples; returns the held-out scores and the curve.
    ``system_prompt``: the policy's, which episode-layout examples open with (``cfg.episode_layout``).
    ``out``: where a ``checkpoint-N`` is written every ``cfg.save_every`` steps (the latest kept); given
    the ``out`` of a run that was killed, training resumes from its latest checkpoint, weights included,
    and goes on as that run would have."""
    import torch

    from medscope_gym.agents.training.checkpoints import (
        TrainerState,
        latest_checkpoint,
        load_checkpoint,
        save_checkpoint,
    )

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    batcher = ExampleBatcher(processor, system_prompt)
    style = cfg.style
    per_skill = -(-cfg.steps * cfg.batch_size // len(cfg.skills))
    rng = np.random.default_rng([cfg.seed, 17])
    stream = 1_000_000 * (cfg.seed + 1)
    mix = [
        ex
        for i, skill in enumerate(cfg.skills)
        for ex in make_examples(
            skill,
            stream + 100_000 * i,
            per_skill,
            cfg.duration,
            cfg.crops_as_frames,
            cfg.irregular_times,
            cfg.episode_layout,
            cfg.first_turn,
            style,
            cfg.restate_question,
            cfg.events,
        )
    ]
    # the copy phase first, then the window drill, the reading phase (or the reading phase before both:
    # ``reading_first``), the listing phase, each in its own order, then the mix shuffled
    targets_of = {"copy": {"copy/items": cfg.copy_until}, "symbol": {"symbol": cfg.reading_until}}
    waits = {  # the phases that may go on until held-out scores are reached (``{phase}_until``)
        key: _Wait(
            name=phase,
            targets={k: v for k, v in targets_of.get(key, cfg.listing_until).items() if v is not None},
            steps=getattr(cfg, f"{phase}_steps"),
            chunk=getattr(cfg, f"{phase}_chunk"),
            cap=getattr(cfg, f"{phase}_max_steps"),
            first=stream + offset,  # the phase's example stream (the listing phase's: one per skill)
            going_on=going_on,
            ending=ending,
        )
        for key, phase, offset, going_on, ending in _WAITING_PHASES
    }
    drills = {
        skill: make_examples(
            skill, waits[skill].first, waits[skill].steps * cfg.batch_size, cfg.duration, events=cfg.events
        )
        for skill in ("copy", "symbol")
    }
    steps_of = {
        "window": cfg.window_steps,
        "copy": cfg.copy_steps,
        "ordinal": cfg.ordinal_steps,
        "search": cfg.search_steps,
        "symbol": cfg.reading_steps,
    }
    # the text drills of framed skills' turns; the copy drill uses no videos, and these streams sit
    # below the reading phase's
    for skill, offset in (("window", 450_000), ("ordinal", 460_000), ("search", 470_000)):
        drills[skill] = make_examples(
            skill,
            stream + offset,
            steps_of[skill] * cfg.batch_size,
            cfg.duration,
            cfg.crops_as_frames,
            cfg.irregular_times,
            style=style,
            restate=cfg.restate_question,
            events=cfg.events,
        )
    drill_order = ("copy", "window", "ordinal", "search")
    order = ("symbol", *drill_order) if cfg.reading_first else (*drill_order, "symbol")
    lead = [ex for skill in order for ex in drills[skill]]
    phases = (*order, "listing")
    # the step each phase ends at, where its check (``reading_until``, ``copy_until``, ``listing_until``)
    # runs
    ends = dict(zip(phases, np.cumsum([*(steps_of[skill] for skill in order), cfg.listing_steps]).tolist()))
    drilled = tuple(skill for skill in order if steps_of[skill] > 0)
    keep = (  # ``rehearse_earlier``: the drills before a phase, from a stream of their own
        Rehearsal(
            processor,
            drilled,
            batch_size=cfg.rehearse_earlier,
            duration=cfg.duration,
            crops_as_frames=cfg.crops_as_frames,
            seed=cfg.seed + 1000,  # not the stream a recipe's rehearsal beside Stage II draws (its seed)
            irregular=cfg.irregular_times,
            style=style,
            restate=cfg.restate_question,
            events=cfg.events,
        )
        if cfg.rehearse_earlier and len(drilled) > 0
        else None
    )

    listing = listing_skills(cfg)
    weights = {skill: cfg.listing_shares.get(skill, 1.0) for skill in listing}
    weights = {skill: w * cfg.batch_size / sum(weights.values()) for skill, w in weights.items()}
    listed_so_far = dict.fromkeys(listing, 0)  # each listing skill's stream goes on where it stood

    def listings(steps: int, irregular: float, order_seed: Any) -> list[_Example]:
        """``steps`` of fresh listing-phase examples in the phase's shares, shuffled by ``order_seed``."""
        counts = _shares(steps, listing, weights)
        made = [
            ex
            for i, skill in enumerate(listing)
            for ex in make_examples(
                skill,
                waits["listing"].first + 100_000 * i + listed_so_far[skill],
                counts[skill],
                cfg.duration,
                cfg.crops_as_frames,
                irregular,
                cfg.episode_layout,
                cfg.first_turn,
                style,
                cfg.restate_question,  # as the mix, the held-out scores and the episodes show it
                cfg.events,
            )
        ]
        for skill in listing:
            listed_so_far[skill] += counts[skill]
        shuffle = (
            order_seed if isinstance(order_seed, np.random.Generator) else np.random.default_rng(order_seed)
        )
        return [made[j] for j in shuffle.permutation(len(made))][: steps * cfg.batch_size]

    def extend(phase: str, more: int) -> None:
        """``more`` steps of fresh examples at the end of ``phase``; the phases after it move back."""
        nonlocal total
        wait = waits[phase]
        at = ends[phase] * cfg.batch_size
        if phase == "listing":  # each added chunk shuffled on its own, the mix's order left as it was
            fresh = listings(more, cfg.irregular_times, [cfg.seed, 29, len(wait.chunks)])
        else:
            first = wait.first + (wait.steps + wait.added) * cfg.batch_size  # the phase's stream goes on
            fresh = make_examples(phase, first, more * cfg.batch_size, cfg.duration, events=cfg.events)
        train[at:at] = fresh
        wait.chunks.append(more)
        for later in phases[phases.index(phase) :]:
            ends[later] += more
        total += more

    def earlier(step: int) -> tuple[str, ...]:
        """The drills before ``step``'s phase (none in the first drill and the mix)."""
        current = next((skill for skill in drilled if step < ends[skill]), None)
        if current is not None:
            return drilled[: drilled.index(current)]
        return drilled if step < ends["listing"] else ()

    even = round(cfg.even_first * cfg.listing_steps)  # steps of even listings first, then the rest
    for part, steps in ((0, even), (1, cfg.listing_steps - even)):
        if steps > 0:
            lead += listings(steps, cfg.irregular_times if part else 0.0, rng)
    train = lead + [mix[j] for j in rng.permutation(len(mix))]
    total = sum(steps_of.values()) + cfg.listing_steps + cfg.steps
    heldout = heldout_examples(cfg)
    if cfg.listing_until:  # a misspelt score fails now, not when the listing phase ends an hour later
        one_of_each_kind = {k: list({ex.kind: ex for ex in v[::-1]}.values()) for k, v in heldout.items()}
        _target_scores(model, batcher, cfg.listing_until, one_of_each_kind, cfg.ranked)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    warm = max(1, cfg.warmup_steps)

    def lr_factor(s: int) -> float:
        """Warm-up, then the peak until the last ``decay_steps`` (all: None), then down to 0 at ``total``,
        read at each step: the waiting phases may add steps."""
        if cfg.decay_steps is None:
            return min(1.0, (s + 1) / warm) * max(0.0, 1.0 - s / max(1, total))
        return min(1.0, (s + 1) / warm) * max(
            0.0, min(1.0, (total - s) / max(1, min(cfg.decay_steps, total)))
        )

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    torch.manual_seed(cfg.seed)
    settings = _resume_settings(cfg)  # what a resumed run must match

    def score() -> dict[str, float]:
        return {
            k: v
            for skill, exs in heldout.items()
            for k, v in _accuracy(model, batcher, skill, exs, cfg.ranked).items()
        }

    curve: list[dict[str, Any]] = []
    first_loss, done, elapsed = float("nan"), 0, 0.0
    checkpoint = latest_checkpoint(out) if out is not None and cfg.save_every else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, opt, sched, examples_per_step=cfg.batch_size)
        extra = state.extra or {}
        for phase in phases:  # the waiting phases' added steps, in the order they were added
            for more in extra["chunks"].get(phase, []) if phase in waits else []:
                extend(phase, more)
        # a setting the checkpoint predates counts as its default; a waiting phase not yet checked may
        # wait for other scores, in other chunks, up to another cap (nothing trained so far used them)
        saved = _resume_settings(type(cfg).from_dict(extra.get("config", {}), source=f"{checkpoint}"))
        ahead = {
            f"{wait.name}_{setting}"
            for key, wait in waits.items()
            if not wait.chunks and state.step < ends[key]
            for setting in ("until", "chunk", "max_steps")
        }
        changed = sorted(k for k in settings if settings[k] != saved.get(k) and k not in ahead)
        if changed:
            raise ConfigError(
                f"{checkpoint}: Stage I's checkpoint was written with other settings ({', '.join(changed)}); "
                "resume with the settings it was started with, or delete the checkpoint to start over"
            )
        model.load_state_dict(type(model).from_pretrained(checkpoint / "model").state_dict())
        if keep is not None:
            keep.load_state_dict(extra["rehearsal"])
        curve, first_loss, elapsed, done = extra["curve"], extra["first_loss"], extra["seconds"], state.step
        print(f"perception: resumed from {checkpoint} at step {done} of {total}", flush=True)
    t0 = time.perf_counter() - elapsed
    if total == 0:  # nothing to train: score the model as it is (``medscope recipe-probe --checkpoint``)
        curve.append({"step": 0, "loss": None, **score()})
    step = done - 1
    while step + 1 < total:
        step += 1
        batch = train[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        if keep is not None and (before := earlier(step)):
            batch = batch[: cfg.batch_size - cfg.rehearse_earlier] + keep.batch(before[step % len(before)])
        value = backward_step(model, batcher, batch, cfg.micro_batches)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step == 0:
            first_loss = value
        if log is not None:
            # the elapsed time per step shows what each phase costs (frames, sequence lengths)
            elapsed = round(time.perf_counter() - t0, 2)
            log.log(
                step + 1,
                {"train/loss": value, "train/lr": sched.get_last_lr()[0], "train/elapsed_s": elapsed},
            )
        for phase, wait in waits.items():  # ``{reading,copy,listing}_until``: the phase may go on
            if wait.targets and step + 1 == ends[phase]:
                more = _more_steps(model, batcher, wait, heldout, cfg.ranked)
                if more:
                    extend(phase, more)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == total:
            scores = score()
            curve.append({"step": step + 1, "loss": round(value, 4), **scores})
            shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            print(f"perception: step {step + 1} loss {value:.3f} held-out {shown}", flush=True)
        if out is not None and cfg.save_every and (step + 1) % cfg.save_every == 0:
            extra = {
                "config": settings,
                "chunks": {skill: wait.chunks for skill, wait in waits.items()},
                "rehearsal": keep.state_dict() if keep is not None else None,
                "curve": curve,
                "first_loss": first_loss,
                "seconds": round(time.perf_counter() - t0, 2),
            }
            state = TrainerState(step + 1, (step + 1) * cfg.batch_size, max_steps=total, extra=extra)
            save_checkpoint(out, state, model=model, optimizer=opt, scheduler=sched, lora=False, keep=1)
    if cfg.generated:
        written = {
            k: v
            for skill in ("crop@episode", "select", "zoom", "answer")
            if skill in heldout
            for k, v in _generated(model, batcher, skill, heldout[skill][: cfg.generated]).items()
        }
        curve[-1].update(written)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in written.items())
        print(f"perception: held-out listings written untaught {shown}", flush=True)
    model.eval()
    return {
        "heldout": {k: v for k, v in curve[-1].items() if k not in ("step", "loss")},
        "curve": curve,
        "reading_steps": cfg.reading_steps + waits["symbol"].added,
        "copy_steps": cfg.copy_steps + waits["copy"].added,
        "listing_steps": cfg.listing_steps + waits["listing"].added,
        "first_loss": round(first_loss, 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def backward_step(
    model: Any, batcher: ExampleBatcher, batch: list[_Example], micro_batches: int = 1
) -> float:
    """Backpropagate the mean answer-token loss of ``batch`` into ``model``'s gradients; returns it.

    With ``micro_batches`` > 1 the examples go through the model in that many groups of similar length
    (each padded only to its own longest), each group's mean loss weighted by its share of the batch's
    answer tokens, so the summed gradient is the whole batch's (``PerceptionConfig.micro_batches``).
    """
    enc, labels = batcher(batch)
    if micro_batches <= 1 or len(batch) < 2:
        loss = model(**enc, labels=labels).loss
        loss.backward()
        return float(loss.detach())
    # lengths need the processor's vision-token expansion, so the groups are processed again; that
    # costs milliseconds against the model's second (benchmarks.perception_step times both together)
    order = np.argsort(enc["attention_mask"].sum(1).numpy(), kind="stable")
    answer_tokens = int((labels[:, 1:] != -100).sum())  # the model's loss shifts labels by one
    size = -(-len(batch) // micro_batches)
    total = 0.0
    for start in range(0, len(batch), size):
        enc, labels = batcher([batch[i] for i in order[start : start + size]])
        share = int((labels[:, 1:] != -100).sum()) / max(1, answer_tokens)
        loss = model(**enc, labels=labels).loss * share
        loss.backward()
        total += float(loss.detach())
    return total


_WAITING_PHASES = (  # key of the phase's end step, its settings' prefix, its stream, the check's verdicts
    ("copy", "copy", 400_000, "copying goes on", "the copy drill ends"),
    ("symbol", "reading", 500_000, "reading goes on", "the reading phase ends"),
    ("listing", "listing", 600_000, "the listings go on", "the listing phase ends"),
)
"""The phases that may go on until held-out scores are reached (``{prefix}_until``)."""

_RESUME_FREE = ("threads", "save_every")
"""Settings a resumed Stage I may change: they do not change what it trains."""


def _resume_settings(cfg: PerceptionConfig) -> dict[str, Any]:
    """``cfg``'s settings as JSON, but those a resumed Stage I may change (:data:`_RESUME_FREE`)."""
    return {k: v for k, v in json.loads(json.dumps(cfg.to_dict())).items() if k not in _RESUME_FREE}


@dataclass
class _Wait:
    """A phase that goes on, ``chunk`` steps at a time up to ``cap`` in all, until every held-out score
    in ``targets`` is reached (``PerceptionConfig.reading_until``, ``copy_until``, ``listing_until``);
    no targets: the phase is ``steps`` long."""

    name: str
    targets: dict[str, float]
    """Score name (``symbol``, ``copy/items``, ``select``, ``crop/shown``, ...) → the value to reach."""
    steps: int
    chunk: int
    cap: int
    first: int
    """Seed of the phase's first example; the added ones follow on."""
    going_on: str
    ending: str
    chunks: list[int] = field(default_factory=list)
    """The steps added so far, one entry per check that added some."""

    @property
    def added(self) -> int:
        return sum(self.chunks)


def _target_scores(
    model: Any,
    batcher: ExampleBatcher,
    targets: dict[str, float],
    heldout: dict[str, list[_Example]],
    ranked: bool,
) -> dict[str, float]:
    """The held-out scores ``targets`` names (a score ``skill/part`` comes from ``skill``'s examples)."""
    training = model.training
    scores: dict[str, float] = {}
    for skill in dict.fromkeys(name.split("/")[0] for name in targets):
        scores.update(_accuracy(model, batcher, skill, heldout[skill], ranked))
    model.train(training)  # a check leaves training as it was
    unknown = sorted(set(targets) - set(scores))
    if unknown:
        raise ConfigError(f"PerceptionConfig: no held-out score named {unknown}; scored: {', '.join(scores)}")
    return {name: scores[name] for name in targets}


def _more_steps(
    model: Any, batcher: ExampleBatcher, wait: _Wait, heldout: dict[str, list[_Example]], ranked: bool
) -> int:
    """Steps to add to ``wait``'s phase: ``wait.chunk`` (or what ``wait.cap`` leaves) while a held-out
    score in ``wait.targets`` is below its target; 0 once all are reached or the cap is."""
    values = _target_scores(model, batcher, wait.targets, heldout, ranked)
    below = any(values[name] < target for name, target in wait.targets.items())
    more = min(wait.chunk, wait.cap - wait.steps - wait.added) if below else 0
    verdict = f"{wait.going_on} for {more} steps" if more else wait.ending
    shown = ", ".join(f"{name} {value:.3f}" for name, value in values.items())
    print(
        f"perception: {wait.name} check after {wait.steps + wait.added} steps: {shown}; {verdict}",
        flush=True,
    )
    return more


def run_perception(model_dir: str | Path, out: str | Path, cfg: PerceptionConfig) -> dict[str, Any]:
    """Stage I from the checkpoint ``model_dir`` into ``out/final`` (written atomically with the
    processor and the policy settings); ``out/metrics.jsonl`` and ``out/perception.json`` beside it.
    A run killed midway resumes from its latest ``out/checkpoint-N`` (``cfg.save_every``)."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from medscope_gym.agents.training.checkpoints import (
        checkpoint_step,
        latest_checkpoint,
        remove_stale_temporaries,
    )
    from medscope_gym.agents.training.metrics import MetricsLog, quiet_transformers
    from medscope_gym.atomic import atomic_write_text

    quiet_transformers()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir)
    checkpoint = latest_checkpoint(out) if cfg.save_every else None
    resume_step = checkpoint_step(checkpoint) if checkpoint is not None else 0
    log = MetricsLog(out, resume_step=resume_step, tensorboard=False, name="perception")
    try:
        result = train_perception(model, processor, cfg, log, policy_system_prompt(model_dir), out)
    finally:
        log.close()
    save_perception_model(model, processor, model_dir, out / "final")
    atomic_write_text(
        out / "perception.json", json.dumps({"config": cfg.to_dict(), **result}, indent=2) + "\n"
    )
    return result


def policy_system_prompt(model_dir: str | Path) -> str | None:
    """The system prompt of the policy saved with a checkpoint (None: no policy settings there), which
    Stage I's episode-layout examples open with."""
    from medscope_gym.agents.vlm.policy import VLMPolicyConfig

    policy = VLMPolicyConfig.load(model_dir)
    return policy.system_prompt if policy else None


def save_perception_model(
    model: Any, processor: Any, source: str | Path | None, dest: str | Path, tiny: Any = None
) -> None:
    """Write a Stage I model and its processor to ``dest`` atomically, with the policy settings and the
    tiny model's description of the checkpoint it came from (``source``), so later stages load it as
    they would that checkpoint. A model built in memory has no such checkpoint: ``tiny`` (its
    ``TinyModelConfig``) writes the description and the tiny model's policy settings instead."""
    import shutil

    from medscope_gym.atomic import atomic_directory

    with atomic_directory(Path(dest)) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for name in ("medscope_policy.json", "medscope_tiny.json"):
            if source is not None and (Path(source) / name).is_file():
                shutil.copy(Path(source) / name, tmp / name)
        if source is None and tiny is not None:
            from medscope_gym.agents.vlm.tiny import save_tiny_settings

            save_tiny_settings(tmp, tiny)
