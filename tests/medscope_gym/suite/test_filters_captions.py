from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medscope_gym.suite.captions import captions_in_window, dense_captions, describe_window
from medscope_gym.suite.filters import FilterConfig, QuestionOnlyBaseline, apply_filters, preview_times
from medscope_gym.suite.templates import TEMPLATES, correct_text, generate_questions
from medscope_gym.synthetic import generate_procedure, procedure_timeline

VIDEO = "videos/v.mp4"


@pytest.fixture(scope="module")
def timeline():
    return procedure_timeline(generate_procedure(5, 900.0, fps=5.0), "v")


@pytest.fixture(scope="module")
def candidates(timeline):
    return generate_questions(timeline, VIDEO, seed=0)


def test_every_template_yields_questions_whose_answers_rederive(timeline, candidates):
    made = {s.extra["template"] for s in candidates}
    assert made >= set(TEMPLATES) - {"action_at"}  # no triplets in a Cholec80-style timeline
    for s in candidates:
        derived = TEMPLATES[s.extra["template"]].derive(timeline, s)
        if isinstance(derived, tuple):
            assert s.answer_interval == pytest.approx(derived)
        elif s.extra["template"] != "instrument_count" or derived is not None:
            assert str(derived) == correct_text(s)
        if s.answer_type == "choice":
            sizes = (3, 4) if s.extra["template"] == "event_order" else (4,)  # 3 or 4 events to order
            assert s.answer == "A" and len(set(s.options)) == len(s.options) and len(s.options) in sizes


def test_each_filter_removes_what_it_should_and_says_why(timeline, candidates):
    base = next(s for s in candidates if s.extra["template"] == "event_phase")
    wrong = dataclasses.replace(base, id="wrong", answer="B")
    dup_options = dataclasses.replace(base, id="dup", options=(base.options[0],) * 2 + base.options[2:])
    outside = dataclasses.replace(base, id="outside", evidence=((10.0, timeline.duration + 0.4),))
    too_long = dataclasses.replace(base, id="long", evidence=((0.0, 0.8 * timeline.duration),))
    again = dataclasses.replace(base, id="again", question=base.question.replace("?", " ?"))
    cfg = FilterConfig(preview=False, text_only=False)
    kept, report = apply_filters([base, wrong, dup_options, outside, too_long, again], {VIDEO: timeline}, cfg)
    assert [s.id for s in kept] == [base.id]
    assert report.candidates == 6 and report.kept == 1
    assert report.removed["inconsistent"] == {
        "event_phase: answer contradicts the annotations": 1,
        "duplicate options": 1,
        "evidence outside the video": 1,
    }
    assert report.removed["long_evidence"] == {"evidence covers more than 70% of the video": 1}
    assert sum(report.removed["near_duplicate"].values()) == 1
    assert "inconsistent: removed 3" in report.format()


def test_preview_filter_uses_the_envs_preview_grid(timeline, candidates):
    preview = preview_times(timeline)
    assert len(preview) == 512 and preview[0] < preview[1] and preview[-1] < timeline.duration
    kept, report = apply_filters(candidates, {VIDEO: timeline}, FilterConfig(text_only=False))
    for s in kept:
        if s.extra["template"] in ("event_grounding", "event_instrument", "event_phase"):
            ev = timeline.events[s.extra["query"]["event"]]
            assert not np.any((preview >= ev.start) & (preview < ev.end))  # no preview frame shows the event
    removed = sum(report.removed["preview"].values())
    assert 0 < removed < len(candidates)


def test_question_only_baseline_learns_a_text_prior():
    from medscope_gym.suite import Sample
    from tests.helpers import sample_row

    rows = []
    for k in range(80):  # "Clipper" is the answer 3 times in 4, wherever it stands: a text-only give-away
        options = ["Hook", "Grasper", "Scissors"]
        options.insert(k % 4, "Clipper")
        answer = "Clipper" if k % 4 else options[(k // 4) % 4 if (k // 4) % 4 != 0 else 1]
        rows.append(
            Sample.from_dict(
                sample_row(
                    id=f"s{k}",
                    options=options,
                    answer=answer,
                    question=f"Which tool is in view at {k} s?",
                    video=f"videos/v{k % 8}.mp4",
                )
            )
        )
    scores = QuestionOnlyBaseline.cross_validated(rows)
    assert np.mean(scores) >= 0.7
    kept, report = apply_filters(rows, {}, FilterConfig())
    assert 0 < len(kept) < len(rows) and "text_only" in report.removed
    assert np.mean(QuestionOnlyBaseline.cross_validated(kept)) <= 0.25 + 0.15


def test_dense_captions_cover_phases_visits_and_events(timeline):
    caps = dense_captions(timeline)
    assert [c.start for c in caps] == sorted(c.start for c in caps)
    texts = " ".join(c.text for c in caps)
    assert all(c.end <= timeline.duration for c in caps)
    assert texts.count("phase.") == len(timeline.phases)
    assert sum(" with the " in c.text for c in caps) == len(timeline.events)
    ev = timeline.events[0]
    window = captions_in_window(caps, ev.start, ev.end)
    assert any(c.start == ev.start and c.end == ev.end for c in window)
    text = describe_window(timeline, ev.start, ev.end)
    assert text.startswith(timeline.phase_at(ev.start)[:4]) or "phase" in text
    assert ev.kind.split("_")[0] in text or "events:" in text
