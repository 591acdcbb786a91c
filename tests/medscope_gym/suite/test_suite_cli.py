from __future__ import annotations

import json
import shutil

import pytest

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


# ---------------------------------------------------------------- validate checks what reset checks
@pytest.fixture
def small_suite(tmp_path):
    from medscope_gym.suite import Suite

    dst = tmp_path / "suite"
    shutil.copytree(Suite.from_spec("builtin:synthsurg-small").root, dst)
    return dst


def _faststart_truncated(path, keep=0.5):
    """Cut a video after moving its index to the front: headers still read, frames decode short."""
    import av

    tmp = path.with_name("faststart_" + path.name)
    with (
        av.open(str(path)) as src,
        av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as dst,
    ):
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = tmp.read_bytes()
    tmp.unlink()
    path.write_bytes(data[: int(len(data) * keep)])


def test_validate_passes_a_good_suite(small_suite, capsys):
    assert main(["suite", "validate", str(small_suite)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_validate_decodes_and_fails_a_truncated_video(small_suite, capsys):
    from medscope_gym.envs import ClinVideoEnv
    from medscope_gym.errors import VideoError

    victim = sorted((small_suite / "videos").glob("*.mp4"))[0]
    _faststart_truncated(victim)
    assert main(["suite", "validate", str(small_suite)]) == 1
    captured = capsys.readouterr()
    assert "ok:" not in captured.out
    assert (
        victim.name in captured.err
        and "decodes to" in captured.err
        and "FAILED: 1 of 6 videos" in captured.err
    )
    # the same verdict reset gives
    env = ClinVideoEnv(small_suite, frame_store=None)
    with pytest.raises(VideoError, match="decodes to"):
        env.reset(options={"sample_id": next(s.id for s in env.suite if victim.name in s.video)})


def test_validate_fails_a_duration_that_disagrees_with_the_video(small_suite, capsys):
    path = small_suite / "suite.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[3]["duration"] += 5.0
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["suite", "validate", str(small_suite)]) == 1
    err = capsys.readouterr().err
    assert f"sample {rows[3]['id']!r}: the suite gives duration" in err and "FAILED: 1 of 6" in err


def test_validate_with_frame_stores_builds_and_checks_them(small_suite, tmp_path, capsys):
    stores = tmp_path / "stores"
    assert main(["suite", "validate", str(small_suite), "--frame-store", str(stores)]) == 0
    assert capsys.readouterr().out.startswith("ok: ") and any(stores.iterdir())


def test_validate_reports_a_non_utf8_suite_without_a_traceback(small_suite, capsys):
    path = small_suite / "suite.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b'"question": "', b'"question": "\xff', 1)
    path.write_bytes(b"\n".join(lines))
    assert main(["suite", "validate", str(small_suite)]) == 2
    err = capsys.readouterr().err
    assert "line 5: not UTF-8 text (byte 0xff" in err and "Traceback" not in err
