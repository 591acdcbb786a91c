"""``checkpoint-N`` folders of a training run (SFT and GA-GRPO alike): save, find, prune, resume.

A checkpoint holds everything an exact resume needs, and nothing that runs code when read:

- ``model/`` (full fine-tuning) or ``adapter/`` (LoRA): safetensors weights;
- ``optimizer.pt``, ``scheduler.pt``: state dicts (tensors and numbers);
- ``rng.pt``: the Python, NumPy, torch (and CUDA) generator states as tensors and numbers;
- ``trainer_state.json``: the step, the data-stream position, the run's ``max_steps`` and what else the
  loop needs to go on exactly (``extra``: Stage I's phase lengths and curve, as JSON).

Every ``.pt`` file is read with ``torch.load(weights_only=True)``: a checkpoint that holds any other
pickled object (a crafted file whose unpickling would run code) is refused with :class:`CheckpointError`,
never executed. Checkpoints are written atomically (:func:`medscope_gym.atomic.atomic_directory`); the
partial ``.checkpoint-N.*.tmp`` folders a run killed mid-save leaves behind are removed when the next one
starts (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medscope_gym.atomic import atomic_directory
from medscope_gym.errors import MedScopeError

__all__ = [
    "CheckpointError",
    "TrainerState",
    "checkpoint_dir",
    "checkpoint_step",
    "latest_checkpoint",
    "load_checkpoint",
    "load_tensors",
    "prune_checkpoints",
    "remove_stale_temporaries",
    "restore_rng_state",
    "rng_state",
    "save_checkpoint",
    "save_checkpoint_if_due",
]

_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")
#: Temporaries of :mod:`medscope_gym.atomic`: ``.<name>.<random>.tmp`` (being written) and
#: ``.<name>.<random>.old`` (a replaced folder, deleted right after the swap).
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[^.]+\.(?P<kind>tmp|old)$")


class CheckpointError(MedScopeError):
    """A checkpoint file is missing, malformed, or holds objects that are not safe to load."""


@dataclass
class TrainerState:
    """The loop's own position, saved as ``trainer_state.json`` beside the weights."""

    step: int
    """Optimizer steps done."""
    stream_position: int
    """Examples the data stream has handed out (:class:`~.streaming.IndexStream`.position)."""
    max_steps: int | None = None
    """The run's planned length when it was saved (informative; a resumed run may go further)."""
    extra: dict[str, Any] | None = None
    """The loop's own state beyond the step, as JSON (Stage I: the lengths its waiting phases reached,
    the rehearsal's position, the held-out curve so far)."""


def checkpoint_dir(out: str | Path, step: int) -> Path:
    return Path(out) / f"checkpoint-{step}"


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step of a ``checkpoint-N`` folder, from its name (to trim a metrics log before loading)."""
    match = _CKPT_RE.match(Path(checkpoint).name)
    if match is None:
        raise CheckpointError(f"{checkpoint}: not a checkpoint-N folder")
    return int(match.group(1))


def _checkpoints(out: str | Path) -> list[tuple[int, Path]]:
    return sorted(
        (int(m.group(1)), p) for p in Path(out).glob("checkpoint-*") if (m := _CKPT_RE.match(p.name))
    )


def latest_checkpoint(out: str | Path) -> Path | None:
    """The ``checkpoint-N`` folder with the largest N in ``out`` (None when there is none)."""
    found = _checkpoints(out)
    return found[-1][1] if found else None


def prune_checkpoints(out: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints."""
    found = _checkpoints(out)
    for _, old in found[: max(0, len(found) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_temporaries(out: str | Path) -> list[Path]:
    """Delete what an interrupted atomic write left in ``out``; returns what was removed.

    ``.<name>.*.tmp`` entries are half-written (the write never reached its rename): always garbage.
    ``.<name>.*.old`` folders hold a replaced version and are removed only when ``<name>`` exists (a kill
    between the two renames of :func:`~medscope_gym.atomic.atomic_directory` leaves the only copy there).
    Call it before the run writes anything (main process only).
    """
    out = Path(out)
    removed = []
    if not out.is_dir():
        return removed
    for entry in sorted(out.iterdir()):
        match = _TEMP_RE.match(entry.name)
        if match is None or (match["kind"] == "old" and not (out / match["name"]).exists()):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


# ---------------------------------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """The global generators' states as tensors, numbers and strings (loads with ``weights_only=True``)."""
    import torch

    version, mt, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "bit_generator": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the global generators to a :func:`rng_state`."""
    import torch

    py, nump = state["python"], state["numpy"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["state"].tolist()), py["gauss_next"]))
    np.random.set_state(
        (
            nump["bit_generator"],
            nump["keys"].numpy().astype(np.uint32),
            int(nump["pos"]),
            int(nump["has_gauss"]),
            float(nump["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------- save / load
def load_tensors(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)``; a file holding more raises :class:`CheckpointError`."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, EOFError) as exc:
        raise CheckpointError(
            f"{path}: not loadable as plain tensors and numbers (weights_only=True); refusing to unpickle "
            f"it. A crafted or corrupted checkpoint? ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            + (
                ". GA-GRPO checkpoints of release 0.1.0 pickled their RNG state: delete this rng.pt"
                " to resume without restoring the random state"
                if Path(path).name == "rng.pt"
                else ""
            )
        ) from exc


def save_checkpoint_if_due(
    out: str | Path,
    cfg: Any,
    step: int,
    stream_position: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    extra: Any = None,
) -> Path | None:
    """:func:`save_checkpoint` when ``step`` is due: every ``cfg.save_every`` steps and at ``cfg.max_steps``.

    ``cfg`` is a trainer config (SFT or GA-GRPO): it supplies ``save_every``, ``max_steps``, ``lora`` and
    ``keep_checkpoints``. ``extra``: a callable returning :attr:`TrainerState.extra`, called only when a
    checkpoint is due. Returns the folder written, or None when no checkpoint was due.
    """
    if step % cfg.save_every != 0 and step != cfg.max_steps:
        return None
    state = TrainerState(
        step=step,
        stream_position=stream_position,
        max_steps=cfg.max_steps,
        extra=extra() if extra is not None else None,
    )
    return save_checkpoint(
        out,
        state,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        lora=cfg.lora,
        keep=cfg.keep_checkpoints,
    )


def save_checkpoint(
    out: str | Path,
    state: TrainerState,
    *,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    lora: bool,
    keep: int,
) -> Path:
    """Write ``out/checkpoint-<step>`` atomically, then prune to the ``keep`` newest; returns its folder.

    ``model`` is the unwrapped model (``accelerator.unwrap_model``); its weights go to ``adapter/`` under
    LoRA, else ``model/``. Call it on the main process only.
    """
    import torch

    folder = checkpoint_dir(out, state.step)
    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp / ("adapter" if lora else "model"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(asdict(state)) + "\n")
    prune_checkpoints(out, keep)
    return folder


def load_checkpoint(
    checkpoint: str | Path, optimizer: Any, scheduler: Any, *, examples_per_step: int
) -> TrainerState:
    """Restore the optimizer, the scheduler and the global RNG from ``checkpoint``; returns its state.

    The weights are loaded with the model (:func:`~medscope_gym.agents.training.models.load_trainable_model`);
    call this after building the model, so that the restored RNG is the one training continues with.
    ``examples_per_step`` places the data stream of a checkpoint that predates ``stream_position``.
    A checkpoint without ``rng.pt`` (written before it was saved) resumes with the current RNG, said so.
    """
    checkpoint = Path(checkpoint)
    try:
        saved = json.loads((checkpoint / "trainer_state.json").read_text())
        step = int(saved["step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{checkpoint}: unreadable trainer_state.json ({exc})") from exc
    position = saved.get("stream_position")
    state = TrainerState(
        step=step,
        stream_position=int(position) if position is not None else step * examples_per_step,
        max_steps=saved.get("max_steps"),
        extra=saved.get("extra"),
    )
    optimizer.load_state_dict(load_tensors(checkpoint / "optimizer.pt"))
    scheduler.load_state_dict(load_tensors(checkpoint / "scheduler.pt"))
    if (checkpoint / "rng.pt").exists():
        restore_rng_state(load_tensors(checkpoint / "rng.pt"))
    else:
        print(f"{checkpoint}: no rng.pt (an older checkpoint); the random generators are not restored")
    return state
