"""The model a training run updates (SFT and GA-GRPO alike), and the plain checkpoint it ends with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["LORA_TARGETS", "load_trainable_model", "model_dtype", "save_final_model"]

#: Language-model projections LoRA adapts by default (SFT and GA-GRPO): attention and MLP.
LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def model_dtype(device: Any):
    """bf16 on CUDA, fp32 elsewhere: the dtype of frozen weights (a LoRA base, a KL reference)."""
    import torch

    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_trainable_model(cfg: Any, resume_from: Path | None, lora_base_dtype: Any = None):
    """The model a training run (SFT, GA-GRPO) updates, from ``cfg.model`` or from ``resume_from``.

    ``cfg`` carries ``model``, ``lora``, ``lora_r``, ``lora_alpha``, ``lora_dropout``, ``lora_targets`` and
    ``freeze_vision``. LoRA: adapters on the language model's projections over a frozen base (loaded in
    ``lora_base_dtype``, fp32 by default; the adapters stay fp32); a checkpoint holds ``adapter/``. Full
    fine-tuning: fp32 weights, the vision tower frozen when asked; a checkpoint holds ``model/``.
    """
    import torch
    from transformers import AutoModelForImageTextToText

    if cfg.lora:
        from peft import LoraConfig, PeftModel, get_peft_model

        base = AutoModelForImageTextToText.from_pretrained(cfg.model, dtype=lora_base_dtype or torch.float32)
        if resume_from is not None:
            return PeftModel.from_pretrained(base, resume_from / "adapter", is_trainable=True)
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=r".*language_model.*\.(" + "|".join(cfg.lora_targets) + ")$",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(base, lora)
    source = resume_from / "model" if resume_from is not None else cfg.model
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32)
    if cfg.freeze_vision:
        for p in model.model.visual.parameters():
            p.requires_grad_(False)
    return model


def save_final_model(
    model: Any, processor: Any, policy_cfg: Any, final: str | Path, merge_lora: bool
) -> None:
    """Write a run's final, plain checkpoint (LoRA merged) that loads like any other, atomically."""
    from medscope_gym.atomic import atomic_directory

    if merge_lora:
        model = model.merge_and_unload()
    with atomic_directory(Path(final)) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        policy_cfg.save(tmp)
