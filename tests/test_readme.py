"""The README's Python example runs as written (the documented API cannot drift from the code)."""

import re
from pathlib import Path


def test_readme_python_example_runs(capsys):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks, "the README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "Question:" in out and "crop_video" in out
    assert namespace["terminated"] is True and set(namespace["info"]["reward_parts"]) >= {"accuracy", "total"}
