"""A store builder paused while holding the build lock: others wait with a log line, then time out."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from medscope_gym.store import StoreLockTimeout, StoreSettings, ensure_store, open_tool_video, store_path

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from medscope_gym.store.builder import _locked
    with _locked(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def paused_holder(store_videos, tmp_path):
    """A process holding the build lock of ``store_videos['gop250']``'s store, stopped with SIGSTOP."""
    final = store_path(store_videos["gop250"], tmp_path / "stores", StoreSettings())
    final.parent.mkdir(parents=True)
    lock = final.parent / f".{final.name}.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        os.kill(proc.pid, signal.SIGSTOP)
        yield proc, tmp_path / "stores"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def _bounded(fn, limit_s: float = 30.0):
    """Run ``fn`` on a thread; fail (instead of hanging the test run) when it does not return in time."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit_s)
    assert not worker.is_alive(), f"still waiting for the lock after {limit_s:g} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_a_paused_lock_holder_is_named_in_a_log_line_and_a_time_out(store_videos, paused_holder, caplog):
    proc, root = paused_holder
    caplog.set_level(logging.INFO, logger="medscope_gym.store")
    with pytest.raises(StoreLockTimeout, match=rf"process {proc.pid} on .*stopped.*kill -CONT {proc.pid}"):
        _bounded(lambda: ensure_store(store_videos["gop250"], root, StoreSettings(), lock_timeout_s=1.0))
    waiting = [r.getMessage() for r in caplog.records if r.name == "medscope_gym.store"]
    assert any(f"process {proc.pid}" in m and "waiting" in m for m in waiting)
    assert isinstance(StoreLockTimeout("x"), TimeoutError)


def test_the_env_falls_back_to_direct_decoding_after_the_time_out(store_videos, paused_holder, monkeypatch):
    proc, root = paused_holder
    monkeypatch.setenv("MEDSCOPE_STORE_LOCK_TIMEOUT_S", "1")
    with pytest.warns(RuntimeWarning, match=rf"unavailable.*process {proc.pid}"):
        video = _bounded(lambda: open_tool_video(store_videos["gop250"], frame_store=root))
    try:
        assert video.read([3]).shape[0] == 1
    finally:
        video.close()


WORK = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from medscope_gym.store.builder import _locked
    lock = Path(sys.argv[1])
    tmp = lock.parent / (lock.name[: -len(".lock")] + f".{os.getpid()}.tmp")
    with _locked(lock):
        tmp.mkdir()
        print("locked", flush=True)
        for _ in range(20):  # 2 s of a build that keeps writing
            with open(tmp / "frames.npy", "ab") as fh:
                fh.write(bytes(1000))
            time.sleep(0.1)
        tmp.joinpath("frames.npy").unlink()
        tmp.rmdir()
    """
)


def test_a_working_holder_is_waited_for_past_the_time_limit(store_videos, tmp_path):
    """The limit counts time without progress: a holder that keeps writing is waited for."""
    final = store_path(store_videos["vfr"], tmp_path / "stores", StoreSettings())
    final.parent.mkdir(parents=True)
    lock = final.parent / f".{final.name}.lock"
    proc = subprocess.Popen([sys.executable, "-c", WORK, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        built = _bounded(
            lambda: ensure_store(
                store_videos["vfr"], tmp_path / "stores", StoreSettings(), lock_timeout_s=0.8
            )
        )
        assert built == final and proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
