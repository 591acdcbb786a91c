"""The shared interval helpers that rewards, judges and metrics build on."""

from __future__ import annotations

import pytest

from medscope_gym.intervals import as_windows, best_iou, contains, is_moment, parse_interval, temporal_iou


@pytest.mark.parametrize(
    ("a", "b", "iou"),
    [
        ((0, 10), (0, 10), 1.0),
        ((0, 10), (5, 15), 5 / 15),
        ((0, 10), (0, 20), 0.5),
        ((0, 10), (10, 20), 0.0),  # touching
        ((0, 10), (20, 30), 0.0),
        ((2, 4), (0, 10), 0.2),  # contained
        ((5, 5), (5, 5), 1.0),  # identical moments
        ((5, 5), (0, 10), 0.0),  # moment vs window
        ((5, 5), (6, 6), 0.0),
    ],
)
def test_temporal_iou(a: tuple[float, float], b: tuple[float, float], iou: float) -> None:
    assert temporal_iou(a, b) == pytest.approx(iou)
    assert temporal_iou(b, a) == pytest.approx(iou)  # symmetric


def test_temporal_iou_rejects_reversed() -> None:
    with pytest.raises(ValueError, match="reversed"):
        temporal_iou((10, 0), (0, 10))


def test_best_iou_ignores_moments() -> None:
    assert best_iou((0, 10), [(0, 20), (0, 10), (5, 5)]) == 1.0
    assert best_iou((0, 10), [(0, 20), (100, 110)]) == 0.5
    assert best_iou((5, 5), [(5, 5)]) == 0.0
    assert best_iou((0, 10), []) == 0.0


def test_is_moment_and_contains() -> None:
    assert is_moment((3.0, 3.0)) and not is_moment((3.0, 3.5))
    assert contains((0, 10), 0) and contains((0, 10), 10) and contains((0, 10), 5.5)
    assert not contains((0, 10), -0.01) and not contains((0, 10), 10.01)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[12.5, 20]", (12.5, 20.0)),
        ("12.5-20", (12.5, 20.0)),
        ("(1, 2)", (1.0, 2.0)),
        ("12 s to 20 s", (12.0, 20.0)),
        ("  [ .5 , 1e1 ] ", (0.5, 10.0)),
        ("3 seconds – 4 seconds", (3.0, 4.0)),
        ("[5, 5]", (5.0, 5.0)),
    ],
)
def test_parse_interval(text: str, expected: tuple[float, float]) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize(
    "text", ["[20, 10]", "soon", "", "[1, 2, 3]", "[nan, 2]", "[1e999, 1e999]", "[1, 2]" + " " * 300, None, 5]
)
def test_parse_interval_rejects(text: object) -> None:
    assert parse_interval(text) is None  # type: ignore[arg-type]


def test_as_windows() -> None:
    assert as_windows([[1, 2], (3, 3)]) == ((1.0, 2.0), (3.0, 3.0))
    assert all(isinstance(x, float) for w in as_windows([[1, 2]]) for x in w)
