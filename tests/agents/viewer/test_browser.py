"""The report in a real browser (headless Chromium): the filters from the URL, and a rendered page.

Heavy: it needs the Debian ``chromium`` package (``apt-get install -y chromium``), which the default run
and CI do not install. ``--dump-dom`` prints the DOM after the page's script ran, so the filters are
checked without a WebDriver: the page reads them from the URL's fragment on load.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from medscope_gym.agents.viewer import ViewConfig, write_report

pytestmark = pytest.mark.heavy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium(tmp_path: Path, *args: str) -> str:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the browser test needs it")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Cards(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.cards: list[dict[str, str]] = []
        self.count = ""
        self._in_count = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "article" and "data-task" in attrs:
            self.cards.append(attrs)
        self._in_count = attrs.get("id") == "count"

    def handle_data(self, data):
        if self._in_count:
            self.count += data


def test_filters_from_the_url_show_only_matching_cards(eval_runs, tmp_path):
    oracle, random = eval_runs
    report = write_report([oracle, random], ViewConfig(out=str(tmp_path / "report.html")))
    every = Cards(_chromium(tmp_path, "--dump-dom", report.as_uri())).cards
    assert len(every) == 16 and all(c["data-shown"] == "1" for c in every)

    task = sorted({c["data-task"] for c in every})[-1]
    page = Cards(_chromium(tmp_path, "--dump-dom", f"{report.as_uri()}#task={task}&correct=0"))
    shown = [c for c in page.cards if c["data-shown"] == "1"]
    assert shown and all(c["data-task"] == task and c["data-correct"] == "0" for c in shown)
    expected = [c for c in every if c["data-task"] == task and c["data-correct"] == "0"]
    assert len(shown) == len(expected) and page.count.startswith(f"{len(expected)} of 16")

    # the runs differ: rows where one policy is right and the other wrong
    changed = Cards(_chromium(tmp_path, "--dump-dom", f"{report.as_uri()}?changed=1")).cards
    rows = list(zip(changed[::2], changed[1::2]))
    for a, b in rows:
        differ = a["data-correct"] != b["data-correct"]
        assert (a["data-shown"] == "1" or b["data-shown"] == "1") == differ


def test_screenshot_is_a_rendered_page(eval_runs, tmp_path):
    import numpy as np
    from PIL import Image

    oracle, random = eval_runs
    report = write_report([oracle, random], ViewConfig(out=str(tmp_path / "report.html")))
    shot = tmp_path / "viewer.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", report.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1400, 2000)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 20  # text, frames, timelines: not a blank page
    assert (pixels < 128).mean() > 0.01 and (pixels > 200).mean() > 0.3
