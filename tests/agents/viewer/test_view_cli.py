"""``medscope view``, ``medscope play --out`` and ``medscope eval --html``."""

from __future__ import annotations

from medscope_gym.agents.rollout.trajectory import load_trajectories
from medscope_gym.cli import main


def _table(printed: str) -> list[str]:
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("name "))
    return lines[start:]


def test_play_out_saves_what_the_viewer_reads_and_prints_the_same_numbers(tmp_path, capsys):
    argv = ["play", "--policy", "oracle,random", "--episodes", "3", "--quiet"]
    assert main(argv) == 0
    plain = _table(capsys.readouterr().out)
    assert main([*argv, "--out", str(tmp_path / "play")]) == 0
    printed = capsys.readouterr().out
    assert _table(printed)[:4] == plain[:4]  # saving changes no number
    header = plain[0].split()
    assert "well_formed" in header and "grounded" not in header  # the table of medscope eval
    for policy in ("oracle", "random"):
        trajectories = load_trajectories(tmp_path / "play" / policy / "trajectories")
        assert len(trajectories) == 3 and all(t.policy == policy for t in trajectories)
        first = trajectories[0].turns[0]
        assert "Question:" in first.observation_text and first.media.video is not None
        assert first.media.video.shape[1] == 64  # thumbnails, not full frames
        assert (tmp_path / "play" / policy / "metrics.json").exists()

    out = tmp_path / "cmp.html"
    assert (
        main(
            ["view", str(tmp_path / "play" / "oracle"), str(tmp_path / "play" / "random"), "--out", str(out)]
        )
        == 0
    )
    assert f"episode viewer: {out}" in capsys.readouterr().out
    assert out.read_text().count('<article class="card" ') == 6


def test_view_names_what_is_wrong(tmp_path, capsys):
    assert main(["view", str(tmp_path)]) == 2
    assert "no trajectories found" in capsys.readouterr().err
    assert main(["view", str(tmp_path), str(tmp_path), str(tmp_path)]) == 2
    assert "one or two run folders" in capsys.readouterr().err


def test_eval_html_writes_the_report_next_to_the_trajectories(tmp_path, capsys):
    out = tmp_path / "eval"
    assert (
        main(["eval", "--policy", "oracle", "--limit", "3", "--out", str(out), "--html", "--no-progress"])
        == 0
    )
    assert f"episode viewer: {out / 'report.html'}" in capsys.readouterr().out
    assert (out / "report.html").read_text().count('<article class="card" ') == 3
    assert main(["eval", "--policy", "oracle", "--html"]) == 2
    assert "html needs out" in capsys.readouterr().err
