"""Checkpoints: round trip, RNG restore through weights_only loading, refusal of pickled code, temporaries."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medscope_gym.agents.training.checkpoints import (  # noqa: E402
    CheckpointError,
    TrainerState,
    checkpoint_step,
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)


class _Model(torch.nn.Module):
    """A two-weight model with the ``save_pretrained`` a checkpoint calls."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def save_pretrained(self, folder) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True)
        save_file(dict(self.state_dict()), str(folder / "model.safetensors"))


def _trainable(seed: int = 0):
    torch.manual_seed(seed)
    model = _Model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: min(1.0, (k + 1) / 4))
    return model, optimizer, scheduler


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist(), random.gauss(0, 1)


def _scramble() -> None:
    random.seed(999)
    np.random.seed(999)
    torch.manual_seed(999)


def test_checkpoint_round_trip_restores_optimizer_scheduler_step_stream_and_rng(tmp_path):
    model, optimizer, scheduler = _trainable()
    for _ in range(3):
        model.linear(torch.ones(1, 3)).sum().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.standard_normal()
    folder = save_checkpoint(
        tmp_path,
        TrainerState(step=3, stream_position=12, max_steps=10, extra={"chunks": {"copy": [200, 200]}}),
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        lora=False,
        keep=2,
    )
    expected = _draws()
    assert folder == tmp_path / "checkpoint-3" == latest_checkpoint(tmp_path)
    assert (folder / "model" / "model.safetensors").exists()
    assert json.loads((folder / "trainer_state.json").read_text()) == {
        "step": 3,
        "stream_position": 12,
        "max_steps": 10,
        "extra": {"chunks": {"copy": [200, 200]}},
    }
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt"):
        torch.load(folder / name, weights_only=True)  # plain tensors and numbers only

    _scramble()
    _, fresh_optimizer, fresh_scheduler = _trainable(seed=5)
    state = load_checkpoint(folder, fresh_optimizer, fresh_scheduler, examples_per_step=4)
    assert state == TrainerState(
        step=3, stream_position=12, max_steps=10, extra={"chunks": {"copy": [200, 200]}}
    )
    assert checkpoint_step(folder) == 3
    with pytest.raises(CheckpointError, match="not a checkpoint-N folder"):
        checkpoint_step(tmp_path / "final")
    assert _draws() == expected
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    saved, loaded = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for key, slots in saved["state"].items():
        for name, value in slots.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(loaded["state"][key][name]))


def test_rng_state_survives_weights_only_loading(tmp_path):
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    random.gauss(0, 1)
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = _draws()
    _scramble()
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draws() == expected


class _RunsCode:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for arbitrary code in a crafted file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["rng.pt", "optimizer.pt", "scheduler.pt"])
def test_a_crafted_checkpoint_file_is_refused_not_executed(tmp_path, name):
    model, optimizer, scheduler = _trainable()
    folder = save_checkpoint(
        tmp_path / "run",
        TrainerState(step=1, stream_position=1),
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        lora=False,
        keep=2,
    )
    marker = tmp_path / "code-ran"
    torch.save({"torch": _RunsCode(marker)}, folder / name)
    with pytest.raises(CheckpointError, match=rf"{name}.*refusing to unpickle"):
        load_checkpoint(folder, optimizer, scheduler, examples_per_step=1)
    assert not marker.exists()


def test_an_older_checkpoint_without_rng_or_stream_position_still_resumes(tmp_path, capsys):
    model, optimizer, scheduler = _trainable()
    folder = save_checkpoint(
        tmp_path,
        TrainerState(step=5, stream_position=0),
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        lora=False,
        keep=1,
    )
    (folder / "rng.pt").unlink()
    (folder / "trainer_state.json").write_text(json.dumps({"step": 5, "max_steps": 9}))
    state = load_checkpoint(folder, optimizer, scheduler, examples_per_step=4)
    assert state == TrainerState(step=5, stream_position=20, max_steps=9)
    assert "no rng.pt" in capsys.readouterr().out


def test_a_missing_trainer_state_is_a_checkpoint_error(tmp_path):
    (tmp_path / "checkpoint-1").mkdir()
    _, optimizer, scheduler = _trainable()
    with pytest.raises(CheckpointError, match="trainer_state.json"):
        load_checkpoint(tmp_path / "checkpoint-1", optimizer, scheduler, examples_per_step=1)


def test_pruning_keeps_the_newest_checkpoints(tmp_path):
    model, optimizer, scheduler = _trainable()
    for step in (1, 2, 10, 3):
        save_checkpoint(
            tmp_path,
            TrainerState(step=step, stream_position=step),
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            lora=False,
            keep=2,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-3"]


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path):
    half = tmp_path / ".checkpoint-4.k3j9x_1a.tmp"  # a save killed before its rename
    (half / "model").mkdir(parents=True)
    (half / "optimizer.pt").write_bytes(b"partial")
    (tmp_path / ".metrics.jsonl.ab12cd34.tmp").write_text("{")  # an atomic file write killed likewise
    (tmp_path / "final").mkdir()
    (tmp_path / ".final.q1w2e3r4.old" / "previous").mkdir(parents=True)  # target present: garbage
    orphan = tmp_path / ".data.z9y8x7w6.old"  # target missing: the only copy, left alone
    (orphan / "previous").mkdir(parents=True)
    kept = [tmp_path / "checkpoint-2", tmp_path / ".cache", tmp_path / "notes.tmp"]
    kept[0].mkdir()
    kept[1].mkdir()
    kept[2].write_text("mine")

    removed = remove_stale_temporaries(tmp_path)

    assert {p.name for p in removed} == {
        ".checkpoint-4.k3j9x_1a.tmp",
        ".metrics.jsonl.ab12cd34.tmp",
        ".final.q1w2e3r4.old",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".cache", ".data.z9y8x7w6.old", "checkpoint-2", "final", "notes.tmp"]
    )
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert remove_stale_temporaries(tmp_path / "missing") == []
