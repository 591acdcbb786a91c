"""Pack token sequences and their vision inputs into one model batch (generation and training alike).

Qwen-VL models take the pixels of every video and image of the batch concatenated in sequence order
(episode by episode, chunk by chunk), with one grid per video/image; the rope index walks the
sequences in the same order. Padding is on the left for generation and on the right for training;
the attention mask tells the rope index which tokens are real.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["VISION_KEYS", "collate", "trajectory_batch"]

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
