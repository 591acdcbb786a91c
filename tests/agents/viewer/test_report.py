"""The episode viewer's page, read with the stdlib HTML parser: one card per episode, the filter
attributes, every frame embedded once, nothing fetched from the network."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from medscope_gym.agents.rollout.trajectory import load_trajectories
from medscope_gym.agents.viewer import ViewConfig, build_report, find_trajectories, load_run, write_report
from medscope_gym.errors import ConfigError


class Page(HTMLParser):
    """The cards, question rows, links and scripts of a report."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cards: list[dict[str, str]] = []
        self.rows: list[dict[str, str]] = []
        self.links: list[str] = []
        self.frame_refs: set[int] = set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "article" and "data-task" in attrs:
            self.cards.append(attrs)
        if tag == "section" and "q" in attrs.get("class", "").split():
            self.rows.append(attrs)
        for key in ("src", "href", "action", "poster"):
            if key in attrs:
                self.links.append(attrs[key])
        self.frame_refs |= {int(m) for m in re.findall(r"\bf(\d+)\b", attrs.get("class", ""))}


def test_one_card_per_episode_with_the_filter_attributes(eval_runs):
    oracle, _ = eval_runs
    path = write_report([oracle])
    text = path.read_text()
    page = Page(text)
    trajectories = load_trajectories(oracle / "trajectories", frames=False)
    assert path == oracle / "report.html" and len(page.cards) == len(trajectories) == 8
    assert [c["data-sample"] for c in page.cards] == [t.sample_id for t in trajectories]
    assert {c["data-task"] for c in page.cards} == {t.task for t in trajectories}
    assert all(c["data-correct"] == "1" and c["data-overlap"] == "1" for c in page.cards)  # the oracle
    # the question, the summary table with the metrics of medscope eval, the tool calls, the verdicts
    assert text.count('class="qtext"') == 8
    assert all(t.sample_id in text for t in trajectories)
    assert "<th>well_formed</th>" in text and "<th>evidence_mIoU</th>" in text and "crop_video" in text
    assert 'format <b class="ok">ok</b>' in text and "(question not recorded)" not in text


def test_self_contained_frames_embedded_once(eval_runs):
    oracle, _ = eval_runs
    text = build_report([load_run(oracle)])
    page = Page(text)
    assert not [link for link in page.links if re.match(r"\s*(https?:)?//", link)]
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text) and "<link" not in text
    assert "<script src" not in text and "@import" not in text
    rules = re.findall(r"\.f(\d+)\{background-image:url\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)", text)
    ids = [int(i) for i, _ in rules]
    assert ids == list(range(len(ids))) and len({data for _, data in rules}) == len(rules)  # each once
    assert page.frame_refs and page.frame_refs <= set(ids)
    # the same frame (e.g. the preview of one video) shown in several cards is stored once
    assert sum(text.count(f'fr f{i}"') for i in ids) > len(ids)


def test_two_runs_side_by_side(eval_runs, tmp_path):
    oracle, random = eval_runs
    out = write_report([oracle, random], ViewConfig(out=str(tmp_path / "cmp.html"), labels=("SFT", "GRPO")))
    page = Page(out.read_text())
    assert len(page.rows) == 8 and len(page.cards) == 16
    assert [c["data-run"] for c in page.cards] == ["0", "1"] * 8
    assert [c["data-sample"] for c in page.cards[::2]] == [c["data-sample"] for c in page.cards[1::2]]
    changed = [r["data-changed"] for r in page.rows]
    expected = [
        str(int(a["data-correct"] != b["data-correct"])) for a, b in zip(page.cards[::2], page.cards[1::2])
    ]
    assert changed == expected and "1" in changed  # random misses some questions the oracle gets
    assert 'id="f-changed"' in out.read_text() and "SFT vs GRPO" in out.read_text()


def test_run_folders_are_found_and_bad_ones_named(eval_runs, tmp_path):
    oracle, _ = eval_runs
    assert find_trajectories(oracle) == find_trajectories(oracle / "trajectories") == oracle / "trajectories"
    run = tmp_path / "grpo"
    for step in (0, 10, 2):  # a GA-GRPO run: its latest held-out evaluation
        (run / "eval" / f"step-{step}").mkdir(parents=True)
        (run / "eval" / f"step-{step}" / "trajectories").symlink_to(oracle / "trajectories")
    assert find_trajectories(run) == run / "eval" / "step-10" / "trajectories"
    assert load_run(run).label == "grpo step-10"
    with pytest.raises(ConfigError, match="no trajectories found"):
        find_trajectories(tmp_path / "empty")
    with pytest.raises(ConfigError, match="one label per run"):
        write_report([oracle], ViewConfig(labels=("a", "b")))


def test_episodes_without_recorded_observations_take_the_question_from_the_suite(eval_runs, tmp_path):
    """Trajectories of an older scripted evaluation kept only the actions: the suite supplies the text."""
    import json
    import shutil

    oracle, _ = eval_runs
    copy = tmp_path / "old"
    shutil.copytree(oracle, copy)
    jsonl = copy / "trajectories" / "trajectories.jsonl"
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    for row in rows:
        for turn in row["turns"]:
            turn["observation_text"], turn["video_times"], turn["image_times"] = "", None, None
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.rmtree(copy / "trajectories" / "frames")
    text = write_report([copy])
    html = text.read_text()
    assert "(question not recorded)" not in html and "pixels not recorded" in html
    assert len(Page(html).cards) == 8
