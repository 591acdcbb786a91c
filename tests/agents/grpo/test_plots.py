import json

import pytest

pytest.importorskip("matplotlib")


def test_plot_training_writes_the_curves_in_one_piece(tmp_path):
    """The curves of a run's metrics.jsonl as one PNG (written atomically: nothing else beside it)."""
    from medscope_gym.agents.grpo.plots import plot_training

    rows = [{"step": s, "train/reward": 0.1 * s, "train/kl": 0.01, "eval/accuracy": 0.5} for s in range(1, 9)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    png = plot_training(tmp_path)
    assert png == tmp_path / "curves.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.jsonl"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    assert plot_training(tmp_path / "empty") is None  # no rows yet: no plot
