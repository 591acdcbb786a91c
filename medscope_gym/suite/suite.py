"""A ClinVideoSuite on disk: a folder with ``suite.jsonl`` (one sample a line) and the videos."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from medscope_gym.atomic import atomic_write_text
from medscope_gym.errors import SuiteError
from medscope_gym.suite.schema import SPLITS, Sample

__all__ = ["SUITE_FILE", "TOOLS_FILE", "Suite", "register_spec_scheme", "write_suite"]

SUITE_FILE = "suite.jsonl"
#: Optional tool settings of a suite (a JSON object of ``ToolConfig`` fields): the env's defaults for it.
TOOLS_FILE = "tools.json"

_SPEC_SCHEMES: dict[str, Callable[[str], str | os.PathLike[str]]] = {}


def register_spec_scheme(scheme: str, resolver: Callable[[str], str | os.PathLike[str]]) -> None:
    """Let :meth:`Suite.from_spec` load ``"SCHEME:NAME"`` from the folder ``resolver(NAME)`` returns.

    ``builtin:`` (the built-in synthetic suites, built on first use) is registered by ``import
    medscope_gym`` (:mod:`medscope_gym.registration`): the generator builds suites with the suite
    pipeline, so this module cannot import it without an import cycle.
    """
    _SPEC_SCHEMES[scheme] = resolver


class Suite(Sequence[Sample]):
    """Validated samples of one suite folder, with their videos resolved to absolute paths."""

    def __init__(self, root: str | os.PathLike[str], samples: Sequence[Sample]) -> None:
        self.root = Path(root).resolve()
        self.samples: tuple[Sample, ...] = tuple(samples)
        self._by_id = {s.id: s for s in self.samples}

    @classmethod
    def load(cls, root: str | os.PathLike[str], split: str | None = None, check_videos: bool = True) -> Suite:
        """Read and validate ``root/suite.jsonl``; raise :class:`SuiteError` naming line and field.

        ``split`` keeps one split ("train", "val" or "test"); ``check_videos`` verifies that
        every referenced video file exists inside the suite folder.
        """
        root = Path(root)
        path = root / SUITE_FILE
        if not root.is_dir():
            raise SuiteError(f"suite folder {str(root)!r} does not exist")
        if not path.is_file():
            raise SuiteError(f"suite folder {str(root)!r} has no {SUITE_FILE}")
        if split is not None and split not in SPLITS:
            raise SuiteError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        _check_utf8(path)
        samples: list[Sample] = []
        seen: dict[str, int] = {}
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path} line {lineno}"
                raw = _parse_line(line, where)
                sample = Sample.from_dict(raw, where=where)
                if sample.id in seen:
                    raise SuiteError(f"{where}, field 'id': {sample.id!r} repeats line {seen[sample.id]}")
                seen[sample.id] = lineno
                if check_videos:
                    _check_video(root, sample, where)
                if split is None or sample.split == split:
                    samples.append(sample)
        if not samples:
            raise SuiteError(f"{path} holds no samples" + (f" in split {split!r}" if split else ""))
        return cls(root, samples)

    @classmethod
    def from_spec(cls, spec: str | os.PathLike[str], split: str | None = None) -> Suite:
        """Load a suite folder, or ``"builtin:NAME"`` (a built-in synthetic suite, built on first use;
        any scheme of :func:`register_spec_scheme`)."""
        scheme, sep, name = str(spec).partition(":")
        if sep and scheme in _SPEC_SCHEMES:
            return cls.load(_SPEC_SCHEMES[scheme](name), split=split)
        return cls.load(spec, split=split)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):  # type: ignore[override]
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def by_id(self, sample_id: str) -> Sample:
        try:
            return self._by_id[sample_id]
        except KeyError:
            raise KeyError(f"no sample with id {sample_id!r} in suite {str(self.root)!r}") from None

    def video_path(self, sample: Sample) -> Path:
        """Absolute path of a sample's video."""
        return (self.root / sample.video).resolve()

    def videos(self) -> list[str]:
        """Distinct video paths (relative to the suite), in first-seen order."""
        return list(dict.fromkeys(s.video for s in self.samples))

    def tool_settings(self) -> dict | None:
        """The suite's own tool settings (``tools.json`` in its folder: ``ToolConfig`` fields), or None.

        ``ClinVideoEnv`` uses them when it is given no ``tools``: a suite designed for a frame budget
        (the testbed's coarse preview) is played with that budget by every trainer and evaluator."""
        path = self.root / TOOLS_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise SuiteError(f"{path} must hold a JSON object of ToolConfig fields")
        return data

    def counts(self, key: str) -> Counter[str]:
        """How many samples have each value of ``key`` (e.g. "task", "split", "answer_type")."""
        return Counter(str(getattr(s, key)) for s in self.samples)


#: Longest integer literal a suite line may hold: larger ones cannot be a time or a count.
_MAX_INT_CHARS = 400


def _suite_int(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        raise ValueError(f"an integer of {len(text)} digits is too large")
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise ValueError(f"integer {text[:20]}... is too large for a number") from None
    return value


def _parse_line(line: str, where: str) -> object:
    """One JSON line, or a :class:`SuiteError` naming it (never a bare ValueError or RecursionError)."""
    try:
        return json.loads(line, parse_int=_suite_int)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise SuiteError(f"{where}: invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # from _suite_int: a number past the float range
        raise SuiteError(f"{where}: invalid JSON ({exc})") from None


def _check_utf8(path: Path) -> None:
    """Raise :class:`SuiteError` naming the line and column of the first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        lineno = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - line_start + 1
        raise SuiteError(
            f"{path} line {lineno}: not UTF-8 text (byte 0x{data[exc.start]:02x} at byte {column} of the "
            f"line: {exc.reason}); save {SUITE_FILE} as UTF-8"
        ) from None


def _check_video(root: Path, sample: Sample, where: str) -> None:
    video = Path(sample.video)
    if video.is_absolute() or ".." in video.parts:
        raise SuiteError(
            f"{where} (id {sample.id!r}), field 'video': must be a path inside the suite folder, "
            f"got {sample.video!r}"
        )
    if not (root / video).is_file():
        raise SuiteError(f"{where} (id {sample.id!r}), field 'video': file {str(root / video)!r} not found")


def write_suite(root: str | os.PathLike[str], samples: Iterable[Sample]) -> Path:
    """Atomically write ``root/suite.jsonl`` (videos are the caller's to place)."""
    lines = [json.dumps(s.to_dict(), ensure_ascii=False) for s in samples]
    path = Path(root) / SUITE_FILE
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
