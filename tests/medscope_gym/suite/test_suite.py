import json

import pytest

from medscope_gym.errors import SuiteError
from medscope_gym.suite import Sample, Suite, write_suite
from tests.helpers import sample_row, write_suite_rows


@pytest.fixture
def suite_dir(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v.mp4").write_bytes(b"placeholder: load() checks existence only")
    return tmp_path


def test_round_trip(suite_dir):
    samples = [Sample.from_dict(sample_row(id=f"s{i}", split=s)) for i, s in enumerate(["train", "test"])]
    write_suite(suite_dir, samples)
    suite = Suite.load(suite_dir)
    assert [s.id for s in suite] == ["s0", "s1"]
    assert suite[0] == samples[0]
    assert len(Suite.load(suite_dir, split="train")) == 1
    assert suite.video_path(suite[0]) == (suite_dir / "videos" / "v.mp4").resolve()


def test_answer_given_as_option_text_is_stored_as_letter():
    assert Sample.from_dict(sample_row(answer="clipper")).answer == "C"


def test_interval_sample():
    s = Sample.from_dict(sample_row(answer_type="interval", options=None, answer="[2, 4.5]"))
    assert s.answer_interval == (2.0, 4.5) and s.answer_index is None


@pytest.mark.parametrize(
    ("override", "field", "problem"),
    [
        ({"duration": -1}, "duration", "> 0"),
        ({"question": ""}, "question", "non-empty"),
        ({"answer_type": "essay"}, "answer_type", "one of"),
        ({"options": ["a", "A "]}, "options", "duplicate"),
        ({"options": ["only"]}, "options", "2 to 26"),
        ({"answer": "F"}, "answer", "option letter"),
        ({"evidence": [[5, 3]]}, "evidence", "start <= end"),
        ({"evidence": [[5, 30]]}, "evidence", "duration"),
        ({"evidence": [[1, float("nan")]]}, "evidence", "finite"),
        ({"evidence": []}, "evidence", "non-empty"),
        ({"split": "dev"}, "split", "one of"),
        ({"answer_type": "interval", "options": None, "answer": "soon"}, "answer", "[start, end]"),
        ({"answer_type": "text", "answer": "x"}, "options", "only choice"),
        ({"captions": [{"start": 1, "end": 99, "text": "x"}]}, "captions", "outside"),
        ({"trajectory": [{"text": "x"}]}, "trajectory", "action"),
    ],
)
def test_broken_sample_names_field(override, field, problem):
    with pytest.raises(SuiteError) as err:
        Sample.from_dict(sample_row(**override), where="suite.jsonl line 3")
    message = str(err.value)
    assert "suite.jsonl line 3" in message and f"field {field!r}" in message and problem in message


def test_missing_field_is_named():
    row = sample_row()
    del row["task"]
    with pytest.raises(SuiteError, match="field 'task': missing"):
        Sample.from_dict(row)


def test_broken_json_line_is_named(suite_dir):
    (suite_dir / "suite.jsonl").write_text(json.dumps(sample_row()) + "\n{not json\n")
    with pytest.raises(SuiteError, match=r"suite.jsonl line 2: invalid JSON"):
        Suite.load(suite_dir)


def test_duplicate_ids(suite_dir):
    write_suite_rows(suite_dir, [sample_row(), sample_row()])
    with pytest.raises(SuiteError, match="repeats line 1"):
        Suite.load(suite_dir)


@pytest.mark.parametrize("video", ["videos/missing.mp4", "../outside.mp4", "/etc/passwd"])
def test_bad_video_paths(suite_dir, video):
    write_suite_rows(suite_dir, [sample_row(video=video)])
    with pytest.raises(SuiteError, match="field 'video'"):
        Suite.load(suite_dir)


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(SuiteError, match="does not exist"):
        Suite.load(tmp_path / "nope")
    with pytest.raises(SuiteError, match="no suite.jsonl"):
        Suite.load(tmp_path)


def test_empty_split(suite_dir):
    write_suite_rows(suite_dir, [sample_row(split="train")])
    with pytest.raises(SuiteError, match="no samples in split 'val'"):
        Suite.load(suite_dir, split="val")


def test_write_is_atomic(suite_dir, monkeypatch):
    write_suite(suite_dir, [Sample.from_dict(sample_row())])
    before = (suite_dir / "suite.jsonl").read_text()

    class Boom(Exception):
        pass

    def explode(*a, **k):
        raise Boom

    monkeypatch.setattr("medscope_gym.atomic.os.replace", explode)
    with pytest.raises(Boom):
        write_suite(suite_dir, [Sample.from_dict(sample_row(id="other"))])
    assert (suite_dir / "suite.jsonl").read_text() == before
    assert [p.name for p in suite_dir.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    ("bad", "byte"),
    [(b"\xff", "0xff"), (b"\xe9", "0xe9"), (b"\xc3(", "0xc3"), (b"\xed\xa0\x80", "0xed")],
    ids=["ff", "latin1-e-acute", "bad-continuation", "surrogate"],
)
def test_non_utf8_byte_names_file_line_and_column(suite_dir, bad, byte):
    good = json.dumps(sample_row(id="s1")).encode()
    broken = json.dumps(sample_row(id="s2", question="Which tool is used XX?")).encode()
    broken = broken.replace(b"XX", bad)
    (suite_dir / "suite.jsonl").write_bytes(good + b"\n\n" + broken + b"\n")
    with pytest.raises(SuiteError) as err:
        Suite.load(suite_dir)
    message = str(err.value)
    column = broken.index(bad) + 1
    assert f"suite.jsonl line 3: not UTF-8 text (byte {byte} at byte {column} of the line" in message
    assert str(suite_dir) in message and "save suite.jsonl as UTF-8" in message


@pytest.mark.parametrize(
    ("field", "literal", "needle"),
    [
        ("duration", "1" + "0" * 400, "invalid JSON (an integer of 401 digits is too large)"),
        ("duration", "9" * 5000, "invalid JSON (an integer of 5000 digits is too large)"),  # past int() limit
        ("evidence", "[[1" + "0" * 330 + ", 2]]", "is too large for a number"),
        ("evidence", "[" * 5000 + "]" * 5000, "invalid JSON (nested too deeply)"),
        ("evidence", "[[1e999, 2]]", "field 'evidence'"),
    ],
    ids=["401digits", "5000digits", "float-overflow-int", "deep", "1e999"],
)
def test_huge_numbers_and_deep_nesting_name_the_line(suite_dir, field, literal, needle):
    row = json.dumps(sample_row(**{field: "PLACEHOLDER"})).replace('"PLACEHOLDER"', literal)
    (suite_dir / "suite.jsonl").write_text(json.dumps(sample_row(id="s0")) + "\n" + row + "\n")
    with pytest.raises(SuiteError, match="suite.jsonl line 2") as err:
        Suite.load(suite_dir)
    assert needle in str(err.value)


@pytest.mark.parametrize("field", ["duration", "evidence", "captions"])
def test_integers_past_the_float_range_fail_validation_not_float(field):
    value = {
        "duration": 10**400,
        "evidence": [[10**400, 1]],
        "captions": [{"start": 10**400, "end": 1, "text": "x"}],
    }
    with pytest.raises(SuiteError, match=f"field {field!r}"):
        Sample.from_dict(sample_row(**{field: value[field]}))
