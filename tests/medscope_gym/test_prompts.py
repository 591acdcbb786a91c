"""The episode's opening text and the question part a policy restates."""

from __future__ import annotations

import numpy as np

from medscope_gym.prompts import asked_text, question_text
from medscope_gym.suite import Sample
from medscope_gym.tools import preview_text


def test_asked_text_is_the_reset_text_without_its_preview_line():
    sample = Sample(
        id="s1",
        video="v.mp4",
        question="Which symbol appears?",
        answer="A",
        options=["red ring", "blue cross"],
        evidence=[(1.0, 2.0)],
        duration=30.0,
        fps=2.0,
        answer_type="choice",
        task="symbol_recognition",
    )
    asked = question_text(sample, 30.0)
    reset = f"{asked}\n{preview_text(30.0, np.array([0.5, 29.5]))}"
    assert asked_text(reset) == asked
    assert "Options:\nA. red ring\nB. blue cross" in asked_text(reset)
    assert asked_text("one line") == "one line"
