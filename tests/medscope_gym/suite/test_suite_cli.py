from __future__ import annotations

import json

from medscope_gym.cli import main


def test_build_validate_stats_export_from_the_command_line(cholec80_dir, tmp_path, capsys):
    out = tmp_path / "suite"
    assert (
        main(
            [
                "suite",
                "build",
                str(cholec80_dir),
                str(out),
                "--quiet",
                "--no-filter",
                "preview,text_only",
                "--per-video",
                "3",
                "--splits",
                "0.34,0.33,0.33",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "filters:" in text and f"to {out}" in text

    assert main(["suite", "validate", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ok: ") and "task: " in text and "split: " in text

    plots = tmp_path / "plots"
    assert main(["suite", "stats", str(out), "--plots", str(plots), "--json", str(tmp_path / "s.json")]) == 0
    text = capsys.readouterr().out
    assert "by_task" in text and "evidence seconds" in text and "question_only" in text
    assert (plots / "evidence_length.png").read_bytes()[:4] == b"\x89PNG"
    assert (plots / "evidence_position.png").is_file()
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["stats"]["samples"] == sum(saved["stats"]["by_split"].values())

    assert main(["suite", "export", str(out), "--out", str(tmp_path / "exp")]) == 0
    text = capsys.readouterr().out
    assert "rl_train.jsonl" in text and "sft_train.jsonl" in text


def test_build_reports_an_unknown_filter_and_an_empty_source(tmp_path, capsys):
    assert main(["suite", "build", str(tmp_path), str(tmp_path / "o"), "--no-filter", "nonsense"]) == 2
    assert "unknown filter(s) nonsense" in capsys.readouterr().err
    assert main(["suite", "build", str(tmp_path), str(tmp_path / "o")]) == 2
    assert "no known annotations" in capsys.readouterr().err
