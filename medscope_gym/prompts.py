"""The user turn that opens an episode: the task, the question, its options and the answer form.

Shared by the env (its reset observation) and by the suite exporters (the prompt of RL rows and
SFT records), so a model trained on exported data sees exactly what the env will show it.
"""

from __future__ import annotations

from medscope_gym.suite.schema import Sample, option_letter

__all__ = ["asked_text", "question_text"]


def question_text(sample: Sample, duration: float) -> str:
    """The user turn shown at reset: the task, the question, its options and the answer form."""
    lines = [
        f"You are watching a clinical video of {duration:.1f} seconds. A coarse preview of the whole video "
        "is attached; use crop_video and get_frame to look closer before you answer.",
        f"Question: {sample.question}",
    ]
    if sample.options:
        lines.append("Options:")
        lines += [f"{option_letter(i)}. {opt}" for i, opt in enumerate(sample.options)]
        lines.append("Answer with the letter of the correct option.")
    elif sample.answer_type == "interval":
        lines.append("Answer with the time interval in seconds, as [start, end].")
    else:
        lines.append("Answer briefly in words.")
    return "\n".join(lines)


def asked_text(reset_text: str) -> str:
    """The question part of the env's reset observation text (:func:`question_text`), without the
    preview's line it ends with (:func:`medscope_gym.tools.preview_text`): what a policy restates in
    front of each later tool response (``FrameConfig.restate_question``)."""
    return reset_text.rsplit("\n", 1)[0] if "\n" in reset_text else reset_text
