"""VLM policies that keep the exact tokens of every turn: a transformers model, and reference text.

Both follow :class:`medscope_gym.agents.policy.Policy` (batches of slots, env observations in, assistant text
out)
and additionally hand over, per finished episode, the
:class:`~medscope_gym.agents.rollout.trajectory.TurnRecord` list
with the token chunks they fed and produced (:meth:`TokenRecordingPolicy.take_turns`):

- :class:`HFVLMPolicy`: a Qwen2-VL / Qwen2.5-VL (Qwen3-VL where its processor accepts the same
  inputs) checkpoint loaded with ``from_pretrained``; batched sampling, by default with each episode's
  KV cache kept across turns (:mod:`medscope_gym.agents.vlm.generation`, ``reuse_cache``); each turn
  stops on a stop token (``</tool_call>``, ``</answer>``, ``<|im_end|>``), and the text sent to the env
  is the decode of exactly the sampled ids, which stay in the episode's sequence as sampled.
- :class:`ReferencePolicy`: wraps a text policy (the oracle) and tokenises its turns the same way, so
  SFT data are real env rollouts laid out exactly as the model will see them at evaluation.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medscope_gym.agents.policy import Policy
from medscope_gym.agents.rollout.generation import TurnGenerator, TurnRequest
from medscope_gym.agents.rollout.trajectory import MediaInputs, TurnRecord
from medscope_gym.agents.vlm.encoding import ChatEncoder, EpisodeContext, FrameConfig, ObservationChunk
from medscope_gym.agents.vlm.sampling import SamplingConfig
from medscope_gym.atomic import atomic_write_text
from medscope_gym.suite import Sample

__all__ = [
    "POLICY_CONFIG_FILE",
    "HFVLMPolicy",
    "ReferencePolicy",
    "TokenRecordingPolicy",
    "VLMPolicyConfig",
    "reference_turn",
    "resolve_device",
]

#: Written next to a checkpoint: the frame budget and system prompt the model was trained with.
POLICY_CONFIG_FILE = "medscope_policy.json"


@dataclass
class VLMPolicyConfig:
    """How a VLM policy sees episodes and samples turns."""

    frames: FrameConfig = field(default_factory=FrameConfig)
    """Frame caps and per-frame pixel budget (see :class:`medscope_gym.agents.vlm.encoding.FrameConfig`)."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Temperature, top-p/k, max tokens per turn, stop and suppressed tokens."""
    system_prompt: str | None = None
    """None: the protocol's SYSTEM_PROMPT (tool schemas and reply format)."""
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ..."""
    dtype: str = "auto"
    """"auto" (bfloat16 on CUDA, float32 on CPU), "bfloat16" or "float32"."""
    seed: int | None = None
    """Seeds torch's generator when the policy is built (reproducible sampling on one device)."""
    reuse_cache: bool = True
    """Keep each running episode's KV cache across turns and feed only the new tokens
    (:class:`~medscope_gym.agents.vlm.generation.CachedGenerator`); False: ``generate`` over the whole
    context every turn (:class:`~medscope_gym.agents.vlm.generation.FullContextGenerator`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": asdict(self.frames),
            "sampling": self.sampling.to_dict(),
            "system_prompt": self.system_prompt,
            "device": self.device,
            "dtype": self.dtype,
            "seed": self.seed,
            "reuse_cache": self.reuse_cache,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VLMPolicyConfig:
        data = dict(data)
        frames = FrameConfig(**data.pop("frames", {}))
        sampling = SamplingConfig.from_dict(data.pop("sampling", {}))
        return cls(frames=frames, sampling=sampling, **data)

    def save(self, directory: str | Path) -> None:
        atomic_write_text(Path(directory) / POLICY_CONFIG_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> VLMPolicyConfig | None:
        path = Path(directory) / POLICY_CONFIG_FILE
        return cls.from_dict(json.loads(path.read_text())) if path.exists() else None


def resolve_device(device: str = "auto", dtype: str = "auto"):
    """(torch.device, torch.dtype) for a device/dtype setting: bf16 on CUDA, fp32 on CPU by default."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dtype == "auto":
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        dt = {
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float32": torch.float32,
            "fp32": torch.float32,
            "float16": torch.float16,
        }[dtype]
    return dev, dt


@dataclass
class _Slot:
    ctx: EpisodeContext
    token_ids: list[int] = field(default_factory=list)
    vision: list[dict[str, Any]] = field(default_factory=list)
    chunk_starts: list[int] = field(default_factory=list)
    media: list[MediaInputs] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    pending: ObservationChunk | None = None


class TokenRecordingPolicy(Policy):
    """A policy whose turns are token ids appended to one running sequence per episode (slot)."""

    records_turns = True

    def __init__(self, encoder: ChatEncoder) -> None:
        self.encoder = encoder
        self._slots: dict[int, _Slot] = {}

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        if slot in self._slots:  # a slot handed a new episode before its last one was taken
            self._release(slot)
        state = _Slot(ctx=self.encoder.start())
        state.pending = self.encoder.encode_observation(state.ctx, obs)
        self._slots[slot] = state

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        chunks = []
        for slot, obs in zip(slots, observations):
            state = self._slots[slot]
            if state.pending is None:  # the observation the env returned for the previous action
                state.pending = self.encoder.encode_observation(state.ctx, obs)
            chunk = state.pending
            state.chunk_starts.append(len(state.token_ids))
            state.token_ids += chunk.token_ids
            state.vision.append(chunk.vision)
            state.media.append(chunk.media)
            chunks.append(chunk)
        produced = self._produce(slots, observations, infos)
        texts = []
        for slot, chunk, (ids, logprobs, finish, text) in zip(slots, chunks, produced):
            state = self._slots[slot]
            state.token_ids += ids
            state.pending = None
            self.encoder.add_action(state.ctx, text)
            state.turns.append(
                TurnRecord(
                    observation_text=chunk.text,
                    action_text=text,
                    prompt_ids=list(chunk.token_ids),
                    action_ids=ids,
                    action_logprobs=logprobs,
                    finish=finish,
                    media=chunk.media,
                    vision=chunk.vision,
                    video_grid_thw=_as_lists(chunk.vision.get("video_grid_thw")),
                    image_grid_thw=_as_lists(chunk.vision.get("image_grid_thw")),
                    second_per_grid_ts=_as_floats(chunk.vision.get("second_per_grid_ts")),
                )
            )
            texts.append(text)
        return texts

    def take_turns(self, slot: int) -> list[TurnRecord]:
        """The finished episode's turn records (the slot is freed)."""
        state = self._slots.pop(slot)
        self._release(slot)
        return state.turns

    def _release(self, slot: int) -> None:
        """The episode in ``slot`` is over: drop whatever the policy kept for it beyond its turns."""

    @abc.abstractmethod
    def _produce(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[tuple[list[int], list[float] | None, str, str]]:
        """(token ids, log-probs, finish, text) of the next turn of each slot; contexts are up to date."""


class ReferencePolicy(TokenRecordingPolicy):
    """Tokenises the turns of a text policy (e.g. the oracle) as if the model had produced them."""

    def __init__(self, inner: Policy, encoder: ChatEncoder) -> None:
        super().__init__(encoder)
        self.inner = inner
        self.name = f"reference:{inner.name}"
        self.uses_ground_truth = inner.uses_ground_truth

    def begin(
        self, slot: int, obs: dict[str, Any], info: dict[str, Any], sample: Sample | None = None
    ) -> None:
        super().begin(slot, obs, info, sample)
        self.inner.begin(slot, obs, info, sample)

    def act(
        self, slots: Sequence[int], observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        texts = super().act(slots, observations, infos)
        for slot in slots:  # a reference policy may flag its deliberate mistakes
            self._slots[slot].turns[-1].imitate = bool(self.inner.imitate_last(slot))
        return texts

    def _produce(self, slots, observations, infos):
        return [reference_turn(self.encoder, text) for text in self.inner.act(slots, observations, infos)]


def reference_turn(encoder: ChatEncoder, text: str) -> tuple[list[int], None, str, str]:
    """A reference text turn as the token chunk the model would have produced (checked to round-trip)."""
    ids = encoder.encode_reference_action(text)
    if encoder.tokenizer.decode(ids, skip_special_tokens=False) != text:
        raise ValueError(f"the tokenizer does not round-trip the reference turn {text[:80]!r}")
    return ids, None, "stop", text


class HFVLMPolicy(TokenRecordingPolicy):
    """A transformers vision-language model acting through the chat protocol."""

    name = "hf_vlm"

    def __init__(
        self, model: Any, processor: Any, config: VLMPolicyConfig | None = None, label: str = "hf_vlm"
    ):
        import torch
        from transformers import GenerationConfig

        from medscope_gym.agents.vlm.generation import CachedGenerator, FullContextGenerator

        self.config = config or VLMPolicyConfig()
        super().__init__(ChatEncoder(processor, self.config.frames, self.config.system_prompt))
        self.model = model.eval()
        self.processor = processor
        self._label = label
        tok = processor.tokenizer
        sampling = self.config.sampling
        self.stop_ids = {
            i
            for i in (tok.convert_tokens_to_ids(t) for t in sampling.stop_tokens)
            if i is not None and i != tok.unk_token_id
        }
        self.suppressed_ids = sorted(
            i
            for i in (tok.convert_tokens_to_ids(t) for t in sampling.suppressed_tokens)
            if i is not None and i != tok.unk_token_id
        )
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(self.stop_ids)
        # A clean generation config: the checkpoint's own defaults (repetition penalty, top-k, ...) would
        # otherwise be merged in and change the sampling distribution away from the recorded log-probs.
        self.model.generation_config = GenerationConfig(
            eos_token_id=sorted(self.stop_ids), pad_token_id=self.pad_id
        )
        if self.config.seed is not None:
            torch.manual_seed(self.config.seed)
        self.full_context = FullContextGenerator(self)
        # the cached path where its exactness is checked (Qwen2/2.5-VL, sdpa/eager); else full recompute
        reuse = self.config.reuse_cache and CachedGenerator.unsupported(self.model) is None
        self.generator: TurnGenerator = CachedGenerator(self) if reuse else self.full_context

    @property
    def label(self) -> str:
        return self._label

    def sampling_settings(self) -> dict[str, Any]:
        return self.config.sampling.to_dict()

    @classmethod
    def from_pretrained(
        cls, path: str | Path, config: VLMPolicyConfig | None = None, **overrides: Any
    ) -> HFVLMPolicy:
        """Load model and processor from a checkpoint folder; its medscope_policy.json supplies defaults."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        config = config or VLMPolicyConfig.load(path) or VLMPolicyConfig()
        for key, value in overrides.items():
            setattr(config, key, value)
        device, dtype = resolve_device(config.device, config.dtype)
        processor = AutoProcessor.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).to(device)
        return cls(model, processor, config, label=Path(path).name)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def _produce(self, slots, observations, infos):
        requests = [
            TurnRequest(slot, st.token_ids, st.chunk_starts, st.vision, st.media)
            for slot, st in ((slot, self._slots[slot]) for slot in slots)
        ]
        return [self._turn(out) for out in self.generator.generate(requests)]

    def _release(self, slot: int) -> None:
        self.generator.release(slot)

    def generate_turns(
        self, token_ids: Sequence[list[int]], vision: Sequence[list[dict[str, Any]]]
    ) -> list[tuple[list[int], list[float], str, str]]:
        """One batched ``generate`` continuing each whole sequence: (ids, log-probs, finish, text) per row.

        Stateless (no cache kept): ``token_ids`` / ``vision`` are whole episode sequences so far (ending
        with an observation chunk) and their processor outputs, as :class:`TokenRecordingPolicy` keeps them.
        """
        return [self._turn(out) for out in self.full_context.generate_full(token_ids, vision)]

    def _turn(self, out) -> tuple[list[int], list[float], str, str]:
        text = self.processor.tokenizer.decode(out.token_ids, skip_special_tokens=False)
        return out.token_ids, out.logprobs, out.finish, text


def _as_lists(value: Any) -> list[list[int]]:
    return [] if value is None else [list(map(int, row)) for row in value.tolist()]


def _as_floats(value: Any) -> list[float]:
    return [] if value is None else [float(v) for v in value.reshape(-1).tolist()]
