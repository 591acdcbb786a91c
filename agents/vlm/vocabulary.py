"""The tiny tokenizer's merges: byte-level BPE learned offline from the library's own protocol text.

A byte-level vocabulary without merges makes every character a token: a 2-layer model must then
spell ``"start_time"`` letter by letter in every turn, and one wrong byte derails the rest of the
turn. Real Qwen tokenizers spell the protocol's words in a few tokens each. Since nothing can be
downloaded, :func:`protocol_corpus` assembles text the library itself produces -- system prompts,
questions of synthetic procedures as the env shows them, and the scripted policies' turns -- and
:func:`train_vocabulary` learns BPE merges from it with the ``tokenizers`` trainer.

Digits are always single tokens (numbers stay compositional: a model that can write ``27.5`` can
write ``72.5``), and the 256 byte symbols stay in the vocabulary, so any text still encodes and
decodes exactly; merges only make the common protocol words shorter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medscope_gym.agents.scripted import NoToolsPolicy, OraclePolicy, RandomPolicy
from medscope_gym.prompts import question_text
from medscope_gym.protocol import SYSTEM_PROMPT
from medscope_gym.synthetic.procedure import generate_procedure
from medscope_gym.synthetic.questions import build_questions
from medscope_gym.synthetic.testbed import (
    MAIN_TEMPLATES,
    PERCEPTION_TEMPLATES,
    TestbedConfig,
    generate_testbed_video,
    testbed_questions,
)

__all__ = ["protocol_corpus", "train_vocabulary"]


def protocol_corpus(num_procedures: int = 8, seed: int = 0, system_prompts: Sequence[str] = ()) -> list[str]:
    """Protocol text produced by the library: prompts, questions and scripted turns (deterministic).

    ``system_prompts`` come first, before the env's own :data:`~medscope_gym.protocol.SYSTEM_PROMPT`
    (the tiny model passes its short prompt here).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    corpus = [*system_prompts, SYSTEM_PROMPT]
    testbed = TestbedConfig(templates=MAIN_TEMPLATES + PERCEPTION_TEMPLATES)
    for k in range(num_procedures):
        duration = float(rng.uniform(40.0, 600.0))
        procedure = generate_procedure(int(rng.integers(2**31 - 1)), duration)
        samples = build_questions(procedure, f"videos/v{k}.mp4", video_id=f"v{k}", seed=k)
        # the testbed family's questions too (symbol names, highlights), so its episodes tokenise short
        video = generate_testbed_video(int(rng.integers(2**31 - 1)), float(rng.uniform(90.0, 360.0)))
        samples += testbed_questions(video, f"tb{k}", testbed, seed=k)
        for sample in samples:
            duration = sample.duration
            obs = {"text": question_text(sample, duration)}
            info: dict[str, Any] = {"duration": duration}
            corpus.append(obs["text"])
            oracle = OraclePolicy()
            oracle.begin(0, obs, info, sample)
            log: list[dict[str, Any]] = []  # the tool log the env would show: crop, frame, answer
            for tool in ("crop_video", "get_frame", None):
                corpus.append(oracle.act([0], [obs], [{**info, "tool_log": list(log)}])[0])
                log.append({"name": tool, "ok": True})
            for policy in (NoToolsPolicy(seed=k), RandomPolicy(seed=k)):
                policy.begin(0, obs, info, sample)
                corpus += [policy.act([0], [obs], [info])[0] for _ in range(2)]
    return corpus


def train_vocabulary(corpus: Sequence[str], vocab_size: int, special_tokens: Sequence[str]):
    """A ``tokenizers.Tokenizer``: byte-level BPE with ``vocab_size`` entries learned from ``corpus``.

    Ids: ``special_tokens`` first (in order), then the 256 byte symbols, then the learned merges.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(corpus), trainer=trainer)
    return core
