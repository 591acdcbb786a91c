"""Episode metrics: grounding recall/mIoU, inspected-evidence mIoU, cost means, tables."""

from __future__ import annotations

import itertools
import math

import pytest

from medscope_gym.metrics import EpisodeRecord, format_table, summarise, summarise_by_task

_ids = itertools.count()


def rec(
    task: str = "grounding",
    accuracy: float = 1.0,
    predicted: tuple[float, float] | None = None,
    inspected: tuple[float, float] | None = None,
    evidence: tuple[tuple[float, float], ...] = ((0.0, 20.0),),
    tool_calls: int = 1,
    frames_seen: int = 10,
    turns: int = 2,
    reward: float = 3.0,
    format_ok: bool = True,
) -> EpisodeRecord:
    return EpisodeRecord(
        sample_id=f"s{next(_ids)}",
        task=task,
        accuracy=accuracy,
        predicted_interval=predicted,
        inspected_interval=inspected,
        evidence=evidence,
        tool_calls=tool_calls,
        frames_seen=frames_seen,
        turns=turns,
        reward=reward,
        format_ok=format_ok,
    )


def test_grounding_recall_and_miou() -> None:
    # IoUs vs (0, 20): 1.0, 0.7, 0.5, 0.3, 0.25, 0.0
    records = [
        rec(predicted=(0.0, 20.0)),
        rec(predicted=(0.0, 14.0)),
        rec(predicted=(0.0, 10.0)),
        rec(predicted=(0.0, 6.0)),
        rec(predicted=(0.0, 5.0)),
        rec(predicted=(30.0, 40.0)),
    ]
    s = summarise(records)
    assert s["episodes"] == 6 and s["grounded"] == 6
    assert s["R@0.3"] == pytest.approx(4 / 6)
    assert s["R@0.5"] == pytest.approx(3 / 6)
    assert s["R@0.7"] == pytest.approx(2 / 6)
    assert s["mIoU"] == pytest.approx((1.0 + 0.7 + 0.5 + 0.3 + 0.25 + 0.0) / 6)


def test_recall_threshold_is_inclusive_despite_rounding() -> None:
    # IoU of (0.1, 0.2) vs (0.1, 0.3) is 0.49999999999999994: it counts at R@0.5
    s = summarise([rec(predicted=(0.1, 0.2), evidence=((0.1, 0.1 + 0.2),))])
    assert s["R@0.5"] == 1.0 and s["R@0.7"] == 0.0


def test_grounding_only_over_records_with_a_prediction() -> None:
    records = [rec(predicted=(0.0, 10.0)), rec(predicted=None, accuracy=0.0), rec(predicted=None)]
    s = summarise(records)
    assert s["grounded"] == 1
    assert s["mIoU"] == pytest.approx(0.5) and s["R@0.5"] == 1.0
    assert s["accuracy"] == pytest.approx(2 / 3)


def test_grounding_metrics_are_none_without_predictions() -> None:
    s = summarise([rec(), rec()])
    for key in ("R@0.3", "R@0.5", "R@0.7", "mIoU"):
        assert s[key] is None
    assert s["grounded"] == 0


def test_grounding_against_several_windows_uses_best() -> None:
    s = summarise([rec(predicted=(100.0, 105.0), evidence=((0.0, 20.0), (100.0, 110.0)))])
    assert s["mIoU"] == pytest.approx(0.5)


def test_evidence_miou_over_all_episodes() -> None:
    records = [
        rec(inspected=(0.0, 20.0)),  # 1.0
        rec(inspected=(0.0, 10.0)),  # 0.5
        rec(inspected=None),  # nothing inspected: 0
        rec(inspected=(50.0, 60.0), evidence=((55.0, 55.0),)),  # moment inside: 1
        rec(inspected=(50.0, 54.0), evidence=((55.0, 55.0),)),  # moment outside: 0
        rec(inspected=(0.0, 10.0), evidence=()),  # no evidence: 0
    ]
    assert summarise(records)["evidence_mIoU"] == pytest.approx(2.5 / 6)


def test_cost_means_reward_and_format_rate() -> None:
    records = [
        rec(tool_calls=0, frames_seen=0, turns=1, reward=1.0, format_ok=False, accuracy=0.0),
        rec(tool_calls=3, frames_seen=130, turns=4, reward=4.5, format_ok=True, accuracy=0.5),
    ]
    s = summarise(records)
    assert s["tool_calls"] == 1.5
    assert s["frames_seen"] == 65.0
    assert s["turns"] == 2.5
    assert s["reward"] == 2.75
    assert s["format_rate"] == 0.5
    assert s["accuracy"] == 0.25


def test_summary_keys_and_no_nan() -> None:
    s = summarise([rec(predicted=(0.0, 5.0), inspected=(0.0, 5.0))])
    assert list(s) == [
        "episodes",
        "accuracy",
        "grounded",
        "R@0.3",
        "R@0.5",
        "R@0.7",
        "mIoU",
        "evidence_mIoU",
        "evidence_R@0.3",
        "evidence_R@0.5",
        "evidence_R@0.7",
        "tool_calls",
        "frames_seen",
        "turns",
        "reward",
        "format_rate",
    ]
    assert all(v is None or not math.isnan(v) for v in s.values())
    assert all(v is None or isinstance(v, (int, float)) for v in s.values())


def test_empty_summary() -> None:
    s = summarise([])
    assert s["episodes"] == 0 and s["grounded"] == 0
    assert all(v is None for k, v in s.items() if k not in ("episodes", "grounded"))


def test_summarise_by_task() -> None:
    records = [
        rec(task="vqa", accuracy=1.0),
        rec(task="grounding", predicted=(0.0, 10.0), accuracy=0.5),
        rec(task="vqa", accuracy=0.0),
    ]
    by_task = summarise_by_task(records)
    assert list(by_task) == ["overall", "grounding", "vqa"]
    assert by_task["overall"]["episodes"] == 3
    assert by_task["overall"]["accuracy"] == pytest.approx(0.5)
    assert by_task["vqa"]["episodes"] == 2 and by_task["vqa"]["accuracy"] == 0.5
    assert by_task["vqa"]["mIoU"] is None
    assert by_task["grounding"]["mIoU"] == pytest.approx(0.5)


def test_summarise_by_task_reserves_overall() -> None:
    with pytest.raises(ValueError, match="overall"):
        summarise_by_task([rec(task="overall")])


def test_format_table_layout() -> None:
    table = format_table(
        {
            "paper": {"episodes": 10, "accuracy": 0.5, "mIoU": None},
            "no_evidence_long_name": {"accuracy": 0.25},
        }
    )
    lines = table.splitlines()
    assert lines[0].split() == ["name", "episodes", "accuracy", "mIoU"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["paper", "10", "0.500", "-"]
    assert lines[3].split() == ["no_evidence_long_name", "-", "0.250", "-"]
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule are the same width
    # numbers are right-aligned in fixed-width columns
    assert lines[2].index("0.500") == lines[3].index("0.250")


def test_format_table_selected_columns() -> None:
    table = format_table({"a": {"x": 1.23456, "y": 2.0}}, columns=["y"])
    assert table.splitlines()[0].split() == ["name", "y"]
    assert table.splitlines()[2].split() == ["a", "2.000"]
    assert "1.235" not in table


def test_format_table_of_real_summaries() -> None:
    table = format_table(summarise_by_task([rec(task="vqa"), rec(task="grounding", predicted=(0.0, 20.0))]))
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:]}
    assert set(rows) == {"overall", "grounding", "vqa"}
    header = table.splitlines()[0].split()
    assert rows["vqa"][header.index("mIoU")] == "-"
    assert rows["grounding"][header.index("mIoU")] == "1.000"
