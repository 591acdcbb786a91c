"""Listings inside tool episodes, scored against the sample's captions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import medscope_gym.synthetic.testbed as testbed
from medscope_gym.agents.recipe.listings import listing_scores, true_listing
from medscope_gym.agents.rollout.trajectory import MediaInputs, Trajectory, TurnRecord
from medscope_gym.agents.scripted import SearchingOracle
from medscope_gym.chat import even_subsample
from medscope_gym.envs.clinvideo import ClinVideoEnv
from medscope_gym.suite import Suite


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The search reference's episodes on a small testbed suite, each turn with the times it was shown."""
    root = tmp_path_factory.mktemp("listings") / "suite"
    plan = testbed.TestbedConfig(
        3, 60, 70, 11, templates=testbed.MAIN_TEMPLATES, per_video=1, splits=(0, 0, 1)
    )
    testbed.build_testbed_suite(root, plan)
    suite = Suite.from_spec(str(root), split="test")
    env, oracle = ClinVideoEnv(suite), SearchingOracle(list_crops=16)
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


def test_the_references_listings_are_all_right(searched):
    episodes, samples = searched
    scores = listing_scores(episodes, samples)
    assert scores["preview"] == {"written": len(episodes), "exact": 1.0, "items": 1.0}
    assert scores["crop"]["written"] >= len(episodes) and scores["crop"]["exact"] == 1.0


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
