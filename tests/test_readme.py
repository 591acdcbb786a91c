"""The README's quickstart runs as written (the documented API cannot drift from the code)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_block(text: str) -> str:
    """The one ```python block of the README's "## Quickstart" section."""
    section = re.search(r"^## Quickstart\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert section, "the README has no '## Quickstart' section"
    blocks = re.findall(r"^```python\n(.*?)^```", section.group(1), re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, f"the Quickstart section should hold one python block, found {len(blocks)}"
    return blocks[0]


def test_readme_quickstart_runs(capsys):
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(quickstart_block(README.read_text()), "README.md (Quickstart)", "exec"), namespace)
    out = capsys.readouterr().out
    assert "Question:" in out and "crop_video" in out
    assert namespace["terminated"] is True and set(namespace["info"]["reward_parts"]) >= {"accuracy", "total"}


def test_readme_stays_short_and_starts_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 250, "the manual belongs in docs/, not the README"
    first_blocks = re.findall(r"^```bash\n(.*?)^```", text, re.DOTALL | re.MULTILINE)[:2]
    assert "medscope recipe configs/recipe_tiny.yaml" in first_blocks[0]
    assert first_blocks[1].rstrip().endswith("&& pytest")
