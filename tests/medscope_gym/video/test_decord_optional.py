"""decord is an optional extra: the core imports without it, and its backend names the extra."""

import subprocess
import sys

import pytest

from medscope_gym.video import DecordVideo


def test_decord_backend_without_decord_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "decord", None)  # as if it were not installed
    with pytest.raises(ModuleNotFoundError, match=r"medscope-gym\[decord\]"):
        DecordVideo(tmp_path / "any.mp4")


def test_core_and_env_import_without_decord():
    code = (
        "import sys; sys.modules['decord'] = None\n"
        "import medscope_gym, medscope_gym.video, medscope_gym.store, medscope_gym.envs.clinvideo\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
