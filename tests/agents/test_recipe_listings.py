"""Listings inside tool episodes, scored against the sample's captions."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

import medscope_gym.synthetic.testbed as testbed
from medscope_gym.agents.recipe.listings import first_crop_scores, listing_scores, true_listing
from medscope_gym.agents.rollout.trajectory import MediaInputs, Trajectory, TurnRecord
from medscope_gym.agents.scripted import SearchingOracle, SearchStyle
from medscope_gym.chat import even_subsample
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.errors import ConfigError
from medscope_gym.suite import Suite

_PLAN = testbed.TestbedConfig(3, 60, 70, 11, templates=testbed.MAIN_TEMPLATES, per_video=1, splits=(0, 0, 1))


def _search(root, style: SearchStyle | None = None):
    """The search reference's episodes on a small testbed suite, each turn with the times it was shown."""
    testbed.build_testbed_suite(root, _PLAN)
    suite = Suite.from_spec(str(root), split="test")
    env = ClinVideoEnv(suite)
    oracle = SearchingOracle(list_crops=16, style=style)
    episodes = []
    for sample in suite:
        obs, info = env.reset(options={"sample_id": sample.id})
        oracle.begin(0, obs, info, sample)
        turns = []
        while True:
            action = oracle.act([0], [obs], [info])[0]
            times = np.sort(np.asarray(obs["video_times"], dtype=np.float64).reshape(-1))
            shown = times[even_subsample(len(times), 16)]
            turns.append(TurnRecord(obs["text"], action, media=MediaInputs(image_times=shown)))
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        episodes.append(
            Trajectory(uid=sample.id, sample_id=sample.id, task=sample.task, policy="search", turns=turns)
        )
    env.close()
    return episodes, {s.id: s for s in suite}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    return _search(tmp_path_factory.mktemp("listings") / "suite")


@pytest.fixture(scope="module")
def searched_first(tmp_path_factory):
    """The same episodes with close crops from the first frame that shows the symbol."""
    return _search(tmp_path_factory.mktemp("listings-first") / "suite", SearchStyle(close_from="first"))


def test_the_references_listings_are_all_right(searched):
    episodes, samples = searched
    scores = listing_scores(episodes, samples)
    assert scores["preview"] == {"written": len(episodes), "exact": 1.0, "items": 1.0}
    assert scores["crop"]["written"] >= len(episodes) and scores["crop"]["exact"] == 1.0
    assert scores["close"]["written"] >= len(episodes) // 2
    assert scores["close"] == {**scores["close"], "exact": 1.0, "items": 1.0}


def test_close_crops_are_scored_by_the_runs_own_rule(searched, searched_first):
    """A run whose close crops start at the first frame that shows the symbol is scored by that rule:
    all right by it, and (the frame before differing) not by the default one; the crop listings are
    the same either way."""
    episodes, samples = searched_first
    first = listing_scores(episodes, samples, SearchStyle(close_from="first"))
    assert first["close"] == {**first["close"], "exact": 1.0, "items": 1.0}
    assert first["close"]["own"] == first["close"]["after_named"] == first["close"]["written"]
    before = listing_scores(episodes, samples)
    assert before["close"]["exact"] < 1.0 and before["close"]["own"] < before["close"]["written"]
    assert before["crop"] == first["crop"] == listing_scores(*searched)["crop"]


def test_a_listed_close_crop_and_a_choice_by_its_text_still_answer_right(tmp_path, searched):
    """``list_close``: the answer turn lists the close crop's frames and takes an interval's times from
    that listing; ``choice_text``: a choice is answered with the option's text. Every answer is still
    judged right, and the interval is the one the listing shows."""
    from medscope_gym.judges import score_answer

    style = SearchStyle(close_from="first", choice_text=True, list_close=True)
    episodes, samples = _search(tmp_path / "suite", style)
    kinds = set()
    for episode in episodes:
        sample, last = samples[episode.sample_id], episode.turns[-1].action_text
        answer = re.search(r"<answer>(.+)</answer>", last).group(1)
        assert score_answer(sample, answer).score == 1.0
        if "I look closely at" not in episode.turns[-2].action_text:
            continue  # no close crop (the episode's turns ran out first)
        listing = re.search(r"The crop frames: (.+?)\. The crop shows", last).group(1)
        items = [item.split(" ", 1) for item in listing.split("; ")]
        named = [float(t) for t, label in items if label != "no"]
        if sample.answer_type == "interval":
            start, end = json.loads(answer)
            assert start == named[0] and end > named[-1]
        else:
            assert answer == sample.options[ord(sample.answer) - ord("A")] and "option" not in last
        kinds.add(sample.answer_type)
    assert kinds == {"choice", "interval"}
    plain = [ep.turns[-1].action_text for ep in searched[0]]
    assert not any("The crop frames" in text for text in plain)  # the default style lists no close crop


def test_a_marked_listing_puts_its_word_before_the_first_frame_that_shows_something():
    from medscope_gym.agents.scripted import FIRST_MARK, frame_listing

    times, labels = [1.0, 2.5, 4.0, 5.5], ["no", "a red ring", "a red ring", "no"]
    marked = SearchStyle(mark_first=True).crop_listing(times, labels)
    assert marked == f"1.0 no; {FIRST_MARK} 2.5 a red ring; 4.0 a red ring; 5.5 no"
    assert (
        SearchStyle().crop_listing(times, labels)
        == frame_listing(times, labels)
        == marked.replace("first ", "")
    )
    assert frame_listing(times, ["no"] * 4, FIRST_MARK) == "1.0 no; 2.5 no; 4.0 no; 5.5 no"


def test_a_mark_after_the_label_repeats_the_time_and_scores_like_the_mark_before(tmp_path):
    """``mark_after``: the first frame that shows the symbol is listed with its label, then the mark
    and its time again; the reference's episodes score exact in that style, and the close crop starts
    at the time after the mark."""
    style = SearchStyle(close_from="first", list_close=True, mark_after=True)
    times, labels = [1.0, 2.5, 4.0], ["no", "a red ring", "a red ring"]
    assert style.crop_listing(times, labels) == "1.0 no; 2.5 a red ring, first 2.5; 4.0 a red ring"
    with pytest.raises(ConfigError, match="mark_first and mark_after"):
        SearchStyle(mark_first=True, mark_after=True)
    episodes, samples = _search(tmp_path / "suite", style)
    closes = [t.action_text for ep in episodes for t in ep.turns if "I look closely at" in t.action_text]
    assert closes
    for text in closes:
        marked = re.search(r", first (\d+(?:\.\d+)?)\b", text).group(1)
        assert re.search(rf"I look closely at {re.escape(marked)}-", text)
    scores = listing_scores(episodes, samples, style)
    assert scores["crop"] == {**scores["crop"], "exact": 1.0, "items": 1.0}
    assert scores["close"]["exact"] == 1.0 and scores["close"]["own"] == scores["close"]["written"]


def test_a_ranked_preview_listing_names_each_stretch_where_it_begins():
    times = [0.5, 6.5, 12.5, 18.5, 24.5, 30.5]
    labels = ["bar", "bar", "no", "no", "bar", "no"]
    assert SearchStyle(rank_stretches=True).preview_listing(times, labels) == (
        "first 0.5 bar; 6.5 bar; 12.5 no; 18.5 no; second 24.5 bar; 30.5 no"
    )
    assert SearchStyle(mark_first=True).preview_listing(times, labels) == SearchStyle().preview_listing(
        times, labels
    )
    assert SearchStyle(rank_after=True).preview_listing(times, labels) == (
        "0.5 bar, first 0.5; 6.5 bar; 12.5 no; 18.5 no; 24.5 bar, second 24.5; 30.5 no"
    )
    with pytest.raises(ConfigError, match="rank_stretches and rank_after"):
        SearchStyle(rank_stretches=True, rank_after=True)
    with pytest.raises(ConfigError, match="next_from_crop copies the list list_stretches writes"):
        SearchStyle(next_from_crop=True)
    with pytest.raises(ConfigError, match="rank_list ranks the list list_stretches writes"):
        SearchStyle(rank_list=True)


@pytest.mark.parametrize(
    "marks", [{"mark_first": True, "rank_stretches": True}, {"mark_after": True, "rank_after": True}]
)
def test_ranked_searches_crop_the_stretch_after_the_questions_own_word(tmp_path, marks):
    """``rank_stretches`` / ``rank_after``: the reference's first turn ranks each stretch in its preview
    listing, and the stretch it crops first begins at the time written after the rank word its
    reasoning names; its listings score exact in the run's style, and the agent's own close crops are
    read through the marks."""
    style = SearchStyle(close_from="first", **marks)
    episodes, samples = _search(tmp_path / "suite", style)
    picked = 0
    for episode in episodes:
        first = episode.turns[0].action_text
        ranked = re.search(r"The preview frames: (.+?)\.(?=\s)", first)
        said = re.search(r"(?:The|I crop the) (\w+) highlighted interval(?: is|,) (\S+)-", first)
        if ranked is None or said is None:
            continue  # nothing marked in the preview: the reference crops where the evidence is
        rank, start = said.groups()
        assert (f"bar, {rank} {start}" if style.rank_after else f"{rank} {start} bar") in ranked.group(1)
        picked += 1
    assert picked >= len(episodes) // 2
    scores = listing_scores(episodes, samples, style)
    assert scores["preview"] == {"written": len(episodes), "exact": 1.0, "items": 1.0}
    assert scores["crop"]["exact"] == scores["close"]["exact"] == 1.0


@pytest.mark.parametrize(
    ("from_crop", "ranked"),
    [(False, False), (True, False), (False, True)],
    ids=["next", "from-crop", "ranked"],
)
def test_listed_stretches_are_the_listings_runs_and_every_search_crops_from_them(tmp_path, from_crop, ranked):
    """``list_stretches``: after the preview listing the reference writes its runs of "bar" frames, in
    order; the first crop is the one the question names (or the first), and each crop after a miss is
    the item after the one just cropped. With ``next_from_crop`` a move-on writes the list again from
    the stretch just cropped to the one it crops next; with ``rank_list`` each item follows its rank,
    and a named pick's times are the ones after its rank. Listing scores are unchanged by the list."""
    from medscope_gym.agents.scripted import FROM_CROP, NOT_ASKED, STRETCHES, marked_stretches
    from medscope_gym.protocol import parse_turn
    from medscope_gym.suite.labels import ordinal

    style = SearchStyle(close_from="first", list_stretches=True, next_from_crop=from_crop, rank_list=ranked)
    named = 0
    episodes, samples = _search(tmp_path / "suite", style)
    moved = 0
    for episode in episodes:
        first = episode.turns[0].action_text
        listing = re.search(r"The preview frames: (.+?)\.(?=\s)", first)
        if listing is None:
            continue  # nothing marked in the preview: the reference crops where the evidence is
        items = listing.group(1).split("; ")
        runs = marked_stretches([float(i.split()[0]) for i in items], [i.endswith("bar") for i in items])
        written = re.search(f"{STRETCHES}(.+?)\\. ", first).group(1).split("; ")
        if ranked:
            ranks, written = zip(*(w.split(" ", 1) for w in written))
            assert list(ranks) == [ordinal(i) for i in range(len(ranks))]
            picked = re.search(r"The (\w+) highlighted interval is (\S+ s)", first)
            if picked is not None:
                assert written[ranks.index(picked.group(1))] == picked.group(2)
                named += 1
            written = list(written)
        stretches = [tuple(float(t) for t in w.removesuffix(" s").split("-")) for w in written]
        assert stretches == runs
        crops = [parse_turn(t.action_text).tool_call for t in episode.turns]
        crops = [(c.arguments["start_time"], c.arguments["end_time"]) for c in crops if c is not None]
        assert crops[0] in stretches
        for k, turn in enumerate(episode.turns[1:], start=1):
            if NOT_ASKED in turn.action_text:
                assert stretches.index(crops[k]) == stretches.index(crops[k - 1]) + 1
                assert (FROM_CROP in turn.action_text) == from_crop
                if from_crop:
                    copied = re.search(f"{FROM_CROP}(.+?)\\.<", turn.action_text).group(1).split("; ")
                    assert copied == written[stretches.index(crops[k - 1]) :][:2]
                moved += 1
    assert moved > 0
    assert named > 0 or not ranked
    plain, _ = _search(tmp_path / "plain", SearchStyle(close_from="first"))
    assert listing_scores(episodes, samples, style) == listing_scores(
        plain, samples, SearchStyle(close_from="first")
    )


def test_named_first_turns_open_with_the_questions_interval(tmp_path, searched):
    """``name_first``: a first turn with a preview listing opens with the interval its question names
    (the first where it names none), and a pick of a named interval names that rank again. Nothing
    else in the episodes changes, and their listings score as before."""
    from medscope_gym.agents.scripted import PREVIEW_LISTING, named_interval

    style = SearchStyle(name_first=True)
    episodes, samples = _search(tmp_path / "suite", style)
    opened = 0
    for episode, before in zip(episodes, searched[0]):
        first, plain = episode.turns[0].action_text, before.turns[0].action_text
        if PREVIEW_LISTING not in first:
            assert first == plain
            continue
        opening = named_interval(samples[episode.sample_id].question)
        assert first == plain.replace("<think>", f"<think>{opening} ", 1)
        picked = re.search(r"The (\w+) highlighted interval is", first)
        assert picked is None or opening == f"The {picked.group(1)} highlighted interval."
        assert [t.action_text for t in episode.turns[1:]] == [t.action_text for t in before.turns[1:]]
        opened += 1
    assert opened > 0
    assert listing_scores(episodes, samples, style) == listing_scores(*searched)


def test_marked_crop_listings_are_scored_by_the_runs_style(tmp_path, searched):
    """``mark_first``: the reference's crop listings (after a coarse crop and, with ``list_close``,
    before the answer) carry the mark once each where a frame shows the symbol; scored in the run's
    style they are all right, and the close crop read from the agent's own marked listing is its own
    window. Scored without the mark they are not exact, and their items are the plain listings' items."""
    style = SearchStyle(close_from="first", list_close=True, mark_first=True)
    episodes, samples = _search(tmp_path / "suite", style)
    marked = [
        m
        for ep in episodes
        for t in ep.turns
        for m in re.findall(r"The crop frames: (.+?)\.(?=\s|<)", t.action_text)
    ]
    named = [m for m in marked if any(not item.endswith(" no") for item in m.split("; "))]
    assert named and all(m.count("first ") == 1 for m in named)
    assert all("; first " in m or m.startswith("first ") for m in named)
    scores = listing_scores(episodes, samples, style)
    assert scores["crop"] == {**scores["crop"], "exact": 1.0, "items": 1.0}
    assert scores["close"] == {**scores["close"], "exact": 1.0, "items": 1.0}
    assert scores["close"]["own"] == scores["close"]["after_named"] == scores["close"]["written"] > 0
    unmarked = listing_scores(episodes, samples, dataclasses.replace(style, mark_first=False))
    assert unmarked["crop"]["exact"] < 1.0 and unmarked["close"] == scores["close"]


def test_close_window_starts_before_or_at_the_first_frame_that_shows_something():
    from medscope_gym.agents.scripted import close_window

    times, labels = [1.0, 2.5, 4.0, 5.5, 7.0], ["no", "no", "a red ring", "a red ring", "no"]
    assert close_window(times, labels) == (2.5, 7.0)
    assert close_window(times, labels, "first") == (4.0, 7.0)
    assert close_window(times, ["a red ring", "no", "no", "no", "a red ring"], "before") == (1.0, 7.0)
    assert close_window(times, ["no"] * 5, "first") is None
    with pytest.raises(ValueError, match="start must be one of"):
        close_window(times, labels, "after")
    with pytest.raises(ConfigError, match="close_from must be one of"):
        SearchStyle(close_from="last")


def test_a_close_crop_from_the_wrong_frame_is_scored_wrong(searched):
    """The close crop after a crop listing: one time moved off the window costs half of it."""
    episodes, samples = searched
    episode = next(ep for ep in episodes if any("I look closely at" in t.action_text for t in ep.turns))
    k = next(i for i, t in enumerate(episode.turns) if "I look closely at" in t.action_text)
    text = episode.turns[k].action_text
    start = re.search(r'"start_time": (\S+),', text).group(1)
    moved = text.replace(f'"start_time": {start},', f'"start_time": {float(start) - 7.0},')
    turns = list(episode.turns)
    turns[k] = dataclasses.replace(turns[k], action_text=moved)
    scores = listing_scores([dataclasses.replace(episode, turns=turns)], samples)
    assert scores["close"] == {"written": 1, "exact": 0.0, "items": 0.5, "after_named": 1, "own": 0}
    assert scores["crop"]["exact"] == 1.0  # the listing itself is still right
    assert listing_scores([episode], samples)["close"]["own"] == 1


def test_a_listing_of_all_no_is_counted_where_the_symbol_is_on_screen(searched):
    """``crop``'s ``on_screen`` / ``named`` and ``close``'s ``after_named`` / ``own``: the reference
    lists only crops that show the symbol, and names it; a listing blanked to "no" is counted as
    missing it, and the close crop after it follows from no listing of the agent's."""
    episodes, samples = searched
    scores = listing_scores(episodes, samples)
    assert scores["crop"]["on_screen"] == scores["crop"]["named"] == scores["crop"]["written"]
    assert scores["close"]["after_named"] == scores["close"]["own"] == scores["close"]["written"]
    episode = next(ep for ep in episodes if any("I look closely at" in t.action_text for t in ep.turns))
    k = next(i for i, t in enumerate(episode.turns) if "I look closely at" in t.action_text)
    text = episode.turns[k].action_text
    listing = text.split("The crop frames: ")[1].split(". I look")[0]
    blank = "; ".join(f"{item.split(' ', 1)[0]} no" for item in listing.split("; "))
    turns = list(episode.turns)
    turns[k] = dataclasses.replace(turns[k], action_text=text.replace(listing, blank))
    blanked = listing_scores([dataclasses.replace(episode, turns=turns)], samples)
    assert blanked["crop"]["on_screen"] >= 1 and blanked["crop"]["named"] == blanked["crop"]["on_screen"] - 1
    assert blanked["close"]["after_named"] == blanked["close"]["written"] - 1


def test_a_wrong_item_costs_its_share(searched):
    episodes, samples = searched
    first = episodes[0]
    text = first.turns[0].action_text
    listing = text.split("The preview frames: ")[1].split(". ")[0]
    items = listing.split("; ")
    t, label = items[3].split(" ")
    items[3] = f"{t} {'no' if label == 'bar' else 'bar'}"  # one frame judged wrong
    broken = dataclasses.replace(first.turns[0], action_text=text.replace(listing, "; ".join(items)))
    scores = listing_scores([dataclasses.replace(first, turns=[broken, *first.turns[1:]])], samples)
    assert scores["preview"]["exact"] == 0.0
    assert scores["preview"]["items"] == pytest.approx(1 - 1 / len(items))


def test_true_listing_reads_the_captions(searched):
    _, samples = searched
    sample = next(iter(samples.values()))
    marked = [c for c in sample.captions if c.text.endswith(" at the centre")][0]
    middle = (marked.start + marked.end) / 2
    assert true_listing(sample, [middle], "crop") == f"{round(middle, 3)} {marked.text}"
    assert true_listing(sample, [middle], "preview") == f"{round(middle, 3)} bar"
    assert true_listing(sample, [0.0], "crop") == "0.0 no"


@pytest.mark.parametrize("close_from", ["before", "first"])
def test_stage_one_zoom_turns_are_the_references_own(searched, searched_first, close_from):
    """The turn Stage I's ``zoom`` trains (a crop listing, then the close crop) is written as the search
    reference writes it after the crop that holds the evidence: the same sentence, the same window,
    under either rule for where the close crop starts."""
    from medscope_gym.agents.recipe.perception import make_examples
    from medscope_gym.agents.scripted import CROP_LISTING, close_window

    pattern = re.compile(
        rf"<think>{CROP_LISTING}(.+?)\. I look closely at (\S+)-(\S+) s, the frames around it\.</think>\n"
        r'<tool_call>\{"name": "crop_video", "arguments": \{"start_time": (\S+), "end_time": (\S+)\}\}'
        r"</tool_call>"
    )
    episodes, _ = searched if close_from == "before" else searched_first
    zooms = [m for ep in episodes for turn in ep.turns if (m := pattern.fullmatch(turn.action_text))]
    assert len(zooms) >= len(episodes) // 2
    drawn = make_examples("zoom", 7, 6, (60.0, 70.0), style=SearchStyle(close_from=close_from))
    trained = [pattern.fullmatch(ex.given + ex.answer) for ex in drawn]
    for match in zooms + trained:
        assert match is not None
        items = [item.split(" ", 1) for item in match.group(1).split("; ")]
        window = close_window([float(t) for t, _ in items], [label for _, label in items], close_from)
        assert window == (float(match.group(4)), float(match.group(5)))
        assert (match.group(2), match.group(3)) == (f"{window[0]:.1f}", f"{window[1]:.1f}")


def test_stage_one_marks_the_crop_listings_it_trains_in_a_marked_style():
    """With ``mark_first`` every crop listing Stage I trains (``crop``'s answer, ``zoom``'s given
    listing) carries the mark once, and ``zoom``'s close crop starts at the time right after it."""
    from medscope_gym.agents.recipe.perception import make_examples

    style = SearchStyle(close_from="first", mark_first=True)
    crops = make_examples("crop", 7, 6, (60.0, 70.0), crops_as_frames=True, episode=0.5, style=style)
    zooms = make_examples("zoom", 7, 6, (60.0, 70.0), style=style)
    for ex in crops:
        assert ex.answer.count("first ") == 1
    for ex in zooms:
        (marked,) = re.findall(r"first (\S+) a", ex.given)
        assert re.search(rf"I look closely at {re.escape(marked)}-", ex.answer)
    assert not any(
        "first " in ex.answer for ex in make_examples("crop", 7, 6, (60.0, 70.0), crops_as_frames=True)
    )


@pytest.mark.parametrize("after", [False, True])
def test_stage_one_ranks_the_preview_listings_it_trains_in_a_ranked_style(after):
    """With ``rank_stretches`` (or ``rank_after``) Stage I's preview listings (``highlights``' answers,
    ``select``'s given listing) rank every stretch, and ``select``'s crop starts at the time written
    with the rank it names."""
    from medscope_gym.agents.recipe.perception import make_examples

    style = SearchStyle(rank_after=True) if after else SearchStyle(rank_stretches=True)
    ranked = r"(?:^|no; )\d+\.\d bar(?:, (\w+) \d+\.\d)?" if after else r"(?:^|no; )(\w* ?)\d+\.\d bar"
    for ex in make_examples(
        "highlights", 7, 6, (200.0, 300.0), crops_as_frames=True, episode=0.5, style=style
    ):
        runs = re.findall(ranked, ex.answer.removeprefix("<think>The preview frames: "))
        assert runs and [rank.strip() for rank in runs] == ["first", "second", "third", "fourth"][: len(runs)]
    for ex in make_examples("select", 7, 6, (200.0, 300.0), crops_as_frames=True, style=style):
        rank, start = re.search(r"(\w+) highlighted interval(?: is|,) (\S+)-", ex.answer).groups()
        assert (f"bar, {rank} {start}" if after else f"{rank} {start} bar") in ex.given


def test_listings_command_scores_a_seeds_held_out_episodes(searched, tmp_path, capsys):
    """``medscope recipe-listings SEED_DIR``: the held-out suite under ``data/heldout`` and a stage's
    saved episodes under ``STAGE/eval/trajectories``, scored as :func:`listing_scores` scores them."""
    import json

    from medscope_gym.agents.rollout.trajectory import save_trajectories
    from medscope_gym.cli import main

    episodes, samples = searched
    testbed.build_testbed_suite(tmp_path / "data" / "heldout", _PLAN)  # the fixture's suite again
    save_trajectories(tmp_path / "stage-2-vcot" / "eval" / "trajectories", episodes)
    assert main(["recipe-listings", str(tmp_path)]) == 0
    expected = {**listing_scores(episodes, samples), "first_crop": first_crop_scores(episodes, samples)}
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(expected))


def test_listings_command_scores_close_crops_by_the_runs_recipe(searched_first, tmp_path, capsys):
    """The seed folder's ``recipe.json`` says where the run's close crops start."""
    import json

    from medscope_gym.agents.rollout.trajectory import save_trajectories
    from medscope_gym.cli import main

    episodes, samples = searched_first
    testbed.build_testbed_suite(tmp_path / "data" / "heldout", _PLAN)
    save_trajectories(tmp_path / "stage-2-vcot" / "eval" / "trajectories", episodes)
    (tmp_path / "recipe.json").write_text(json.dumps({"search": {"close_from": "first"}}))
    assert main(["recipe-listings", str(tmp_path)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["close"]["exact"] == 1.0
    style = SearchStyle(close_from="first")
    expected = {
        **listing_scores(episodes, samples, style),
        "first_crop": first_crop_scores(episodes, samples, style),
    }
    assert scores == json.loads(json.dumps(expected))


def test_stage_one_scores_episode_layout_listings_in_the_runs_style():
    """The held-out listings in the episode layout carry the run's marks and ranks, as the listings it
    trains on do; scored against unmarked ones, a model that learned the marks could never be right."""
    from medscope_gym.agents.recipe.perception import PerceptionConfig, heldout_examples

    search = {"close_from": "first", "mark_after": True, "rank_after": True}
    cfg = PerceptionConfig(
        skills=("crop", "select"),
        crops_as_frames=True,
        episode_layout=0.5,
        listing_steps=1,
        heldout=6,
        duration=(200.0, 300.0),
        search=search,
    )
    heldout = heldout_examples(cfg)
    assert {"crop@episode", "highlights@episode", "crop", "highlights", "select"} <= set(heldout)
    for skill in ("crop@episode", "crop", "highlights@episode", "highlights"):
        marked = [ex for ex in heldout[skill] if re.search(r", first \d+\.\d", ex.answer)]
        assert len(marked) >= len(heldout[skill]) // 2, skill
    plain = heldout_examples(dataclasses.replace(cfg, search={"close_from": "first"}))
    assert [ex.answer for ex in plain["crop@episode"]] == [
        ex.answer.replace(re.search(r", first \d+\.\d", ex.answer).group(0), "")
        if ", first " in ex.answer
        else ex.answer
        for ex in heldout["crop@episode"]
    ]
    # a run that restates the question trains its crop turns with it: they are scored with it too
    assert not any("Question:" in ex.question for ex in heldout["crop@episode"])
    restated = heldout_examples(dataclasses.replace(cfg, restate_question=True))["crop@episode"]
    assert restated and all(ex.question.startswith("<tool_response>\nYou are watching") for ex in restated)


def test_first_crops_are_scored_against_the_references_and_ranked_questions_apart(searched):
    """The reference's own first crops are all right; an agent that crops the first highlighted
    stretch whatever rank the question names, or writes one time twice, is caught by both counts."""
    from medscope_gym.agents.scripted import named_rank
    from medscope_gym.protocol import format_tool_call

    episodes, samples = searched
    ranked = [e for e in episodes if (named_rank(samples[e.sample_id].question) or 0) > 0]
    assert ranked  # the fixture asks for the second and third highlighted intervals
    right = first_crop_scores(episodes, samples)
    assert right == {
        "written": len(episodes),
        "exact": 1.0,
        "zero_length": 0,
        "ranked": len(ranked),
        "ranked_exact": len(ranked),
        "ranked_on_first": 0,
    }

    def crop(start: float, end: float) -> str:
        return format_tool_call("crop_video", {"start_time": start, "end_time": end}, think="I crop it.")

    def first_stretch(episode) -> tuple[float, float]:
        times = episode.turns[0].media.image_times
        listing = true_listing(samples[episode.sample_id], times, "preview")
        labels = [item.split(" ")[1] for item in listing.split("; ")]
        start = end = labels.index("bar")
        while end + 1 < len(labels) and labels[end + 1] == "bar":  # the first run of marked frames
            end += 1
        return float(times[start]), float(times[end])

    counting_wrong = []
    for episode in episodes:
        turns = list(episode.turns)
        if episode in ranked:
            turns[0] = dataclasses.replace(turns[0], action_text=crop(*first_stretch(episode)))
        counting_wrong.append(dataclasses.replace(episode, turns=turns))
    scores = first_crop_scores(counting_wrong, samples)
    assert scores["ranked_on_first"] == scores["ranked"] == len(ranked) and scores["ranked_exact"] == 0
    assert scores["exact"] == pytest.approx(1 - len(ranked) / len(episodes))

    twice = dataclasses.replace(
        episodes[0], turns=[dataclasses.replace(episodes[0].turns[0], action_text=crop(4.5, 4.5))]
    )
    assert first_crop_scores([twice], samples) == {
        "written": 1,
        "exact": 0.0,
        "zero_length": 1,
        "ranked": 0,
        "ranked_exact": 0,
        "ranked_on_first": 0,
    }


def test_stage_one_draws_as_many_highlighted_intervals_as_the_events_allow():
    """``events``: Stage I's videos hold that many symbols, each in its highlighted interval: with two,
    every pick's list of stretches holds at most two and every later pick is the second."""
    from medscope_gym.agents.recipe.perception import make_examples
    from medscope_gym.agents.scripted import STRETCHES

    style = SearchStyle(close_from="first", list_stretches=True)

    def listed(events):
        picks = make_examples("select", 7, 12, (240.0, 300.0), True, style=style, events=events)
        lists = [re.search(f"{STRETCHES}(.+?)\\. ", ex.answer).group(1).split("; ") for ex in picks]
        named = [re.search(r"The (\w+) highlighted interval is", ex.answer) for ex in picks]
        return [len(items) for items in lists], {m.group(1) for m in named if m is not None}

    counts, ranks = listed((2, 2))
    assert counts and max(counts) <= 2 and ranks <= {"first", "second"}
    default_counts, _ = listed((3, 4))
    assert max(default_counts) >= 3
