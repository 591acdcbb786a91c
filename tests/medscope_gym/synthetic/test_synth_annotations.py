from __future__ import annotations

import json

import numpy as np
import pytest

from medscope_gym.errors import SuiteError
from medscope_gym.synthetic import (
    CHOLEC80_TOOLS,
    generate_procedure,
    read_events_file,
    read_phase_file,
    read_tool_file,
    write_annotations,
)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    proc = generate_procedure(11, 95.5)
    root = tmp_path_factory.mktemp("ann")
    return proc, write_annotations(proc, root, "video07")


def test_round_trip(written):
    proc, paths = written
    assert sorted(p.name for p in paths.values()) == [
        "video07-events.json",
        "video07-phase.txt",
        "video07-tool.txt",
    ]
    phases = read_phase_file(paths["phase"])
    assert len(phases) == proc.num_frames
    lines = paths["phase"].read_text().splitlines()
    assert lines[0] == "Frame\tPhase" and len(lines) == proc.num_frames + 1
    tools = read_tool_file(paths["tool"])
    assert paths["tool"].read_text().splitlines()[0] == "Frame\t" + "\t".join(CHOLEC80_TOOLS)
    assert tools.frames.tolist() == [25 * k for k in range(proc.num_seconds)]
    for k in range(proc.num_seconds):
        t = k + 0.5
        assert phases[proc.frame_at(t)] == proc.phase_at(t)
        assert tuple(n for n, v in zip(CHOLEC80_TOOLS, tools.presence[k]) if v) == proc.instruments_at(t)
    events = read_events_file(paths["events"])
    assert [(e.start, e.end, e.kind, e.instrument, e.phase) for e in events] == [
        (e.start, e.end, e.kind, e.instrument, e.phase) for e in proc.events
    ]


def test_tool_columns_are_mapped_by_name(written, tmp_path):
    proc, paths = written
    rows = [line.split("\t") for line in paths["tool"].read_text().splitlines()]
    order = [0, *reversed(range(1, 8))]
    shuffled = tmp_path / "video07-tool.txt"
    shuffled.write_text("\n".join("\t".join(r[i] for i in order) for r in rows) + "\n")
    assert np.array_equal(read_tool_file(shuffled).presence, proc.presence_array())


def test_unknown_labels_name_file_line_and_column(written, tmp_path):
    _, paths = written
    lines = paths["phase"].read_text().splitlines()
    lines[5] = "4\tAppendectomy"
    bad = tmp_path / "bad-phase.txt"
    bad.write_text("\n".join(lines) + "\n")
    message = r"bad-phase\.txt: line 6, column 'Phase': unknown phase 'Appendectomy'"
    with pytest.raises(SuiteError, match=message):
        read_phase_file(bad)
    tool_lines = paths["tool"].read_text().splitlines()
    bad_tool = tmp_path / "bad-tool.txt"
    bad_tool.write_text(tool_lines[0].replace("Hook", "Stapler") + "\n" + "\n".join(tool_lines[1:]) + "\n")
    with pytest.raises(SuiteError, match=r"bad-tool\.txt: line 1, column 'Hook'|missing column"):
        read_tool_file(bad_tool)
    tool_lines[3] = tool_lines[3][:-1] + "2"
    bad_tool.write_text("\n".join(tool_lines) + "\n")
    with pytest.raises(SuiteError, match=r"line 4, column 'SpecimenBag': expected 0 or 1"):
        read_tool_file(bad_tool)
    events = json.loads(paths["events"].read_text())
    events[0]["kind"] = "explosion"
    bad_events = tmp_path / "bad-events.json"
    bad_events.write_text(json.dumps(events))
    with pytest.raises(SuiteError, match=r"event 0, field 'kind'"):
        read_events_file(bad_events)
