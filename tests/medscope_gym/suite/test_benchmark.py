"""The filters at work on a reduced benchmark suite: blind baselines near chance, the oracle near perfect."""

from __future__ import annotations

import numpy as np
import pytest

from medscope_gym.agents.baselines import policy_scores
from medscope_gym.registration import ENV_IDS
from medscope_gym.suite import Suite
from medscope_gym.suite.filters import QuestionOnlyBaseline
from medscope_gym.suite.stats import chance_score, suite_stats
from medscope_gym.synthetic import BUILTIN_SUITES, build_synthetic_suite

# The benchmark's pipeline on four 30-50 min procedures at 1 fps (tools sample 1 fps anyway).
REDUCED = {
    **BUILTIN_SUITES["synthsurg-bench"],
    "n_videos": 4,
    "min_duration_s": 1800.0,
    "max_duration_s": 3000.0,
    "fps": 1.0,
    "width": 64,
    "height": 48,
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return Suite.load(build_synthetic_suite(tmp_path_factory.mktemp("bench") / "suite", **REDUCED))


def test_filters_removed_text_and_preview_answerable_questions(bench):
    stats = suite_stats(bench)
    removed = stats["filters"]["removed"]
    assert sum(removed["preview"].values()) > 0 and sum(removed["text_only"].values()) > 0
    assert stats["filters"]["kept"] == len(bench) >= 80
    assert stats["evidence_share_max"] <= 0.7
    assert len(stats["by_task"]) >= 5 and set(stats["by_answer_type"]) == {"choice", "interval", "text"}


def test_question_only_baseline_is_near_chance_on_the_kept_questions(bench):
    samples = list(bench)
    scores = np.array(QuestionOnlyBaseline.cross_validated(samples))
    choice = np.array([s.answer_type == "choice" for s in samples])
    chance = np.mean([chance_score(s) for s in samples if s.answer_type == "choice"])
    assert scores[choice].mean() <= chance + 0.12
    interval = np.array([s.answer_type == "interval" for s in samples])
    assert scores[interval].mean() < 0.1


def test_no_tools_near_chance_and_oracle_near_perfect_through_the_env(bench):
    table = policy_scores(bench, ["oracle", "no_tools"], seed=0)
    oracle, blind = table["oracle"]["all"], table["no_tools"]["all"]
    assert oracle["score"] >= 0.97
    assert blind["score"] <= blind["chance"] + 0.12


def test_bench_env_id_is_registered():
    spec = ENV_IDS["MedScope/SynthSurg-Bench-v0"]
    assert spec["kwargs"] == {"suite": "builtin:synthsurg-bench"} and set(spec) == {"entry_point", "kwargs"}
    params = BUILTIN_SUITES["synthsurg-bench"]
    assert params["n_videos"] >= 24 and params["min_duration_s"] >= 600 and params["max_duration_s"] >= 3600
