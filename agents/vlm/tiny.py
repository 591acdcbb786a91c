"""A tiny Qwen2.5-VL-architecture model, built offline, for tests and CPU runs.

Nothing can be downloaded from a model hub on our machines, yet every code path of the VLM
agent (processor, chat template, rope over videos and images, generation, SFT) must run for
real. :func:`build_tiny_model` therefore writes a complete checkpoint folder from scratch:

- a byte-level BPE tokenizer (the 256 byte symbols plus merges learned from the library's own
  protocol text, :mod:`medscope_gym.agents.vlm.vocabulary`; digits stay single tokens) with the special tokens
  of the Qwen chat format and of our protocol (``<tool_call>``, ``<think>``, ``<answer>`` and their
  closers), so every protocol tag, and in particular every stop tag, is exactly one token id;
- a ``Qwen2_5_VLProcessor`` with the Qwen2-VL image and video processors and :data:`CHAT_TEMPLATE`;
- a randomly initialised 2-layer ``Qwen2_5_VLForConditionalGeneration``.

The folder is written with ``save_pretrained`` and loads back through the same
``from_pretrained`` path as a real checkpoint (see :mod:`medscope_gym.agents.vlm.policy`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medscope_gym.agents.vlm.encoding import FrameConfig
from medscope_gym.agents.vlm.policy import VLMPolicyConfig
from medscope_gym.agents.vlm.sampling import SamplingConfig
from medscope_gym.agents.vlm.vocabulary import protocol_corpus, train_vocabulary
from medscope_gym.atomic import atomic_directory

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "TINY_SYSTEM_PROMPT",
    "TinyModelConfig",
    "build_model",
    "build_processor",
    "build_tiny_model",
    "build_tokenizer",
    "save_tiny_settings",
    "tiny_policy_config",
]

#: The tiny model's system prompt: the reply format only. The protocol's full SYSTEM_PROMPT (tool
#: schemas, ~2.2k bytes = 2.2k byte tokens) would triple every CPU sequence for no gain at this size.
TINY_SYSTEM_PROMPT = (
    "Answer the question about the clinical video. Each reply: <think>reasoning</think> then either "
    '<tool_call>{"name": "crop_video", "arguments": {"start_time": s, "end_time": e}}</tool_call>, '
    '<tool_call>{"name": "get_frame", "arguments": {"timestamp": t}}</tool_call> or <answer>...</answer>.'
)

#: Special tokens of the tiny tokenizer, in id order after the 256 byte symbols.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
)

#: Qwen-style chat template: one ``<|im_start|>role ... <|im_end|>`` block per message, text blocks as
#: text, each image or video as ``<|vision_start|><|image_pad|>/<|video_pad|><|vision_end|>`` (the
#: processor expands the pad to one token per merged patch), blocks separated by newlines. Tool
#: responses arrive as user messages (see medscope_gym.chat). No default system prompt is injected,
#: so the rendering of a conversation is a prefix of the rendering of any continuation of it.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for block in message['content'] -%}"
    "{%- if not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{%- if block['type'] == 'text' -%}{{- block['text'] -}}"
    "{%- elif block['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif block['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass
class TinyModelConfig:
    """Sizes of the tiny model (defaults verified to load and generate on CPU; see docs/agents.md)."""

    text_hidden: int = 64
    """Width of the language model."""
    text_layers: int = 2
    """Decoder layers."""
    text_heads: int = 4
    """Attention heads (2 key/value heads, grouped-query attention as in Qwen2.5)."""
    text_intermediate: int = 256
    """MLP width of the language model."""
    vision_depth: int = 2
    """Vision transformer blocks."""
    vision_hidden: int = 32
    """Width of the vision transformer."""
    vision_heads: int = 2
    """Vision attention heads."""
    patch_size: int = 14
    """Pixels per patch side (Qwen2.5-VL: 14)."""
    spatial_merge_size: int = 2
    """Patches merged per side into one language token (Qwen2.5-VL: 2)."""
    temporal_patch_size: int = 2
    """Frames per temporal patch (Qwen2.5-VL: 2)."""
    tokens_per_second: int = 2
    """Temporal rope positions per second of video (Qwen2.5-VL: 2): how real timestamps reach the model."""
    mrope_section: tuple[int, int, int] | None = None
    """Rotary dimensions for time, height, width (sum: half the head dimension); None splits the half
    1/4 : 3/8 : 3/8, which gives Qwen's [2, 3, 3] ratio and (2, 3, 3) at the default sizes."""
    min_pixels: int = 28 * 28
    """Smallest frame the processors produce (one merged patch)."""
    max_pixels: int = 56 * 56
    """Largest frame the processors produce; frames are resized down to this (4 tokens per frame pair)."""
    max_position_embeddings: int = 32768
    """Longest sequence the rope is set up for."""
    text_kv_heads: int = 2
    """Key/value heads of the language model (grouped-query attention)."""
    vision_intermediate: int | None = None
    """MLP width of the vision blocks (None: twice ``vision_hidden``)."""
    vision_window: int | None = None
    """Window-attention size of the vision tower in pixels (None: two merged patches)."""
    vision_full_attention: tuple[int, ...] | None = None
    """Vision blocks with full attention (None: the last one)."""
    padded_vocab: int | None = None
    """Embedding rows when larger than the tokenizer (a real checkpoint's vocabulary size)."""
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0
    vocab_size: int = 1024
    """Upper bound of the tokenizer's vocabulary: special tokens, 256 bytes, then BPE merges learned from
    the protocol corpus (it saturates below 800). 0: bytes only (one token per byte, no merges)."""
    seed: int = 0
    """Seed of the random initialisation."""


def tiny_policy_config():
    """Frame budget and prompt the tiny checkpoint is used with (saved as its medscope_policy.json)."""
    return VLMPolicyConfig(
        frames=FrameConfig(max_pixels=56 * 56, max_preview_frames=16, max_crop_frames=8, max_images=3),
        sampling=SamplingConfig(max_new_tokens=320),
        system_prompt=TINY_SYSTEM_PROMPT,
    )


def build_tokenizer(vocab_size: int = 1024):
    """Byte-level BPE plus :data:`SPECIAL_TOKENS`; merges from the protocol corpus unless ``vocab_size`` 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if vocab_size > 0:
        core = train_vocabulary(
            protocol_corpus(system_prompts=[TINY_SYSTEM_PROMPT]), vocab_size, SPECIAL_TOKENS
        )
    else:
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
        core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        core.decoder = decoders.ByteLevel()
        core.add_special_tokens(list(SPECIAL_TOKENS))  # ids 256, 257, ... in SPECIAL_TOKENS order
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS),
        model_max_length=1_000_000,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def build_processor(cfg: TinyModelConfig | None = None):
    """The Qwen2.5-VL processor around :func:`build_tokenizer`, with :data:`CHAT_TEMPLATE`."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    cfg = cfg or TinyModelConfig()
    common: dict[str, Any] = dict(
        patch_size=cfg.patch_size,
        merge_size=cfg.spatial_merge_size,
        temporal_patch_size=cfg.temporal_patch_size,
        size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels},
    )
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        video_processor=Qwen2VLVideoProcessor(**common, cap_pixels_per_frame=False),
        tokenizer=build_tokenizer(cfg.vocab_size),
        chat_template=CHAT_TEMPLATE,
    )


def build_model(tokenizer, cfg: TinyModelConfig, device: str | None = None, dtype: str | None = None):
    """A randomly initialised Qwen2.5-VL model whose special-token ids match ``tokenizer``.

    ``device`` / ``dtype`` ("bfloat16") build it in place, e.g. a real-size architecture on a GPU.
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    half = cfg.text_hidden // cfg.text_heads // 2
    mrope = cfg.mrope_section or (
        half // 4,
        (half - half // 4) // 2,
        half - half // 4 - (half - half // 4) // 2,
    )
    if sum(mrope) != half:
        raise ValueError(f"mrope_section {mrope} must sum to half the head dim ({half})")
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=max(len(tokenizer), cfg.padded_vocab or 0),
            hidden_size=cfg.text_hidden,
            intermediate_size=cfg.text_intermediate,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=cfg.text_heads,
            num_key_value_heads=cfg.text_kv_heads,
            tie_word_embeddings=cfg.tie_word_embeddings,
            max_position_embeddings=cfg.max_position_embeddings,
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
            rope_parameters={
                "rope_type": "default",
                "rope_theta": cfg.rope_theta,
                "mrope_section": list(mrope),
            },
        ),
        vision_config=dict(
            depth=cfg.vision_depth,
            hidden_size=cfg.vision_hidden,
            intermediate_size=cfg.vision_intermediate or 2 * cfg.vision_hidden,
            num_heads=cfg.vision_heads,
            patch_size=cfg.patch_size,
            spatial_merge_size=cfg.spatial_merge_size,
            temporal_patch_size=cfg.temporal_patch_size,
            tokens_per_second=cfg.tokens_per_second,
            out_hidden_size=cfg.text_hidden,
            window_size=cfg.vision_window or cfg.patch_size * cfg.spatial_merge_size * 2,
            fullatt_block_indexes=list(cfg.vision_full_attention or [cfg.vision_depth - 1]),
        ),
        tie_word_embeddings=cfg.tie_word_embeddings,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(cfg.seed)
    with torch.device(device or "cpu"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["</tool_call>"], ids["</answer>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    return model.eval()


def build_tiny_model(out_dir: str | Path, cfg: TinyModelConfig | None = None) -> Path:
    """Write a loadable tiny checkpoint (model, tokenizer, processor) to ``out_dir``, atomically."""
    cfg = cfg or TinyModelConfig()
    processor = build_processor(cfg)
    model = build_model(processor.tokenizer, cfg)
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        save_tiny_settings(tmp, cfg)
    return out


def save_tiny_settings(directory: str | Path, cfg: TinyModelConfig) -> None:
    """Write the tiny model's description (``medscope_tiny.json``) and its policy settings
    (``medscope_policy.json``) into a checkpoint folder being written."""
    import json

    (Path(directory) / "medscope_tiny.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    tiny_policy_config().save(directory)
