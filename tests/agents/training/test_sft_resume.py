"""SFT resumes exactly: a run killed after a checkpoint and resumed ends where an uninterrupted one does."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from medscope_gym.agents.sft import trainer as sft_trainer  # noqa: E402
from medscope_gym.agents.training.metrics import read_metrics  # noqa: E402


class _Killed(Exception):
    """Stands in for a SIGKILL right after a checkpoint was written."""


def _cfg(tiny_dir, out):
    from medscope_gym.agents.sft.config import SFTConfig

    # LoRA dropout draws from torch's RNG every forward, and 3 trajectories in batches of 2 make the
    # data-stream position matter: a resume without the RNG or the stream position diverges.
    return SFTConfig(
        model=str(tiny_dir),
        suite="builtin:synthsurg-small",
        out=str(out),
        limit=3,
        max_steps=4,
        batch_size=2,
        learning_rate=1e-2,
        warmup_steps=1,
        lora=True,
        lora_r=4,
        lora_dropout=0.3,
        save_every=2,
        progress=False,
    )


def _adapter(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter" / "adapter_model.safetensors"))


def _losses(out):
    return [(r["step"], r["train/loss"], r["train/lr"]) for r in read_metrics(out) if "train/loss" in r]


def _straight_and_split(tmp_path, tiny_dir, monkeypatch, auxiliary=lambda: None):
    """An uninterrupted run, and one killed after its step-2 checkpoint and run again in its folder."""
    straight = tmp_path / "straight"
    sft_trainer.train_sft(_cfg(tiny_dir, straight), auxiliary())

    split = tmp_path / "split"
    real_save = sft_trainer.save_checkpoint_if_due

    def save_then_die(out, cfg, step, *args):
        folder = real_save(out, cfg, step, *args)
        if step == 2:
            raise _Killed
        return folder

    monkeypatch.setattr(sft_trainer, "save_checkpoint_if_due", save_then_die)
    with pytest.raises(_Killed):
        sft_trainer.train_sft(_cfg(tiny_dir, split), auxiliary())
    monkeypatch.setattr(sft_trainer, "save_checkpoint_if_due", real_save)
    assert sorted(p.name for p in split.glob("checkpoint-*")) == ["checkpoint-2"]
    stale = split / ".checkpoint-3.x7k2m9q1.tmp"  # the kill came during the next save
    (stale / "adapter").mkdir(parents=True)
    sft_trainer.train_sft(_cfg(tiny_dir, split), auxiliary())
    assert not stale.exists()
    return straight, split


def test_a_killed_and_resumed_run_ends_with_identical_weights_and_losses(tmp_path, tiny_dir, monkeypatch):
    straight, split = _straight_and_split(tmp_path, tiny_dir, monkeypatch)
    assert _losses(split) == _losses(straight) and [s for s, _, _ in _losses(split)] == [1, 2, 3, 4]
    a, b = _adapter(straight / "checkpoint-4"), _adapter(split / "checkpoint-4")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt"):
        torch.load(split / "checkpoint-4" / name, weights_only=True)


def test_a_resumed_run_goes_on_with_the_rehearsal_where_it_stood(tmp_path, tiny_dir, monkeypatch):
    """The recipe's Stage I rehearsal beside SFT (``auxiliary``) is saved with each checkpoint: the
    resumed run rehearses the examples the uninterrupted one did, so its losses are the same."""
    from transformers import AutoProcessor

    from medscope_gym.agents.recipe.perception import Rehearsal

    processor = AutoProcessor.from_pretrained(tiny_dir)
    straight, split = _straight_and_split(
        tmp_path, tiny_dir, monkeypatch, lambda: Rehearsal(processor, ("copy",), batch_size=1, seed=2)
    )
    rehearsed = [r["train/auxiliary_loss"] for r in read_metrics(split) if "train/auxiliary_loss" in r]
    assert rehearsed == [
        r["train/auxiliary_loss"] for r in read_metrics(straight) if "train/auxiliary_loss" in r
    ]
    assert len(rehearsed) == 4 and _losses(split) == _losses(straight)
    a, b = _adapter(straight / "checkpoint-4"), _adapter(split / "checkpoint-4")
    assert all(torch.equal(a[k], b[k]) for k in a)
