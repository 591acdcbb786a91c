"""Stage I perception examples, its training, and the reading probe built on it."""

from __future__ import annotations

import dataclasses
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from medscope_gym.agents.recipe.perception import PerceptionConfig, Rehearsal, make_examples
from medscope_gym.agents.recipe.probe import ReadingProbeConfig, run_reading_probe
from medscope_gym.agents.scripted import SearchStyle
from medscope_gym.chat import Transcript
from medscope_gym.cli import main
from medscope_gym.errors import ConfigError
from medscope_gym.synthetic.testbed import SYMBOL_COLORS, SYMBOLS, generate_testbed_video, preview_frames

MICRO = {"text_hidden": 32, "text_layers": 1, "text_intermediate": 64, "vision_depth": 1, "vision_hidden": 16,
         "patch_size": 8, "min_pixels": 256, "max_pixels": 4096}  # fmt: skip


def test_examples_carry_the_truth_of_their_video():
    frames = make_examples("frames", 7, 40, (90.0, 150.0))
    assert {len(ex.images) for ex in frames} == {3} and all(ex.video is None for ex in frames)
    assert any(ex.answer.endswith("at the centre") for ex in frames)  # half are at a symbol
    for ex in frames:  # the answer is what the middle frame shows: a symbol's colour, the white bar
        middle = ex.images[1].astype(int)
        bar = middle[:4].mean() > 200
        if ex.answer.endswith("at the centre"):
            colour = SYMBOL_COLORS[ex.answer.split()[1]]
            assert (np.abs(middle[16:32, 16:32] - colour).max(axis=-1) < 40).sum() > 20 and bar
        else:
            assert ex.answer == ("a highlighted interval, no symbol" if bar else "nothing highlighted")
    assert all(np.allclose(np.diff(ex.image_times), 0.5) for ex in frames)  # consecutive frames, 2 fps
    assert {ex.kind for ex in frames} == {"symbol", "highlight", "nothing"}
    symbols = make_examples("symbol", 7, 12, (90.0, 150.0))
    assert all(ex.kind == "symbol" and ex.answer.endswith("at the centre") for ex in symbols)
    crops = make_examples("crop", 7, 6, (90.0, 150.0))
    names = {f"a {name} at the centre" for name in SYMBOLS}
    assert all(ex.answer in names and 4 <= len(ex.video) <= 16 for ex in crops)
    previews = make_examples("preview", 7, 6, (90.0, 150.0))
    for ex in previews:
        assert len(ex.images) == 16 and ex.images[0].shape == (32, 32, 3)
        a, b = (float(x) for x in ex.answer.removesuffix(" s").split("-"))
        assert a in ex.image_times and b in ex.image_times and b > a  # two preview frames' times
    for ex in make_examples("highlights", 7, 6, (90.0, 150.0)):  # every preview frame: bar or not
        lit = [
            f"{t} {'bar' if frame[:2].mean() > 200 else 'no'}" for t, frame in zip(ex.image_times, ex.images)
        ]
        assert "bar" in ex.answer and ex.answer.split("; ") == lit
    # crops as Stage II shows them with crops_as_frames: timestamped frames, each listed with what it shows
    for ex in make_examples("crop", 7, 4, (90.0, 150.0), crops_as_frames=True):
        listed = ex.answer.split("; ")
        assert ex.video is None and len(ex.images) == len(ex.image_times) == len(listed)
        lit = [_shows_symbol(frame) for frame in ex.images]
        assert any(lit) and [not x.endswith(" no") for x in listed] == lit
        assert [x.split(" ")[0] for x in listed] == [f"{t}" for t in ex.image_times]
    # the same seed gives the same examples; the answer of the first preview example from its video
    again = make_examples("preview", 7, 6, (90.0, 150.0))
    assert [ex.answer for ex in again] == [ex.answer for ex in previews]
    video = generate_testbed_video(7, 120.0)
    assert len(preview_frames(video.num_frames, video.fps)) == 16


def _shows_symbol(frame: np.ndarray) -> bool:
    """Whether a frame has a symbol's worth of pixels in a symbol colour."""
    near = [np.abs(frame.astype(int) - np.asarray(rgb)).max(axis=-1) < 40 for rgb in SYMBOL_COLORS.values()]
    return int(np.sum(near)) > 50


def test_probe_curve_is_seeded_and_learns_the_answer_format():
    cfg = ReadingProbeConfig(
        model=MICRO, steps=30, batch_size=2, learning_rate=3e-3, heldout=8, eval_every=15, skills=("crop",)
    )
    first = run_reading_probe(cfg)
    assert [row["step"] for row in first["curve"]] == [15, 30]
    assert 0.0 <= first["heldout"]["crop"] <= 1.0
    assert first["curve"][-1]["loss"] < first["first_loss"] - 1.0  # the names' spelling is being learned
    again = run_reading_probe(cfg)
    assert again["curve"] == first["curve"]  # same seed, same curve


def test_reading_phase_comes_first_and_frames_are_scored_per_kind():
    cfg = ReadingProbeConfig(
        model=MICRO, steps=2, reading_steps=3, batch_size=2, heldout=12, eval_every=3, skills=("frames",)
    )
    result = run_reading_probe(cfg)
    assert [row["step"] for row in result["curve"]] == [3, 5]  # reading phase, then the mix
    scores = result["heldout"]
    assert {"symbol", "frames", "frames/symbol", "frames/nothing"} <= set(scores)
    kinds = [ex.kind for ex in make_examples("frames", 999_010_000, 12, (90.0, 150.0))]
    # the whole-skill score is the per-kind scores weighted by their counts
    weighted = sum(scores[f"frames/{k}"] * kinds.count(k) for k in set(kinds)) / len(kinds)
    assert scores["frames"] == pytest.approx(weighted)


def test_listing_phase_and_listings_scored_per_item():
    """``listing_steps`` trains the listings (with ``crops_as_frames``: the preview's and a crop's) after
    reading; a listing is also scored per item, which no whole-listing score can exceed."""
    cfg = ReadingProbeConfig(
        model=MICRO,
        steps=1,
        reading_steps=1,
        listing_steps=2,
        batch_size=2,
        heldout=4,
        eval_every=100,
        skills=("symbol",),
        crops_as_frames=True,
    )
    scores = run_reading_probe(cfg)["heldout"]
    assert {"symbol", "highlights", "highlights/items", "crop", "crop/items"} <= set(scores)
    for skill in ("highlights", "crop"):
        assert 0.0 <= scores[skill] <= scores[f"{skill}/items"] <= 1.0
        assert scores[f"{skill}/items"] <= min(scores[f"{skill}/times"], scores[f"{skill}/labels"])


def test_items_of_a_listing_are_right_or_wrong_as_wholes():
    from medscope_gym.agents.recipe.perception import _items_right

    sep, spaced = 9, frozenset({5, 6})  # target: item, sep, item, sep, item; 5 and 6 begin with a space
    right = [1, 5, 9, 6, 2, 6, 9, 6, 3, 5]  # "1 x; 2 y; 3 x": a leading space (6) belongs to the time
    assert _items_right(right, right, sep, spaced) == [(True, True)] * 3
    # item 1: its time wrong; item 2: its label wrong; item 3: its leading space wrong (the time's)
    pred = [7, 5, 9, 6, 2, 5, 9, 5, 3, 5]
    assert _items_right(right, pred, sep, spaced) == [(False, True), (True, False), (False, True)]


def test_probe_scores_a_checkpoint_without_training_it(tiny_dir, capsys):
    """``--checkpoint DIR --steps 0``: the held-out scores of a saved model, its weights untouched."""
    cfg = ReadingProbeConfig(checkpoint=str(tiny_dir), steps=0, heldout=6, skills=("symbol", "frames"))
    before = (tiny_dir / "model.safetensors").read_bytes()
    result = run_reading_probe(cfg)
    assert [row["step"] for row in result["curve"]] == [0] and result["curve"][0]["loss"] is None
    assert {"symbol", "frames"} <= set(result["heldout"])
    assert all(0.0 <= v <= 1.0 for v in result["heldout"].values())
    assert (tiny_dir / "model.safetensors").read_bytes() == before
    assert run_reading_probe(cfg)["heldout"] == result["heldout"]  # scoring is deterministic


def test_probe_saves_the_model_it_trained(tiny_dir, tmp_path):
    """``--save DIR``: the trained model, loadable as the checkpoint it came from, with its settings."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    saved = tmp_path / "continued"
    cfg = ReadingProbeConfig(checkpoint=str(tiny_dir), steps=1, batch_size=1, heldout=2, save=str(saved))
    run_reading_probe(cfg)
    assert (saved / "medscope_policy.json").is_file()
    assert (saved / "model.safetensors").read_bytes() != (tiny_dir / "model.safetensors").read_bytes()
    again = run_reading_probe(ReadingProbeConfig(checkpoint=str(saved), steps=0, heldout=2))
    assert set(again["heldout"]) == {"symbol"}
    Qwen2_5_VLForConditionalGeneration.from_pretrained(saved)


def test_probe_saves_a_model_built_from_scratch_with_the_tiny_settings(tmp_path):
    """A model the probe built itself is saved with the tiny model's description and policy settings,
    so a probe continued from it lays episode examples out with the policy's system prompt."""
    from medscope_gym.agents.recipe.perception import policy_system_prompt
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, tiny_policy_config

    saved = tmp_path / "scratch"
    run_reading_probe(ReadingProbeConfig(model=MICRO, steps=1, batch_size=1, heldout=2, save=str(saved)))
    assert policy_system_prompt(saved) == tiny_policy_config().system_prompt
    described = json.loads((saved / "medscope_tiny.json").read_text())
    assert TinyModelConfig(**described).text_hidden == MICRO["text_hidden"]


def test_probe_command_writes_its_result(tmp_path, capsys):
    out = tmp_path / "probe.json"
    code = main(
        ["recipe-probe", "--model", json.dumps(MICRO), "--steps", "2", "--batch-size", "1", "--heldout", "2",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["config"]["steps"] == 2 and len(result["curve"]) == 1
    assert "held-out accuracy symbol" in capsys.readouterr().out


def test_irregular_listings_are_at_random_times_and_still_true():
    """``irregular``: the preview's frames and a crop's drawn at random times, in order; the listing
    stays what each frame shows. Without it no random number is drawn for the layout."""
    plain = make_examples("highlights", 7, 6, (90.0, 150.0))
    assert all(np.allclose(np.diff(ex.image_times), np.diff(ex.image_times)[0], atol=1.0) for ex in plain)
    assert [ex.answer for ex in make_examples("highlights", 7, 6, (90.0, 150.0), irregular=0.0)] == [
        ex.answer for ex in plain
    ]
    uneven = make_examples("highlights", 7, 6, (90.0, 150.0), irregular=1.0)
    for ex in uneven:
        gaps = np.diff(ex.image_times)
        assert len(ex.images) == 16 and (gaps > 0).all() and gaps.max() - gaps.min() > 2.0
        lit = [
            f"{t} {'bar' if frame[:2].mean() > 200 else 'no'}" for t, frame in zip(ex.image_times, ex.images)
        ]
        assert ex.answer.split("; ") == lit
    crops = make_examples("crop", 7, 6, (90.0, 150.0), crops_as_frames=True, irregular=1.0)
    assert any(len(set(np.round(np.diff(ex.image_times), 3))) > 1 for ex in crops)
    for ex in crops:
        listed = ex.answer.split("; ")
        assert [x.split(" ")[0] for x in listed] == [f"{t}" for t in ex.image_times]
        assert [not x.endswith(" no") for x in listed] == [_shows_symbol(frame) for frame in ex.images]


def test_episode_layout_is_the_episodes_first_turn(tiny_dir):
    """A preview listing in the episode layout: the policy's system prompt, the frames with their times,
    the env's question and preview line, and the reference's opening of its reasoning; the turn is
    not ended (the episode's reasoning goes on after the listing)."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import ExampleBatcher
    from medscope_gym.agents.scripted import CROP_LISTING, PREVIEW_LISTING

    plain = make_examples("highlights", 7, 4, (90.0, 150.0))
    laid = make_examples("highlights", 7, 4, (90.0, 150.0), episode=1.0)
    assert all(ex.episode for ex in laid) and not any(ex.episode for ex in plain)
    for a, b in zip(plain, laid):
        assert b.answer == f"<think>{PREVIEW_LISTING}{a.answer}."
        assert b.question.startswith("You are watching a clinical video of ")
        assert "\nQuestion: " in b.question and b.question.endswith(
            f"16 frames from {a.image_times[0]:.1f} s to {a.image_times[-1]:.1f} s."
        )
    batcher = ExampleBatcher(AutoProcessor.from_pretrained(tiny_dir), system_prompt="Be brief.")
    enc, labels = batcher(laid[:1] + plain[:1])
    text = batcher.tokenizer.decode(enc["input_ids"][0])
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|vision_start|>")
    supervised = batcher.tokenizer.decode(labels[0][labels[0] != -100])
    assert supervised == laid[0].answer  # no end of turn
    assert batcher.tokenizer.decode(labels[1][labels[1] != -100]) == f"{plain[0].answer}<|im_end|>"
    assert not batcher.tokenizer.decode(enc["input_ids"][1]).startswith("<|im_start|>system")
    # a crop's listing as a crop's turn: the env's crop and budget lines, then the reference's opening
    crops = make_examples("crop", 7, 3, (90.0, 150.0), crops_as_frames=True)
    crop_turns = make_examples("crop", 7, 3, (90.0, 150.0), crops_as_frames=True, episode=1.0)
    for a, b in zip(crops, crop_turns):
        assert b.episode and b.answer == f"<think>{CROP_LISTING}{a.answer}."
        # the text after the frames is the tool turn's, as an episode's transcript renders it
        inner = b.question.removeprefix("<tool_response>\n").removesuffix("\n</tool_response>")
        episode = Transcript()
        episode.add_observation({"text": "the question"})
        episode.add_observation({"text": inner, "images": np.stack(b.images), "image_times": b.image_times})
        assert episode.to_hf_messages()[-1]["content"][-1]["text"] == b.question != inner
        first, budget = inner.split("\n")
        assert first.startswith(f"crop_video [{a.image_times[0]:.1f} s, {a.image_times[-1]:.1f} s]: ")
        assert re.fullmatch(r"\[turn ([123]) of 5; (\d) tool calls left\]", budget)


def test_first_turn_is_the_search_references_whole_first_turn():
    """``first_turn``: the episode-layout preview example answered with the listing, the interval the
    question names (or the first one) and the crop call, as the search reference plays that turn."""
    from medscope_gym.agents.scripted import PREVIEW_LISTING
    from medscope_gym.suite.labels import ordinal

    listed = make_examples("highlights", 7, 6, (90.0, 150.0), episode=1.0)
    turns = make_examples("highlights", 7, 6, (90.0, 150.0), episode=1.0, first_turn=True)
    for a, b in zip(listed, turns):
        assert b.answer.startswith(a.answer.removesuffix(".") + ". ")  # the same listing first
        head, call = b.answer.split("</think>\n")
        start, end = (float(x) for x in re.findall(r"(\d+\.?\d*)-(\d+\.?\d*) s", head)[-1])
        assert call == (
            f'<tool_call>{{"name": "crop_video", "arguments": {{"start_time": {start}, "end_time": {end}}}}}'
            "</tool_call>"
        )
        assert start in b.image_times and end in b.image_times  # two shown frames' times
        named = re.search(r"in the (\w+) highlighted", b.question)
        if named:  # the interval the question names, counted in the listing's runs of "bar"
            assert f"The {named.group(1)} highlighted interval is" in head
            assert named.group(1) in {ordinal(k) for k in range(4)}
    assert all(PREVIEW_LISTING in ex.answer for ex in turns)


def _given_is_shown_not_trained(tiny_dir, examples) -> None:
    """The examples' ``given`` text sits in the assistant turn before the answer, and only the answer's
    tokens are labelled; some are at irregular times, some at even ones."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import ExampleBatcher

    gaps = [np.diff(ex.image_times) for ex in examples]
    irregular = sum(bool(g.max() - g.min() > 1.0) for g in gaps)
    assert 0 < irregular < len(examples)
    batcher = ExampleBatcher(AutoProcessor.from_pretrained(tiny_dir), system_prompt="Be brief.")
    enc, labels = batcher(examples[:2])
    for i, ex in enumerate(examples[:2]):
        assert batcher.tokenizer.decode(labels[i][labels[i] != -100]) == ex.answer
        assert f"assistant\n{ex.given}{ex.answer}" in batcher.tokenizer.decode(enc["input_ids"][i])


def test_select_gives_the_listing_and_trains_the_step_after_it(tiny_dir):
    """``select``: a first turn whose listing is given (shown, not trained on) and whose interval and
    crop call are the answer, at even and irregular times; only turns where the reference picks an
    interval."""

    from medscope_gym.agents.scripted import PREVIEW_LISTING

    picks = make_examples("select", 7, 8, (90.0, 150.0), irregular=0.5)
    assert len(picks) == 8 and all(ex.episode and ex.images for ex in picks)
    for ex in picks:
        assert ex.given.startswith(f"<think>{PREVIEW_LISTING}") and ex.given.endswith((" no.", " bar."))
        assert ex.answer.startswith((" The ", " I crop")) and ex.answer.endswith("</tool_call>")
        listed = [float(item.split(" ")[0]) for item in ex.given.split(": ", 1)[1].rstrip(".").split("; ")]
        assert listed == ex.image_times
        start, end = (float(x) for x in re.findall(r"(\d+\.?\d*)-(\d+\.?\d*) s", ex.answer)[0])
        assert start in listed and end in listed
    _given_is_shown_not_trained(tiny_dir, picks)
    cfg = ReadingProbeConfig(checkpoint=str(tiny_dir), steps=0, heldout=3, skills=("select",))
    assert 0.0 <= run_reading_probe(cfg)["heldout"]["select"] <= 1.0


def test_copy_writes_the_questions_list_out_again_and_comes_first(monkeypatch):
    """``copy``: a text list (no frames) written out again, times at random up to the longest video;
    ``copy_steps`` of it come before the reading phase and are scored."""
    lists = make_examples("copy", 3, 20, (90.0, 150.0))
    assert len({ex.answer for ex in lists}) == 20
    for ex in lists:
        assert not ex.images and ex.video is None
        assert ex.question.endswith(f"\n{ex.answer}")
        times = [float(item.split(" ")[0]) for item in ex.answer.split("; ")]
        assert 8 <= len(times) <= 16 and times == sorted(times) and max(times) < 150.0
    labels = [item.split(" ", 1)[1] for ex in lists for item in ex.answer.split("; ")]
    assert {"bar", "no"} <= set(labels) and any(label.endswith("at the centre") for label in labels)
    trained = _batched_skills(monkeypatch)
    cfg = ReadingProbeConfig(
        model=MICRO, copy_steps=2, reading_steps=1, steps=1, batch_size=2, heldout=2, eval_every=4
    )
    result = run_reading_probe(cfg)
    assert trained[:3] == ["copy", "copy", "symbol"]
    assert {"copy", "copy/items", "symbol"} <= set(result["heldout"])


def test_the_step_after_the_listing_is_scored_on_its_own(tiny_dir):
    """``skill/after``: whether a whole first turn's tokens after the listing are right; a listing
    alone has no such part."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import _after_listing

    tokenizer = AutoProcessor.from_pretrained(tiny_dir).tokenizer
    turn = make_examples("highlights", 7, 1, (90.0, 150.0), episode=1.0, first_turn=True)[0]
    ids = tokenizer(turn.answer, add_special_tokens=False)["input_ids"]
    cut = _after_listing(tokenizer, ids, turn.answer)
    assert tokenizer.decode(ids[:cut]).endswith(" no.") or tokenizer.decode(ids[:cut]).endswith(" bar.")
    assert tokenizer.decode(ids[cut:]).lstrip().startswith(("The ", "I crop"))
    listing = make_examples("highlights", 7, 1, (90.0, 150.0), episode=1.0)[0]
    assert _after_listing(tokenizer, tokenizer(listing.answer)["input_ids"], listing.answer) is None
    cfg = ReadingProbeConfig(
        checkpoint=str(tiny_dir),
        steps=0,
        heldout=3,
        skills=("highlights",),
        episode_layout=1.0,
        first_turn=True,
    )
    scores = run_reading_probe(cfg)["heldout"]
    assert 0.0 <= scores["highlights@episode"] <= scores["highlights@episode/after"] <= 1.0


def test_even_listings_come_first_then_irregular_ones(monkeypatch):
    """``even_first``: the listing phase's first share at even times, the rest at ``irregular_times``,
    on videos that go on without repeating."""
    import medscope_gym.agents.recipe.perception as perception

    calls = []
    real = perception.make_examples

    def spy(skill, first_seed, count, *args, **kwargs):
        calls.append((skill, first_seed, count, args[2] if len(args) > 2 else 0.0))
        return real(skill, first_seed, count, *args, **kwargs)

    monkeypatch.setattr(perception, "make_examples", spy)
    cfg = ReadingProbeConfig(
        model=MICRO, steps=0, listing_steps=4, even_first=0.5, irregular_times=1.0, batch_size=2, heldout=1,
        eval_every=100, skills=("highlights",), crops_as_frames=True,
    )  # fmt: skip
    run_reading_probe(cfg)
    listed = [c for c in calls if c[1] % 1_000_000 >= 600_000 and c[1] < 999_000_000]
    assert [(skill, irregular) for skill, _, _, irregular in listed] == [
        ("highlights", 0.0),
        ("crop", 0.0),
        ("highlights", 1.0),
        ("crop", 1.0),
    ]
    assert listed[2][1] == listed[0][1] + listed[0][2]  # the irregular phase's videos follow on
    with pytest.raises(ConfigError, match="even_first"):
        PerceptionConfig(even_first=2.0)


def test_held_out_examples_can_be_longer_than_the_training_ones():
    cfg = ReadingProbeConfig(
        model=MICRO, steps=1, batch_size=2, heldout=2, eval_every=100, skills=("highlights", "crop"),
        duration=(60.0, 70.0), heldout_duration=(300.0, 310.0), irregular_times=1.0, episode_layout=0.5,
        crops_as_frames=True,
    )  # fmt: skip
    assert cfg.heldout_duration == (300.0, 310.0)
    scores = run_reading_probe(cfg)["heldout"]
    assert 0.0 <= scores["highlights/times"] <= 1.0
    for skill in ("highlights", "crop"):
        assert 0.0 <= scores[f"{skill}@episode"] <= scores[f"{skill}@episode/items"] <= 1.0
    long = make_examples("highlights", 999_040_000, 2, (300.0, 310.0))
    assert all(ex.image_times[-1] > 290.0 for ex in long)  # what the held-out scores are made of


def test_bad_perception_config_is_refused():
    with pytest.raises(ConfigError, match="irregular_times"):
        PerceptionConfig(irregular_times=1.5)
    with pytest.raises(ConfigError, match="episode_layout"):
        PerceptionConfig(episode_layout=-0.1)
    with pytest.raises(ConfigError, match="heldout_duration"):
        PerceptionConfig(heldout_duration=(300.0, 200.0))
    with pytest.raises(ConfigError, match="learning_rate"):
        PerceptionConfig(learning_rate=0.0)
    with pytest.raises(ConfigError, match="skills"):
        PerceptionConfig(skills=("smell",))
    with pytest.raises(ConfigError, match="close_from"):
        PerceptionConfig(search={"close_from": "after"})
    with pytest.raises(ConfigError, match="unknown SearchStyle field"):
        PerceptionConfig(search={"close": "first"})


def test_rehearsal_takes_the_skills_in_turn_from_fresh_videos_and_gives_a_loss():
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_model, build_processor

    tiny = TinyModelConfig(**{**MICRO, "vocab_size": 0})
    processor = build_processor(tiny)
    model = build_model(processor.tokenizer, tiny)

    def drawn(seed: int) -> list[tuple[str, str]]:
        rehearsal = Rehearsal(processor, ("symbol", "crop"), batch_size=3, crops_as_frames=True, seed=seed)
        log: list[tuple[str, str]] = []
        rehearsal.batch = _counting(rehearsal.batch, log)
        losses = [rehearsal(model) for _ in range(4)]
        assert all(float(loss) > 0 and loss.requires_grad for loss in losses)
        return log

    first = drawn(0)
    assert [skill for skill, _ in first] == ["symbol"] * 3 + ["crop"] * 3 + ["symbol"] * 3 + ["crop"] * 3
    assert len({answer for skill, answer in first if skill == "crop"}) == 6  # no example drawn twice
    assert drawn(0) == first and drawn(1) != first  # seeded
    with pytest.raises(ConfigError, match="smell"):
        Rehearsal(processor, ("smell",))
    # laid out as Stage I's examples: the preview listing as an episode's first turn, at random times
    laid = Rehearsal(
        processor, ("highlights",), batch_size=4, irregular=1.0, episode=1.0, system_prompt="Hi."
    )
    batch = laid.batch()
    assert all(ex.episode and ex.answer.startswith("<think>") for ex in batch)
    assert any(np.ptp(np.diff(ex.image_times)) > 2.0 for ex in batch)
    assert float(laid(model)) > 0


def test_micro_batches_give_the_whole_batchs_loss_and_gradient():
    """Length-sorted micro-batches, each weighted by its answer tokens: the one batch's gradient."""
    import torch

    from medscope_gym.agents.recipe.perception import ExampleBatcher, backward_step
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_model, build_processor

    tiny = TinyModelConfig(**{**MICRO, "vocab_size": 0})
    processor = build_processor(tiny)
    model = build_model(processor.tokenizer, tiny)
    batch = make_examples("crop", 5, 3, (60.0, 90.0), crops_as_frames=True, irregular=1.0)
    batch += make_examples("symbol", 6, 2, (60.0, 90.0)) + make_examples("copy", 7, 2, (60.0, 90.0))
    lengths = {len(ex.answer) for ex in batch}
    assert len(lengths) > 2  # examples of several lengths: the groups differ in padding

    def gradient(micro: int) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        loss = backward_step(model, ExampleBatcher(processor), batch, micro)
        return loss, [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]

    whole, reference = gradient(1)
    for micro in (2, 3, 7):
        loss, grads = gradient(micro)
        assert loss == pytest.approx(whole, rel=1e-5)
        assert len(grads) == len(reference)
        assert all(torch.allclose(g, r, atol=1e-6, rtol=1e-4) for g, r in zip(grads, reference))
    with pytest.raises(ConfigError, match="micro_batches"):
        PerceptionConfig(micro_batches=0)


def _batched_skills(monkeypatch) -> list[str]:
    """The skill of each batch Stage I's batcher makes from now on: training batches first, then the
    held-out scores."""
    import medscope_gym.agents.recipe.perception as perception

    trained: list[str] = []
    batcher_call = perception.ExampleBatcher.__call__

    def spy(self, batch):
        trained.append(batch[0].skill)
        return batcher_call(self, batch)

    monkeypatch.setattr(perception.ExampleBatcher, "__call__", spy)
    return trained


def _counting(batch, log):
    def wrapped():
        examples = batch()
        log.extend((ex.skill, ex.answer) for ex in examples)
        return examples

    return wrapped


def test_zoom_gives_the_crop_listing_and_trains_the_close_crop(tiny_dir):
    """``zoom``: a crop's turn whose listing is given and whose answer is the close crop from the listed
    frame before the first that shows the symbol to the frame after the last, at even and irregular
    times; scored per part as ``select`` is."""

    from medscope_gym.agents.scripted import CROP_LISTING

    zooms = make_examples("zoom", 7, 8, (90.0, 150.0), irregular=0.5)
    assert len(zooms) == 8 and all(ex.episode and len(ex.images) == len(ex.image_times) for ex in zooms)
    for ex in zooms:
        assert ex.given.startswith(f"<think>{CROP_LISTING}") and ex.given.endswith(" no.")
        items = [item.split(" ", 1) for item in ex.given.split(": ", 1)[1].rstrip(".").split("; ")]
        assert [float(t) for t, _ in items] == ex.image_times
        hits = [i for i, (_, label) in enumerate(items) if label != "no"]
        start, end = float(items[max(hits[0] - 1, 0)][0]), float(items[min(hits[-1] + 1, len(items) - 1)][0])
        assert ex.answer == (
            f" I look closely at {start:.1f}-{end:.1f} s, the frames around it.</think>\n"
            f'<tool_call>{{"name": "crop_video", "arguments": {{"start_time": {start}, "end_time": {end}}}}}'
            "</tool_call>"
        )
    _given_is_shown_not_trained(tiny_dir, zooms)
    cfg = ReadingProbeConfig(checkpoint=str(tiny_dir), steps=0, heldout=3, skills=("zoom",))
    scores = run_reading_probe(cfg)["heldout"]
    assert {"zoom", "zoom/words", "zoom/times", "zoom/call"} <= set(scores)
    assert "zoom/items" not in scores  # the listing is given, not scored


def test_window_is_zoom_without_its_frames_and_comes_after_the_copy_drill(monkeypatch):
    """``window``: ``zoom``'s turns with the frames removed (the same draws from a seed, so its held-out
    examples are ``zoom``'s); ``window_steps`` of it come after the copy drill, before the reading."""
    windows = make_examples("window", 11, 6, (90.0, 150.0), irregular=0.5)
    zooms = make_examples("zoom", 11, 6, (90.0, 150.0), irregular=0.5)
    assert [(ex.question, ex.given, ex.answer) for ex in windows] == [
        (ex.question, ex.given, ex.answer) for ex in zooms
    ]
    assert all(ex.episode and not ex.images and not ex.image_times and ex.video is None for ex in windows)
    assert all(ex.images for ex in zooms)
    trained = _batched_skills(monkeypatch)
    cfg = ReadingProbeConfig(
        model=MICRO, copy_steps=1, window_steps=2, reading_steps=1, steps=0, batch_size=2, heldout=2,
        eval_every=10,
    )  # fmt: skip
    result = run_reading_probe(cfg)
    assert trained[:4] == ["copy", "window", "window", "symbol"]
    assert {"window", "window/words", "window/times", "window/call"} <= set(result["heldout"])
    with pytest.raises(ConfigError, match="window_steps"):
        PerceptionConfig(window_steps=-1)


def test_name_first_opens_the_first_turn_with_the_ordinal_drills_answer():
    """``SearchStyle.name_first``: an episode-layout preview listing opens with the highlighted interval
    its question names (the ordinal drill's answer to that question), ``select`` is given that
    sentence with the listing, and the listing's items are scored as without it."""
    from medscope_gym.agents.recipe.perception import _items
    from medscope_gym.agents.scripted import PREVIEW_LISTING, named_interval

    style = SearchStyle(name_first=True)
    listings = make_examples(
        "highlights", 7, 12, (200.0, 300.0), crops_as_frames=True, episode=1.0, style=style
    )
    plain = make_examples("highlights", 7, 12, (200.0, 300.0), crops_as_frames=True, episode=1.0)
    for ex, before in zip(listings, plain):
        opening = f"<think>{named_interval(ex.question)} {PREVIEW_LISTING}"
        assert ex.answer.startswith(opening) and ex.answer.removeprefix(
            opening
        ) == before.answer.removeprefix(f"<think>{PREVIEW_LISTING}")
        assert _items(ex.answer) == _items(before.answer) and len(_items(ex.answer)) > 1
    ordinals = make_examples("ordinal", 7, 12, (200.0, 300.0), crops_as_frames=True, style=style)
    selects = make_examples("select", 7, 12, (200.0, 300.0), crops_as_frames=True, style=style)
    assert {ex.kind for ex in selects} == {"first", "later"}
    for drill, pick in zip(ordinals, selects):
        assert pick.given.startswith(f"<think>{drill.answer} {PREVIEW_LISTING}")
        rank = re.match(r"The (\w+) highlighted interval\.$", drill.answer).group(1)
        assert re.search(rf"\b[Tt]he {rank} highlighted interval", pick.answer)


def test_ordinal_is_selects_question_alone_and_comes_after_the_window_drill(monkeypatch):
    """``ordinal``: ``select``'s questions (the same draws from a seed), as text, answered with the
    highlighted interval ``select``'s pick names (the first where the question names none);
    ``ordinal_steps`` of it come after the window drill, before the reading, and are scored held-out
    per kind as ``select`` is."""
    ordinals = make_examples("ordinal", 7, 12, (200.0, 300.0), crops_as_frames=True)
    selects = make_examples("select", 7, 12, (200.0, 300.0), crops_as_frames=True)
    assert [ex.kind for ex in ordinals] == [ex.kind for ex in selects]
    assert {ex.kind for ex in ordinals} == {"first", "later"}
    for drill, pick in zip(ordinals, selects):
        assert drill.question.startswith(pick.question) and drill.question.endswith("or search from?")
        assert not (drill.images or drill.given or drill.episode) and drill.video is None
        named = re.match(r"The (\w+) highlighted interval\.$", drill.answer).group(1)
        assert re.search(rf"\b[Tt]he {named} highlighted interval", pick.answer)
    trained = _batched_skills(monkeypatch)
    cfg = ReadingProbeConfig(
        model=MICRO, copy_steps=1, window_steps=1, ordinal_steps=2, reading_steps=1, steps=0, batch_size=2,
        heldout=8, eval_every=10,
    )  # fmt: skip
    result = run_reading_probe(cfg)
    assert trained[:5] == ["copy", "window", "ordinal", "ordinal", "symbol"]
    assert {"ordinal", "ordinal/first", "ordinal/later"} <= set(result["heldout"])
    rehearsed = Rehearsal(SimpleNamespace(tokenizer=None), ("ordinal",), batch_size=2).batch()
    assert [ex.skill for ex in rehearsed] == ["ordinal", "ordinal"]  # beside Stage II too
    with pytest.raises(ConfigError, match="ordinal_steps"):
        PerceptionConfig(ordinal_steps=-1)


def test_search_is_an_episode_as_text_up_to_a_crop_listing_and_the_step_after_it(tiny_dir):
    """``search``: a testbed question played by the search reference up to a turn after a crop, as the
    chat template lays the episode out (the frames left out), the listing given; the answer is the close
    crop where the listing shows what the question asks about, else the crop of the next stretch of
    the first turn's preview listing. Both kinds come up; with ``restate`` every tool response opens
    with the question."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import ExampleBatcher
    from medscope_gym.agents.scripted import NOT_ASKED, marked_stretches
    from medscope_gym.chat import Transcript
    from medscope_gym.protocol import parse_turn

    style = SearchStyle(close_from="first", choice_text=True, list_close=True, mark_after=True)
    searches = make_examples("search", 31, 16, (120.0, 240.0), style=style, restate=True)
    assert {ex.kind for ex in searches} == {"next", "close"}
    response = "<|im_end|>\n<|im_start|>user\n<tool_response>\n"
    for ex in searches:
        assert ex.episode and not ex.images and ex.video is None
        question = ex.question.rsplit("\n", 1)[0]
        turns = ex.given.split(response)
        assert len(turns) >= 2 and all(
            t.split("\n</tool_response>")[0].startswith(question) for t in turns[1:]
        )
        preview = re.search(r"The preview frames: (.*?)\. ", turns[0]).group(1).split("; ")
        stretches = marked_stretches(
            [float(item.split()[0]) for item in preview], [item.endswith("bar") for item in preview]
        )
        listing = ex.given.rsplit("The crop frames: ", 1)[1]
        shown = set(re.findall(r"a (\w+ \w+) at the centre", listing))
        asked = re.search(r"When is the (\w+ \w+) on screen", question)
        crop = parse_turn(f"<think>{ex.answer}").tool_call  # the think opens in the given text
        times = (crop.arguments["start_time"], crop.arguments["end_time"])
        if ex.kind == "next":
            assert asked is not None and asked.group(1) not in shown and NOT_ASKED in ex.answer
            cropped = [(parse_turn(t.rsplit("assistant\n", 1)[-1]).tool_call.arguments) for t in turns[:-1]]
            last = (cropped[-1]["start_time"], cropped[-1]["end_time"])
            assert times in stretches and stretches.index(times) == stretches.index(last) + 1
        else:
            assert ex.answer.startswith(" I look closely at ")
            assert asked is None or asked.group(1) in shown
    # the template's own rendering of the same turns: the drill is the episode, frames left out
    processor = AutoProcessor.from_pretrained(tiny_dir)
    ex = next(ex for ex in searches if ex.kind == "next")
    transcript = Transcript(system_prompt="Be brief.")
    transcript.add_observation({"text": ex.question})
    for k, part in enumerate(ex.given.split(response)):
        if k:
            text, part = part.split("\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
            transcript.add_observation({"text": text})
        transcript.add_action(part)
    messages = [
        {"role": m["role"], "content": [b for b in m["content"] if b["type"] == "text"]}
        for m in transcript.to_hf_messages()
    ]
    rendered = processor.apply_chat_template(messages, tokenize=False)
    batcher = ExampleBatcher(processor, "Be brief.")
    enc, labels = batcher([ex])
    text = processor.tokenizer.decode(enc["input_ids"][0])
    assert text == rendered.removesuffix("<|im_end|>\n") + ex.answer
    plain = make_examples("search", 31, 16, (120.0, 240.0), style=style)
    assert [ex.answer for ex in plain] == [ex.answer for ex in searches]
    assert all("Question:" not in ex.given for ex in plain)


def test_restated_crop_turns_open_with_a_question_whose_search_closes_in_there():
    """``restate``: ``crop``, ``zoom`` and ``window`` turns laid out as an episode's begin with a question
    about the symbol they show (a grounding question names it), as the policy is shown a tool response;
    their answers are those drawn without it (an event no question is about is skipped)."""
    for skill in ("zoom", "window", "crop"):
        plain = make_examples(skill, 23, 16, (90.0, 240.0), True, irregular=0.5, episode=1.0)  # a few skipped
        restated = make_examples(skill, 23, 12, (90.0, 240.0), True, irregular=0.5, episode=1.0, restate=True)
        assert all("Question:" not in ex.question for ex in plain)
        assert all(ex.question.startswith("<tool_response>\nYou are watching") for ex in restated)
        for ex in restated:
            asked = re.search(r"When is the (\w+ \w+) on screen", ex.question)
            shown = set(re.findall(r"a (\w+ \w+) at the centre", ex.given + ex.answer))
            assert asked is None or not shown or shown == {asked.group(1)}
            assert re.search(
                r"\nAnswer with [^\n]+\ncrop_video \[", ex.question
            )  # the question, then the lines
        same = {(ex.answer, ex.question.split("crop_video")[-1]) for ex in plain}
        assert {(ex.answer, ex.question.split("crop_video")[-1]) for ex in restated} <= same


def test_search_comes_after_the_ordinal_drill_and_is_scored_per_kind(monkeypatch):
    trained = _batched_skills(monkeypatch)
    cfg = ReadingProbeConfig(
        model=MICRO, copy_steps=1, ordinal_steps=1, search_steps=2, reading_steps=1, steps=0, batch_size=2,
        heldout=8, eval_every=10, restate_question=True,
    )  # fmt: skip
    result = run_reading_probe(cfg)
    assert trained[:5] == ["copy", "ordinal", "search", "search", "symbol"]
    assert {"search", "search/next", "search/close", "search/words", "search/call"} <= set(result["heldout"])
    assert not {"search/items", "search/labels"} & set(result["heldout"])  # its listing is given
    rehearsed = Rehearsal(SimpleNamespace(tokenizer=None), ("search",), batch_size=2, restate=True).batch()
    assert [ex.skill for ex in rehearsed] == ["search", "search"]
    assert all("Question:" in ex.given for ex in rehearsed)
    with pytest.raises(ConfigError, match="search_steps"):
        PerceptionConfig(search_steps=-1)


def test_items_that_show_something_are_told_from_no():
    """``_shows``: per item of a listing, whether its frame shows a symbol or the bar, whatever text the
    listing sits in (the reasoning's opening, the close crop after it)."""
    from medscope_gym.agents.recipe.perception import _items, _shows

    crop = "<think>The crop frames: 30.0 no; 31.5 a red ring at the centre; 33.0 no. I look closely at 30.0"
    assert _items(crop) == ["30.0 no", "31.5 a red ring at the centre", "33.0 no"]
    assert _shows(crop) == [False, True, False]
    assert _shows("0.5 no; 8.5 bar; 16.5 bar; 24.5 no") == [False, True, True, False]


class _Teacher:
    """A stand-in model whose greedy prediction at every position is the next token of its input (the
    answer, teacher-forced), each token in ``swap`` predicted as its value instead."""

    def __init__(self, swap: dict[int, int] | None = None) -> None:
        self.swap = swap or {}

    def __call__(self, input_ids, **_):
        import torch

        nxt = torch.roll(input_ids, -1, dims=1)
        for token, instead in self.swap.items():
            nxt[nxt == token] = instead
        return SimpleNamespace(logits=torch.nn.functional.one_hot(nxt, int(input_ids.max()) + 1).float())

    def eval(self):
        return self

    train = eval


def test_labels_of_frames_that_show_something_are_scored_apart(tiny_dir):
    """``crop/shown``: the labels of the frames that show the symbol. A model that writes "no" where
    the symbol is ("a red ring ...") is right on most labels and on none of these."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import ExampleBatcher, _accuracy, _shows

    processor = AutoProcessor.from_pretrained(tiny_dir)
    batcher = ExampleBatcher(processor)
    examples = make_examples("crop", 7, 3, (90.0, 120.0), crops_as_frames=True)
    assert all(any(_shows(ex.answer)) for ex in examples)
    perfect = _accuracy(_Teacher(), batcher, "crop", examples)
    assert perfect["crop"] == perfect["crop/shown"] == perfect["crop/labels"] == 1.0
    a, no = (processor.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" a", " no"))
    blind = _accuracy(_Teacher({a: no}), batcher, "crop", examples)  # "no" begun where a symbol is
    assert blind["crop/shown"] == 0.0 and blind["crop"] == 0.0
    assert blind["crop/labels"] > 0.6 and blind["crop/times"] == 1.0


class _Writer:
    """A stand-in model whose ``generate`` writes the given texts after the prompt, one per call."""

    def __init__(self, tokenizer, texts: list[str]) -> None:
        self.tokenizer, self.texts = tokenizer, list(texts)

    def generate(self, input_ids, **_):
        import torch

        written = self.tokenizer(self.texts.pop(0), add_special_tokens=False)["input_ids"]
        return torch.cat([input_ids, torch.tensor([written])], dim=1)

    def eval(self):
        return self

    train = eval


def test_every_pick_names_the_interval_the_question_names_at_irregular_times_too():
    """At irregular preview times the stretch a question names may not be the one the listing ranks so;
    the reference then searches from the first, against the question's words. Such turns are no
    ``select`` or ``ordinal`` example: each pick names the interval the question names (the first
    where it names none)."""
    from medscope_gym.agents.scripted import ORDINALS, named_rank

    for skill in ("select", "ordinal"):
        examples = make_examples(skill, 7_000_000, 60, (90.0, 360.0), crops_as_frames=True, irregular=1.0)
        assert len(examples) == 60
        for ex in examples:
            picked = re.search(r"\b(first|second|third|fourth) highlighted interval", ex.answer).group(1)
            assert picked == ORDINALS[named_rank(ex.question) or 0], (ex.question, ex.answer)
        assert {ex.kind for ex in examples} == {"first", "later"}


def test_picks_are_scored_apart_by_the_interval_the_question_names(tiny_dir):
    """``select/later``: the picks of the second to fourth highlighted interval. A model that always
    picks the first (never reading the question's ordinal) passes ``select/first`` and fails these."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import ExampleBatcher, _accuracy
    from medscope_gym.agents.scripted import named_rank

    processor = AutoProcessor.from_pretrained(tiny_dir)
    examples = make_examples("select", 7, 12, (200.0, 300.0), crops_as_frames=True)
    assert {ex.kind for ex in examples} == {"first", "later"}
    for ex in examples:  # the kind is what the question names; the reference's pick says the same
        later = (named_rank(ex.question) or 0) > 0
        assert (ex.kind == "later") == later == (" first highlighted" not in ex.answer)
    tokens = processor.tokenizer
    first = tokens(" first", add_special_tokens=False)["input_ids"]
    assert len(first) == 1
    always_first = {
        tokens(f" {word}", add_special_tokens=False)["input_ids"][0]: first[0]
        for word in ("second", "third", "fourth")
    }
    batcher = ExampleBatcher(processor)
    assert _accuracy(_Teacher(), batcher, "select", examples)["select/later"] == 1.0
    prior = _accuracy(_Teacher(always_first), batcher, "select", examples)
    assert prior["select/first"] == 1.0 and prior["select/later"] == 0.0
    assert prior["select"] == sum(ex.kind == "first" for ex in examples) / len(examples)


def test_written_listings_are_scored_whole_and_by_the_symbol_they_name(tiny_dir):
    """``_generated``: a listing written untaught is right only as a whole; ``generated-named`` asks
    only whether it names the crop's symbol, wherever."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import ExampleBatcher, _generated

    processor = AutoProcessor.from_pretrained(tiny_dir)
    examples = make_examples("crop", 7, 3, (90.0, 120.0), crops_as_frames=True, episode=1.0)
    answers = [ex.answer for ex in examples]
    caption = re.search(r"a \w+ \w+ at the centre", answers[1]).group(0)
    shifted = answers[1].replace(f"{caption}; ", "no; ", 1).replace("no; ", f"{caption}; ", 2)
    blind = re.sub(r"a \w+ \w+ at the centre", "no", answers[2])
    writer = _Writer(processor.tokenizer, [answers[0] + " I look closely", shifted, blind])
    scores = _generated(writer, ExampleBatcher(processor), "crop@episode", examples)
    assert scores == {"crop@episode/generated": 1 / 3, "crop@episode/generated-named": 2 / 3}


def test_written_close_crops_and_answers_are_scored_by_part(tiny_dir):
    """A close crop written with its start wrong scores on ``-end`` only; an answer turn that reads the
    symbol right but gives the wrong letter scores on ``-read`` only, and each kind is scored apart."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import ExampleBatcher, _generated

    processor = AutoProcessor.from_pretrained(tiny_dir)
    batcher = ExampleBatcher(processor)
    zooms = make_examples("zoom", 7, 2, (90.0, 120.0))
    early = re.sub(r"at (\S+)-", "at 1.0-", zooms[1].answer)  # the start one frame off, say
    scores = _generated(_Writer(processor.tokenizer, [zooms[0].answer, early]), batcher, "zoom", zooms)
    assert scores == {"zoom/generated": 0.5, "zoom/generated-start": 0.5, "zoom/generated-end": 1.0}
    answers = make_examples("answer", 11, 6, (90.0, 150.0))
    choice = next(ex for ex in answers if ex.kind == "choice")
    interval = next(ex for ex in answers if ex.kind == "interval")
    letter = re.search(r"<answer>(\w)</answer>", choice.answer).group(1)
    wrong = choice.answer.replace(f"option {letter}", "option Z").replace(f">{letter}<", ">Z<")
    texts = [wrong, interval.answer]
    scores = _generated(_Writer(processor.tokenizer, texts), batcher, "answer", [choice, interval])
    assert scores == {
        "answer/generated": 0.5,
        "answer/generated-read": 1.0,
        "answer/generated-choice": 0.0,
        "answer/generated-interval": 1.0,
    }


def test_written_first_crops_are_scored_by_their_calls_times(tiny_dir):
    """``select``'s turn has no close crop: its ``-start`` and ``-end`` are the crop call's two times."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import ExampleBatcher, _generated

    processor = AutoProcessor.from_pretrained(tiny_dir)
    selects = make_examples("select", 7, 2, (200.0, 300.0), crops_as_frames=True)
    late = re.sub(r'"end_time": [^}]+\}', '"end_time": 1.0}', selects[1].answer)
    scores = _generated(
        _Writer(processor.tokenizer, [selects[0].answer, late]), ExampleBatcher(processor), "select", selects
    )
    assert scores == {"select/generated": 0.5, "select/generated-start": 1.0, "select/generated-end": 0.5}


def test_probe_writes_the_held_out_crop_listings_once_at_the_end():
    cfg = ReadingProbeConfig(
        model=MICRO, steps=1, batch_size=1, heldout=3, generated=2, eval_every=100,
        skills=("crop", "zoom"), crops_as_frames=True, episode_layout=0.5,
    )  # fmt: skip
    result = run_reading_probe(cfg)
    assert {"crop@episode/generated", "crop@episode/generated-named"} <= set(result["heldout"])
    assert "zoom/generated" in result["heldout"]  # the close crop written too; it lists no frames
    assert "zoom/generated-named" not in result["heldout"] and "answer/generated" not in result["heldout"]
    assert "crop@episode/generated" in result["curve"][-1]
    assert result["heldout"]["crop@episode/generated"] <= result["heldout"]["crop@episode/generated-named"]
    with pytest.raises(ConfigError, match="generated"):
        PerceptionConfig(generated=2, skills=("crop",))  # no crops as frames, no episode layout


def test_answer_shows_the_close_crop_and_answers_the_question_from_its_frames():
    """``answer``: the close crop's turn (the question, the crop's frames and lines); the answer names
    the symbol those frames show and answers with its option letter, or with the interval its frames
    show it in."""
    answers = make_examples("answer", 11, 24, (90.0, 150.0))
    assert len(answers) == 24 and all(ex.episode and ex.kind in ("choice", "interval") for ex in answers)
    letters = set()
    for ex in answers:
        assert len(ex.images) == len(ex.image_times) <= 16
        assert np.allclose(np.diff(ex.image_times), 0.5)  # every frame of the close crop at the tools' rate
        shown = [t for frame, t in zip(ex.images, ex.image_times) if _shows_symbol(frame)]
        assert shown and shown[0] > ex.image_times[0]  # from a listed frame before the symbol
        assert f"crop_video [{ex.image_times[0]:.1f} s," in ex.question and "tool calls left" in ex.question
        caption = re.search(r"The crop shows (a \w+ \w+) at the centre\.", ex.answer)
        assert caption is not None and ex.answer.endswith("</answer>")
        symbol = caption.group(1).removeprefix("a ")
        given = re.search(r"<answer>(.+)</answer>", ex.answer).group(1)
        if ex.kind == "choice":
            assert f"\n{given}. {symbol}\n" in ex.question
            assert f"That is option {given}, {symbol}." in ex.answer
            letters.add(given)
        else:
            assert f"When is the {symbol} on screen?" in ex.question
            start, end = json.loads(given)
            assert abs(start - shown[0]) <= 0.5 and abs(end - (shown[-1] + 0.5)) <= 0.5
    assert len(letters) >= 3  # the correct option is not always the first


def test_close_crops_from_the_first_frame_start_where_the_symbol_is_shown():
    """``SearchStyle(close_from="first")``: ``answer``'s close crop opens on the symbol, and ``zoom``'s
    answer (as its rehearsal draws it) starts at the first listed frame that names the symbol."""
    first = SearchStyle(close_from="first")
    for ex in make_examples("answer", 11, 8, (90.0, 150.0), style=first):
        shown = [t for frame, t in zip(ex.images, ex.image_times) if _shows_symbol(frame)]
        assert shown and shown[0] == ex.image_times[0]
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_processor

    processor = build_processor(TinyModelConfig(**{**MICRO, "vocab_size": 0}))
    rehearsal = Rehearsal(processor, ("zoom",), batch_size=4, crops_as_frames=True, style=first)
    for ex in rehearsal.batch():
        first_named = re.search(r"(\d+\.\d) a \w+ \w+ at the centre", ex.given).group(1)
        assert ex.answer.startswith(f" I look closely at {first_named}-")


def test_answer_in_a_style_that_lists_the_close_crop_and_answers_a_choice_by_its_text():
    """``SearchStyle(list_close=True, choice_text=True)``: ``answer`` lists every close-crop frame it
    shows, answers an interval with the listing's own times (the first frame that shows the symbol, and
    the first after it that does not, or the crop's end) and a choice with the symbol's name."""
    style = SearchStyle(close_from="first", choice_text=True, list_close=True)
    kinds = set()
    for ex in make_examples("answer", 11, 12, (90.0, 150.0), style=style):
        listing = re.search(r"<think>The crop frames: (.+?)\. The crop shows (a \w+ \w+) at", ex.answer)
        assert listing is not None, ex.answer
        items = [item.split(" ", 1) for item in listing.group(1).split("; ")]
        assert [float(t) for t, _ in items] == pytest.approx(ex.image_times)
        shown = [t for frame, t in zip(ex.images, ex.image_times) if _shows_symbol(frame)]
        assert [float(t) for t, label in items if label != "no"] == pytest.approx(shown)
        given = re.search(r"<answer>(.+)</answer>", ex.answer).group(1)
        if ex.kind == "interval":
            start, end = json.loads(given)
            assert start == pytest.approx(shown[0]) and end == pytest.approx(shown[-1] + 0.5)
        else:
            assert given == listing.group(2).removeprefix("a ") and "option" not in ex.answer
        kinds.add(ex.kind)
    assert kinds == {"choice", "interval"}


def test_stage_one_draws_every_close_crop_in_the_configured_style(monkeypatch):
    """``PerceptionConfig.search``: the mix, the listing phase and the held-out examples all get it."""
    from medscope_gym.agents.recipe import perception

    styles = []
    real = perception.make_examples

    def spy(skill, *args, **kwargs):
        if skill == "zoom":
            styles.append(kwargs.get("style", args[7] if len(args) > 7 else None))
        return real(skill, *args, **kwargs)

    monkeypatch.setattr(perception, "make_examples", spy)
    cfg = ReadingProbeConfig(
        model=MICRO, steps=1, listing_steps=1, batch_size=2, heldout=1, eval_every=100, skills=("zoom",),
        crops_as_frames=True, search={"close_from": "first"},
    )  # fmt: skip
    run_reading_probe(cfg)
    assert len(styles) == 3 and all(style == SearchStyle(close_from="first") for style in styles)


def test_answer_is_trained_in_the_listing_phase_when_among_the_skills(monkeypatch):
    batched = _batched_skills(monkeypatch)
    cfg = ReadingProbeConfig(
        model=MICRO, steps=0, listing_steps=4, batch_size=4, heldout=2, eval_every=100,
        skills=("answer",), crops_as_frames=True,
    )  # fmt: skip
    scores = run_reading_probe(cfg)["heldout"]
    assert "answer" in batched[:4]  # a training batch (held-out batches come after)
    assert {"answer", "answer/choice", "answer/interval"} <= set(scores)


def test_listing_shares_weight_the_listing_phase(monkeypatch):
    trained = _batched_skills(monkeypatch)
    cfg = ReadingProbeConfig(
        model=MICRO, listing_steps=8, steps=0, batch_size=1, heldout=1, eval_every=100,
        skills=("symbol",), crops_as_frames=True, listing_shares={"crop": 3},
    )  # fmt: skip
    run_reading_probe(cfg)
    assert sorted(trained[:8]) == ["crop"] * 6 + ["highlights"] * 2
    with pytest.raises(ConfigError, match="listing_shares"):
        PerceptionConfig(listing_shares={"crop": 0})
    with pytest.raises(ConfigError, match="listing_shares"):
        PerceptionConfig(listing_shares={"smell": 1})


def test_reading_goes_on_in_chunks_until_the_symbol_is_read_or_the_cap(capsys):
    """``reading_until``: below it after ``reading_steps``, reading goes on ``reading_chunk`` steps at a
    time up to ``reading_max_steps``; the phases after it move back by as many steps."""
    cfg = ReadingProbeConfig(
        model=MICRO,
        reading_steps=1,
        reading_until=1.0,
        reading_chunk=1,
        reading_max_steps=3,
        steps=1,
        batch_size=2,
        heldout=2,
        eval_every=100,
    )
    result = run_reading_probe(cfg)
    out = capsys.readouterr().out
    assert result["reading_steps"] == 3
    assert [row["step"] for row in result["curve"]] == [4]  # 3 reading steps, then 1 of the mix
    for done in (1, 2):
        assert re.search(
            rf"reading check after {done} steps: symbol [\d.]+; reading goes on for 1 steps", out
        )
    assert re.search(r"reading check after 3 steps: symbol [\d.]+; the reading phase ends", out)


def test_reading_first_reads_before_the_drills_and_checks_where_reading_ends(monkeypatch, capsys):
    """``reading_first``: the reading phase (and what ``reading_until`` adds to it) comes before the copy
    and window drills, and the check runs when reading ends, not after the drills."""
    trained = _batched_skills(monkeypatch)
    cfg = ReadingProbeConfig(
        model=MICRO, reading_first=True, reading_steps=1, reading_until=1.0, reading_chunk=1,
        reading_max_steps=2, copy_steps=2, window_steps=1, steps=0, batch_size=2, heldout=2,
        eval_every=100, crops_as_frames=True,
    )  # fmt: skip
    result = run_reading_probe(cfg)
    out = capsys.readouterr().out
    assert result["reading_steps"] == 2
    # a reading step, its check (a held-out batch), the added reading step, its check, then the drills
    assert trained[:7] == ["symbol"] * 4 + ["copy", "copy", "window"]
    assert "reading check after 1 steps" in out and "reading check after 2 steps" in out
    assert result["curve"][-1]["step"] == 5
    assert {"copy", "window", "symbol"} <= set(result["heldout"])


def test_the_copy_drill_goes_on_until_it_copies_and_the_reading_after_it_moves_back(monkeypatch, capsys):
    """``copy_until``: checked on held-out ``copy/items`` when the drill ends; below it the drill goes on
    with fresh lists, and the phases after it (here reading, with its own check) start later."""
    trained = _batched_skills(monkeypatch)
    cfg = ReadingProbeConfig(
        model=MICRO, copy_steps=1, copy_until=1.0, copy_chunk=2, copy_max_steps=3, reading_steps=1,
        reading_until=1.0, reading_max_steps=1, steps=0, batch_size=2, heldout=2, eval_every=100,
    )  # fmt: skip
    result = run_reading_probe(cfg)
    out = capsys.readouterr().out
    assert result["copy_steps"] == 3 and result["reading_steps"] == 1
    assert re.search(r"copy check after 1 steps: copy/items [\d.]+; copying goes on for 2 steps", out)
    assert re.search(r"copy check after 3 steps: copy/items [\d.]+; the copy drill ends", out)
    assert re.search(r"reading check after 1 steps: symbol [\d.]+; the reading phase ends", out)
    # a copy step, its check, two more, the check, then reading (held-out batches follow)
    assert trained[:6] == ["copy", "copy", "copy", "copy", "copy", "symbol"]
    assert result["curve"][-1]["step"] == 4


def test_rehearse_earlier_keeps_the_drills_before_each_phase_in_its_steps(monkeypatch):
    """``rehearse_earlier``: the first drill trains alone; each later drill and the listing phase give
    that many examples of every step to the drills before them, in turn; the mix gives none."""
    import medscope_gym.agents.recipe.perception as perception

    batches: list[list[str]] = []
    batcher_call = perception.ExampleBatcher.__call__

    def spy(self, batch):
        batches.append([ex.skill for ex in batch])
        return batcher_call(self, batch)

    monkeypatch.setattr(perception.ExampleBatcher, "__call__", spy)
    cfg = ReadingProbeConfig(
        model=MICRO, reading_first=True, reading_steps=1, copy_steps=2, listing_steps=2, steps=1,
        skills=("symbol",), rehearse_earlier=1, batch_size=2, heldout=1, eval_every=100,
    )  # fmt: skip
    run_reading_probe(cfg)
    assert batches[:3] == [["symbol", "symbol"], ["copy", "symbol"], ["copy", "symbol"]]
    assert [b[1] for b in batches[3:5]] == ["copy", "symbol"]  # listing steps 4, 5: the drills in turn
    assert batches[3][0] in ("highlights", "crop") and batches[4][0] in ("highlights", "crop")
    assert batches[5] == ["symbol", "symbol"]  # the mix: its own examples only
    with pytest.raises(ConfigError, match="rehearse_earlier"):
        PerceptionConfig(rehearse_earlier=8, batch_size=8)


def test_a_reading_check_that_adds_no_steps_leaves_training_as_it_was():
    base = {"model": MICRO, "reading_steps": 2, "steps": 1, "batch_size": 2, "heldout": 2, "eval_every": 100}
    plain = run_reading_probe(ReadingProbeConfig(**base))
    capped = run_reading_probe(ReadingProbeConfig(**base, reading_until=1.0, reading_max_steps=2))
    assert capped["reading_steps"] == plain["reading_steps"] == 2
    assert capped["curve"] == plain["curve"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reading_until": 0.9}, "reading_steps > 0"),
        ({"reading_until": 1.5, "reading_steps": 10}, "in \\(0, 1\\]"),
        ({"reading_until": 0.9, "reading_steps": 10, "reading_max_steps": 5}, "below reading_steps"),
        ({"reading_chunk": 0}, "reading_chunk"),
        ({"copy_until": 0.9}, "copy_steps > 0"),
        ({"copy_until": 0.0, "copy_steps": 10}, "in \\(0, 1\\]"),
        ({"copy_until": 0.9, "copy_steps": 10, "copy_max_steps": 5}, "below copy_steps"),
        ({"copy_chunk": 0}, "copy_chunk"),
    ],
)
def test_reading_until_is_checked_early(fields, message):
    with pytest.raises(ConfigError, match=message):
        PerceptionConfig(**fields)


def test_rehearsal_resumes_its_streams_where_they_stood():
    """``Rehearsal.state_dict``: a rehearsal restored from it hands out the examples the original would
    have next, also when its unused examples span two of the chunks it makes them in."""
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_processor

    processor = build_processor(TinyModelConfig(**{**MICRO, "vocab_size": 0}))
    original = Rehearsal(processor, ("copy", "symbol"), batch_size=3, seed=4)
    for _ in range(45):  # 23 copy batches (69 examples: past the first chunk of 64), 22 symbol ones
        original.batch()
    state = json.loads(json.dumps(original.state_dict()))
    restored = Rehearsal(processor, ("copy", "symbol"), batch_size=3, seed=4)
    restored.load_state_dict(state)
    for skill in ("copy", None, None, "symbol", None):
        a, b = original.batch(skill), restored.batch(skill)
        assert [(x.skill, x.question, x.answer) for x in a] == [(x.skill, x.question, x.answer) for x in b]
    assert original.state_dict() == restored.state_dict()


def test_a_killed_stage_one_resumes_where_it_was(tiny_dir, tmp_path, monkeypatch, capsys):
    """``save_every``: Stage I killed after a checkpoint and run again in the same folder ends with the
    weights, losses and held-out curve of a run never stopped, across an extended copy drill and listing
    phase and with earlier drills rehearsed; another setting in the same folder is refused by name."""
    from safetensors.torch import load_file

    from medscope_gym.agents.recipe.perception import run_perception
    from medscope_gym.agents.training import checkpoints
    from medscope_gym.agents.training.metrics import read_metrics

    torch = pytest.importorskip("torch")
    cfg = PerceptionConfig(
        copy_steps=1, copy_until=1.0, copy_chunk=1, copy_max_steps=2, reading_steps=1, listing_steps=2,
        listing_until={"select": 1.0}, listing_chunk=1, listing_max_steps=3, steps=2,
        skills=("symbol", "select"), rehearse_earlier=1, batch_size=2, heldout=2, eval_every=2, save_every=2,
        seed=3,
    )  # fmt: skip
    straight = run_perception(tiny_dir, tmp_path / "straight", cfg)

    class Killed(Exception):
        pass

    real_save = checkpoints.save_checkpoint

    def save_then_die(out, state, **kwargs):
        folder = real_save(out, state, **kwargs)
        if state.step == 6 or (state.step == 4 and "early" in str(out)):  # 6: after the listing phase
            raise Killed  # was extended (at step 5)
        return folder

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run_perception(tiny_dir, tmp_path / "split", cfg)
    monkeypatch.setattr(checkpoints, "save_checkpoint", real_save)
    capsys.readouterr()
    split = run_perception(tiny_dir, tmp_path / "split", cfg)
    assert "perception: resumed from" in capsys.readouterr().out
    assert split["copy_steps"] == straight["copy_steps"] == 2
    assert split["listing_steps"] == straight["listing_steps"] == 3
    assert split["curve"] == straight["curve"] and [r["step"] for r in split["curve"]] == [2, 4, 6, 8]

    def losses(run):
        return [(r["step"], r["train/loss"]) for r in read_metrics(tmp_path / run) if "train/loss" in r]

    assert losses("split") == losses("straight") and [s for s, _ in losses("split")] == list(range(1, 9))
    a, b = (load_file(str(tmp_path / run / "final" / "model.safetensors")) for run in ("straight", "split"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in (tmp_path / "split").glob("checkpoint-*")] == ["checkpoint-8"]
    with pytest.raises(ConfigError, match="checkpoint-8.*other settings \\(learning_rate\\)"):
        run_perception(
            tiny_dir, tmp_path / "split", PerceptionConfig(**{**cfg.to_dict(), "learning_rate": 1e-3})
        )
    # killed before the listing phase's check, the run may resume waiting for other scores or up to
    # another cap; the copy drill's check has run, so its settings stay
    with pytest.raises(Killed):
        monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)
        run_perception(tiny_dir, tmp_path / "early", PerceptionConfig(**{**cfg.to_dict(), "save_every": 4}))
    monkeypatch.setattr(checkpoints, "save_checkpoint", real_save)
    with pytest.raises(ConfigError, match=r"other settings \(copy_max_steps\)"):
        run_perception(
            tiny_dir, tmp_path / "early", PerceptionConfig(**{**cfg.to_dict(), "copy_max_steps": 3})
        )
    capped = run_perception(
        tiny_dir, tmp_path / "early", PerceptionConfig(**{**cfg.to_dict(), "listing_max_steps": 2})
    )
    assert capped["listing_steps"] == 2 and capped["curve"][:2] == straight["curve"][:2]
    assert [r["step"] for r in capped["curve"]] == [2, 4, 6, 7]
    # a checkpoint from before a setting existed resumes when the setting keeps its default
    state_file = tmp_path / "split" / "checkpoint-8" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["extra"]["config"]["even_first"]
    state_file.write_text(json.dumps(state))
    assert run_perception(tiny_dir, tmp_path / "split", cfg)["curve"] == straight["curve"]
    assert "resumed from" in capsys.readouterr().out


def test_the_listing_phase_goes_on_until_its_scores_are_reached(monkeypatch, capsys):
    """``listing_until``: checked on the named held-out scores when the listing phase ends; below any of
    them the phase goes on with fresh listing examples in its shares, up to ``listing_max_steps``, and
    the mix starts later."""
    trained = _batched_skills(monkeypatch)
    cfg = ReadingProbeConfig(
        model=MICRO, listing_steps=1, listing_until={"select": 1.0, "highlights/items": 1.0}, listing_chunk=2,
        listing_max_steps=3, steps=1, skills=("select",), batch_size=2, heldout=2, eval_every=100,
    )  # fmt: skip
    result = run_reading_probe(cfg)
    out = capsys.readouterr().out
    assert result["listing_steps"] == 3 and result["curve"][-1]["step"] == 4
    check = r"listing check after {} steps: select [\d.]+, highlights/items [\d.]+; {}"
    assert re.search(check.format(1, "the listings go on for 2 steps"), out)
    assert re.search(check.format(3, "the listing phase ends"), out)
    # the names checked on one example each, the phase's step, its check (held-out select, highlights),
    # two added steps, the check, the mix's step
    checks = ["select", "highlights"]
    assert trained[:2] == trained[3:5] == trained[7:9] == checks and trained[9] == "select"
    assert {trained[2], trained[5], trained[6]} <= {"highlights", "select"}


def test_listing_until_names_scores_of_the_listing_skills_and_is_checked_before_training(capsys):
    with pytest.raises(ConfigError, match="listing_until.*'symbol'"):
        PerceptionConfig(listing_steps=10, listing_until={"symbol": 0.9}, skills=("symbol", "select"))
    with pytest.raises(ConfigError, match="listing_until.*listing_steps 0"):
        PerceptionConfig(listing_until={"select": 0.5}, skills=("select",))
    with pytest.raises(ConfigError, match="listing_until"):
        PerceptionConfig(listing_steps=10, listing_until={"select": 1.5}, skills=("select",))
    misspelt = ReadingProbeConfig(
        model=MICRO, listing_steps=1, listing_until={"select/tims": 0.5}, steps=0, skills=("select",),
        batch_size=2, heldout=2,
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"no held-out score named \['select/tims'\]"):
        run_reading_probe(misspelt)
    assert "perception: step" not in capsys.readouterr().out  # refused before any training step
    # a score of one kind of pick is a name too, checked on one held-out example of each kind
    later = dataclasses.replace(misspelt, listing_until={"select/later": 1.0}, listing_max_steps=1, heldout=8)
    run_reading_probe(later)
    out = capsys.readouterr().out
    assert re.search(r"listing check after 1 steps: select/later [\d.]+; the listing phase ends", out)


@pytest.mark.parametrize(
    ("decay_steps", "expected"), [(None, [3.75e-4, 2.5e-4, 1.25e-4, 0.0]), (2, [5e-4, 5e-4, 2.5e-4, 0.0])]
)
def test_the_learning_rate_decays_over_all_steps_or_only_the_last(decay_steps, expected):
    """``decay_steps``: the peak learning rate until the last that many steps, then down to 0."""
    from medscope_gym.agents.recipe.perception import train_perception
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_model, build_processor

    tiny = TinyModelConfig(**{**MICRO, "vocab_size": 0})
    processor = build_processor(tiny)
    rates: list[float] = []
    log = SimpleNamespace(log=lambda step, row: rates.append(row["train/lr"]))
    cfg = PerceptionConfig(
        steps=4,
        skills=("copy",),
        batch_size=1,
        heldout=1,
        eval_every=100,
        warmup_steps=1,
        decay_steps=decay_steps,
    )
    train_perception(build_model(processor.tokenizer, tiny), processor, cfg, log)
    assert rates == pytest.approx(expected)


def test_the_listing_phase_restates_the_question_as_the_episodes_do(monkeypatch):
    """``restate_question``: the listing phase's crop turns laid out as an episode's open with the
    question, as the mix's, the held-out scores' and the episodes' do."""
    import medscope_gym.agents.recipe.perception as perception

    crops: list[str] = []
    batcher_call = perception.ExampleBatcher.__call__

    def spy(self, batch):
        crops.extend(ex.question for ex in batch if ex.skill == "crop" and ex.episode)
        return batcher_call(self, batch)

    monkeypatch.setattr(perception.ExampleBatcher, "__call__", spy)
    cfg = ReadingProbeConfig(
        model=MICRO, listing_steps=4, steps=0, batch_size=2, heldout=1, eval_every=100, skills=("symbol",),
        crops_as_frames=True, episode_layout=1.0, listing_shares={"crop": 3}, restate_question=True,
        events=(1, 1),
    )  # fmt: skip
    run_reading_probe(cfg)
    assert len(crops) > 4  # the listing phase's crop turns, then the held-out crop@episode's one
    assert all(turn.startswith("<tool_response>\n") and "Question: " in turn for turn in crops)
