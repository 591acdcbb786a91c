import pytest

from medscope_gym.atomic import atomic_directory, atomic_write_figure, atomic_write_text


def test_atomic_directory_replaces_existing_folder(tmp_path):
    target = tmp_path / "suite"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").exists()  # readers still see the old folder meanwhile
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite"]  # no leftovers


def test_atomic_directory_failure_leaves_target_untouched(tmp_path):
    target = tmp_path / "suite"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("build failed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite"]


def test_atomic_write_text(tmp_path):
    path = tmp_path / "a" / "b.txt"
    atomic_write_text(path, "héllo")
    assert path.read_text(encoding="utf-8") == "héllo"
    assert path.stat().st_mode & 0o777 == 0o644


class _Figure:
    """Stands in for a matplotlib figure: ``savefig`` renders ``png`` into the buffer, or fails."""

    def __init__(self, png: bytes | None) -> None:
        self.png = png

    def savefig(self, buffer, format: str, dpi: int) -> None:
        if self.png is None:
            raise OSError(28, "No space left on device")
        buffer.write(self.png)


def test_atomic_write_figure_writes_the_render_or_leaves_the_old_plot(tmp_path):
    path = tmp_path / "loss.png"
    atomic_write_figure(path, _Figure(b"\x89PNG old"))
    assert path.read_bytes() == b"\x89PNG old"
    with pytest.raises(OSError, match="No space"):
        atomic_write_figure(path, _Figure(None))
    assert path.read_bytes() == b"\x89PNG old"
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]  # no temporary file left beside it
