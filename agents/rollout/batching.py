"""Pack token sequences and their vision inputs into one model batch (generation and training alike).

Qwen-VL models take the pixels of every video and image of the batch concatenated in sequence order
(episode by episode, chunk by chunk), with one grid per video/image; the rope index walks the
sequences in the same order. Padding is on the left for generation and on the right for training;
the attention mask tells the rope index which tokens are real.

Rollouts of one GA-GRPO group start from the same reset, so their preview chunk is one processed object;
:func:`shared_vision_features` runs the vision tower once per distinct chunk of a batch and hands the
model the features of every placeholder (gradients of the shared features add up, as for copies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["VISION_KEYS", "collate", "shared_vision_features", "trajectory_batch"]

#: Processor outputs that describe vision inputs, concatenated across chunks and episodes.
VISION_KEYS = (
    "pixel_values_videos",
    "video_grid_thw",
    "second_per_grid_ts",
    "pixel_values",
    "image_grid_thw",
)


def collate(
    sequences: Sequence[Sequence[int]],
    vision: Sequence[Sequence[dict[str, Any]]],
    *,
    pad_id: int,
    image_token_id: int,
    video_token_id: int,
    padding_side: str = "left",
    device: Any = None,
) -> dict[str, Any]:
    """Model inputs for a batch: ``sequences[i]`` token ids, ``vision[i]`` its chunks' processor outputs."""
    import torch

    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids = torch.as_tensor(list(seq), dtype=torch.long)
        sl = slice(width - len(seq), width) if padding_side == "left" else slice(0, len(seq))
        input_ids[i, sl] = ids
        attention_mask[i, sl] = 1
    mm = ((input_ids == image_token_id).long() + 2 * (input_ids == video_token_id).long()) * attention_mask
    batch: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "mm_token_type_ids": mm,
    }
    for key in VISION_KEYS:
        parts = [chunk[key] for chunks in vision for chunk in chunks if key in chunk]
        if parts:
            batch[key] = torch.cat([torch.as_tensor(p) for p in parts], dim=0)
    if device is not None:
        batch = {k: v.to(device) for k, v in batch.items()}
    return batch


def trajectory_batch(
    trajectories: Sequence[Any],
    encoder: Any,
    *,
    pad_id: int,
    vision: Sequence[Sequence[dict[str, Any]]] | None = None,
    device: Any = None,
) -> dict[str, Any]:
    """Right-padded inputs to re-score whole trajectories in one forward (SFT, GA-GRPO).

    Adds ``action_mask`` (1 on the policy's own tokens), ``loss_mask`` (the same restricted to imitated
    turns, for SFT) and ``behaviour_logprobs`` (sampling-time log-probs, 0 elsewhere), all ``(B, L)`` and
    aligned with ``input_ids``. ``vision`` (per trajectory,
    per turn: processor outputs) is rebuilt from the stored frames with ``encoder.process_media`` when
    not given.
    """
    import torch

    if vision is None:
        vision = [[encoder.process_media(turn.media) for turn in t.turns] for t in trajectories]
    batch = collate(
        [t.input_ids() for t in trajectories],
        vision,
        pad_id=pad_id,
        image_token_id=encoder.image_token_id,
        video_token_id=encoder.video_token_id,
        padding_side="right",
    )
    width = batch["input_ids"].shape[1]
    mask = torch.zeros((len(trajectories), width), dtype=torch.long)
    loss_mask = torch.zeros_like(mask)
    logps = torch.zeros((len(trajectories), width), dtype=torch.float32)
    for i, t in enumerate(trajectories):
        m = t.action_mask()
        mask[i, : len(m)] = torch.as_tensor(m)
        loss_mask[i, : len(m)] = torch.as_tensor(t.loss_mask())
        logps[i, : len(m)] = torch.as_tensor(t.behaviour_logprobs(), dtype=torch.float32)
    batch["action_mask"], batch["loss_mask"], batch["behaviour_logprobs"] = mask, loss_mask, logps
    if device is not None:
        batch = {k: v.to(device) for k, v in batch.items()}
    return batch


#: Per modality: the pixel key, the grid key and the model method that encodes them.
_MODALITIES = (
    ("video", "pixel_values_videos", "video_grid_thw", "get_video_features"),
    ("image", "pixel_values", "image_grid_thw", "get_image_features"),
)


def shared_vision_features(model: Any, batch: dict[str, Any], vision: Sequence[Sequence[dict[str, Any]]]):
    """``batch`` with the vision tower run once per distinct chunk of ``vision`` (by identity).

    ``batch`` is :func:`collate`'s output for ``vision``. Where a chunk object occurs more than once (the
    shared preview of a group's rollouts), its features are computed once and repeated in sequence
    order; the pixel tensors are replaced by ``mm_encoder_outputs``. Returns ``batch`` itself when no
    chunk repeats or the model takes no precomputed features. Call it where the model's forward would
    run (same autocast / no-sync context): it runs the model's vision tower.
    """
    import inspect

    import torch

    flat = [chunk for chunks in vision for chunk in chunks]
    if len({id(c) for c in flat}) == len(flat):
        return batch
    core = next((m for m in model.modules() if hasattr(m, "get_rope_index")), None)
    if core is None or "mm_encoder_outputs" not in inspect.signature(core.forward).parameters:
        return batch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    device = batch["input_ids"].device
    out = dict(batch)
    encoded: dict[str, Any] = {}
    for modality, pixel_key, grid_key, method in _MODALITIES:
        if pixel_key not in batch:
            continue
        unique = list({id(c): c for c in flat if pixel_key in c}.values())
        pixels = torch.cat([torch.as_tensor(c[pixel_key]) for c in unique]).to(device)
        grids = torch.cat([torch.as_tensor(c[grid_key]) for c in unique]).to(device)
        features = getattr(core, method)(pixels, grids, return_dict=True).pooler_output
        per_chunk, at = {}, 0
        for c in unique:
            n = len(c[grid_key])
            per_chunk[id(c)] = features[at : at + n]
            at += n
        encoded[modality] = BaseModelOutputWithPooling(
            pooler_output=tuple(f for c in flat if pixel_key in c for f in per_chunk[id(c)])
        )
        del out[pixel_key]
    out["mm_encoder_outputs"] = encoded
    return out
