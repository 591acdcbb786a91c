"""Turn generation for :class:`~medscope_gym.agents.vlm.policy.HFVLMPolicy`: full recompute or KV-cache reuse.

Both implement :class:`medscope_gym.agents.rollout.generation.TurnGenerator`:

- :class:`FullContextGenerator` (``reuse_cache=False``): every turn, one batched ``model.generate`` over
  each episode's whole context, left-padded, with the pixels of every chunk so far. Each turn re-runs the
  preview through the vision tower and the language model; the cost of a turn grows with all earlier ones.
- :class:`CachedGenerator` (``reuse_cache=True``, the default): each running episode keeps its KV cache
  between turns; a turn feeds only the tokens not yet in the cache (the previous turn's last sampled token
  and the new observation chunk, whose frames alone go through the vision tower), then decodes token by
  token with its own loop. Rows of the batch have different cached lengths and chunk lengths.

**Layout.** The cache is kept per episode, as a list of segments (per layer, key and value tensors of
shape ``(kv_heads, length, head_dim)``): one segment per prefill and per turn's decoded tokens. A turn
builds one batch from them: every row's past left-padded to the longest, its new tokens left-padded to the
longest chunk, a boolean 4-D attention mask (padding never attended; a padding query attends to itself
only, so no softmax row is empty) and explicit 3-D M-RoPE position ids. Decoding appends one column per
step; a row that reaches a stop token (or the token cap) leaves the batch at once and its new segments
are cut out (padding dropped). Per-episode storage makes freeing a finished episode and sharing a prefix
trivial, and costs one copy of the pasts into the batch per turn (cheap next to a forward); one
persistent padded batch would need re-padding whenever a slot is reset to a new episode.

**Positions.** Qwen2-VL / Qwen2.5-VL place a sequence with ``get_rope_index``: text advances by one,
a video or image block takes its (t, h, w) grid positions offset by the current position. That is
translation invariant, so the uncached tokens (which always start with text or a whole chunk) are placed
by ``get_rope_index`` on those tokens alone, plus the position the cached prefix ends at; the position
after a chunk is read off one trailing text token. Decoded tokens continue one by one from there. This is
exactly where a full recompute of the whole sequence puts every token (tests/agents/vlm/test_cache_reuse.py).

**Shared prefixes.** Fresh episodes whose first chunk is the same object (the encoder hands identical
observations, e.g. the G resets of a GA-GRPO group, the same processed chunk) are prefilled once: the
vision tower and the language model see the preview once per group and the rows share the segment.

**Sampling.** Suppressed tokens are masked, then temperature, top-k and top-p are applied as transformers'
logits processors do, and a token drawn with ``torch.multinomial`` from torch's global generator (seeded
by the caller); temperature 0 is greedy. Behaviour log-probs are :func:`token_logprobs` of the raw logits,
as on the ``generate`` path.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from medscope_gym.agents.rollout.batching import VISION_KEYS, collate
from medscope_gym.agents.rollout.generation import TurnOutput, TurnRequest
from medscope_gym.agents.vlm.sampling import SamplingConfig, token_logprobs

__all__ = ["CachedGenerator", "FullContextGenerator", "sample_next"]

#: Attention implementations the cached path can give a 4-D mask to.
MASKABLE_ATTENTION = ("sdpa", "eager")
#: Model families whose rope placement the cached path reproduces (checked against a full recompute).
CACHED_MODEL_TYPES = ("qwen2_5_vl",)


class FullContextGenerator:
    """One batched ``model.generate`` over each whole context, every turn (no state between turns)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def generate(self, requests: Sequence[TurnRequest]) -> list[TurnOutput]:
        return self.generate_full([r.token_ids for r in requests], [r.vision for r in requests])

    def release(self, slot: int) -> None:
        pass

    def generate_full(
        self, token_ids: Sequence[Sequence[int]], vision: Sequence[Sequence[dict[str, Any]]]
    ) -> list[TurnOutput]:
        import torch
        from transformers import GenerationConfig

        p = self.policy
        s = p.config.sampling
        batch = collate(
            [list(t) for t in token_ids],
            list(vision),
            pad_id=p.pad_id,
            image_token_id=p.encoder.image_token_id,
            video_token_id=p.encoder.video_token_id,
            padding_side="left",
            device=p.device,
        )
        sampling = {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k} if not s.greedy else {}
        gen = GenerationConfig(
            do_sample=not s.greedy,
            **sampling,
            max_new_tokens=s.max_new_tokens,
            eos_token_id=sorted(p.stop_ids),
            pad_token_id=p.pad_id,
            suppress_tokens=p.suppressed_ids or None,
            repetition_penalty=1.0,
            output_logits=True,
            return_dict_in_generate=True,
        )
        with torch.no_grad():
            out = p.model.generate(**batch, generation_config=gen)
        width = batch["input_ids"].shape[1]
        new = out.sequences[:, width:]
        logits = torch.stack(out.logits, dim=1)
        logps = token_logprobs(logits, new, s.temperature, p.suppressed_ids).cpu()
        new = new.cpu()
        produced = []
        for row in range(new.shape[0]):
            ids = new[row].tolist()
            stop_at = next((k for k, t in enumerate(ids) if t in p.stop_ids), None)
            keep = len(ids) if stop_at is None else stop_at + 1
            finish = "stop" if stop_at is not None else "length"
            produced.append(TurnOutput(ids[:keep], logps[row, :keep].tolist(), finish))
        return produced


def sample_next(logits, sampling: SamplingConfig, suppressed_ids: Sequence[int]):
    """Next token per row of ``logits`` (B, V): suppression, temperature, top-k, top-p, then a draw.

    The order and the top-k/top-p rules are those of transformers' logits processors; temperature <= 0
    takes the argmax.
    """
    import torch

    scores = logits.float().clone()
    if len(suppressed_ids):
        scores[:, list(suppressed_ids)] = float("-inf")
    if sampling.greedy:
        return scores.argmax(dim=-1)
    scores = scores / sampling.temperature
    if sampling.top_k > 0:
        k = min(sampling.top_k, scores.shape[-1])
        kth = torch.topk(scores, k).values[..., -1, None]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - sampling.top_p)
        remove[..., -1:] = False
        scores = scores.masked_fill(remove.scatter(1, order, remove), float("-inf"))
    return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)


def _attention(model: Any) -> str:
    return getattr(model.config.get_text_config(), "_attn_implementation", None) or "eager"


@dataclass
class _Segment:
    """A run of cached tokens: per layer, keys and values of shape (kv_heads, length, head_dim)."""

    keys: list[Any]
    values: list[Any]

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[1])


@dataclass
class _EpisodeCache:
    segments: list[_Segment] = field(default_factory=list)
    length: int = 0
    """Tokens of the episode's sequence held in the cache (always a prefix)."""
    next_pos: int = 0
    """Rope position of token ``length`` (a text token or the start of a chunk)."""


@dataclass
class _Row:
    """One row of a prefill batch: a fresh or continuing episode, its uncached tokens and their vision."""

    past: _EpisodeCache
    new_ids: list[int]
    vision: list[dict[str, Any]]
    positions: Any = None
    """(3, n) rope positions of ``new_ids``."""
    next_pos: int = 0
    """Rope position right after ``new_ids``."""
    prompt: _Segment | None = None
    """The cached keys/values of ``new_ids`` once prefilled."""


class CachedGenerator:
    """Per-episode KV caches reused across turns; batched prefill of new chunks and a batched decode loop."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self._episodes: dict[int, _EpisodeCache] = {}
        model = policy.model
        reason = self.unsupported(model)
        if reason:
            raise ValueError(f"KV-cache reuse: {reason}; set reuse_cache: false")
        self._core = next(m for m in model.modules() if hasattr(m, "get_rope_index"))
        self._additive = _attention(model) == "eager"
        self._dtype = next(model.parameters()).dtype
        forward = inspect.signature(type(self._core).forward).parameters
        self._cache_kw = "cache" if "cache" in forward else "past_key_values"
        self.stats = {"prefill_tokens": 0, "shared_rows": 0, "decode_steps": 0}

    @staticmethod
    def unsupported(model: Any) -> str | None:
        """Why ``model`` cannot use the cached path (None: it can)."""
        kind = getattr(model.config, "model_type", None)
        if kind not in CACHED_MODEL_TYPES:
            return f"model type {kind!r} is not in {CACHED_MODEL_TYPES} (its rope placement is unchecked)"
        if _attention(model) not in MASKABLE_ATTENTION:
            return f"attention {_attention(model)!r} takes no 4-D mask (sdpa or eager do)"
        if not any(hasattr(m, "get_rope_index") for m in model.modules()):
            return "the model has no get_rope_index"
        return None

    # ---------------------------------------------------------------- TurnGenerator
    def release(self, slot: int) -> None:
        self._episodes.pop(slot, None)

    def cached_tokens(self, slot: int) -> int:
        """Tokens of ``slot``'s episode held in its cache (0 when none)."""
        ep = self._episodes.get(slot)
        return 0 if ep is None else ep.length

    @property
    def slots(self) -> list[int]:
        """Slots that hold a cache."""
        return sorted(self._episodes)

    def generate(self, requests: Sequence[TurnRequest]) -> list[TurnOutput]:
        import torch

        if not requests:
            return []
        with torch.no_grad():
            rows, row_of = self._rows(requests)
            cache, valid, logits = self._prefill(rows)
            if len(rows) < len(requests):  # shared prefixes: one prefilled row per group, expanded
                index = torch.as_tensor(row_of, device=valid.device)
                cache.batch_select_indices(index)
                valid, logits = valid[index], logits[index]
            return self._decode(requests, [rows[u] for u in row_of], cache, valid, logits)

    # ---------------------------------------------------------------- prefill
    def _rows(self, requests: Sequence[TurnRequest]) -> tuple[list[_Row], list[int]]:
        rows: list[_Row] = []
        shared: dict[tuple, int] = {}
        row_of = []
        for req in requests:
            past = self._episodes.get(req.slot) or _EpisodeCache()
            if past.length > len(req.token_ids):
                past = _EpisodeCache()  # a new episode in a slot that was not released
            new_ids = list(req.token_ids[past.length :])
            if not new_ids:
                raise ValueError(f"slot {req.slot}: no new tokens to feed (the turn must end with a chunk)")
            vision = [v for start, v in zip(req.chunk_starts, req.vision) if start >= past.length]
            key = (tuple(new_ids), tuple(id(v) for v in vision)) if past.length == 0 else None
            if key is not None and key in shared:
                row_of.append(shared[key])
                self.stats["shared_rows"] += 1
                continue
            if key is not None:
                shared[key] = len(rows)
            row_of.append(len(rows))
            row = _Row(past, new_ids, vision)
            row.positions, advance = self._positions(new_ids, vision)
            row.positions = row.positions + past.next_pos
            row.next_pos = past.next_pos + advance
            rows.append(row)
        return rows, row_of

    def _positions(self, ids: list[int], vision: list[dict[str, Any]]):
        """(3, n) rope positions of ``ids`` from 0, and the position a following text token would take."""
        import torch

        n = len(ids)
        if not any(("video_grid_thw" in v or "image_grid_thw" in v) for v in vision):
            return torch.arange(n).view(1, -1).expand(3, -1), n
        p = self.policy
        seq = torch.as_tensor([*ids, p.pad_id], dtype=torch.long).view(1, -1)
        mm = (seq == p.encoder.image_token_id).long() + 2 * (seq == p.encoder.video_token_id).long()
        kwargs: dict[str, Any] = {}
        for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts"):
            parts = [torch.as_tensor(v[key]) for v in vision if key in v]
            if parts:
                kwargs[key] = torch.cat(parts, dim=0)
        positions, _ = self._core.get_rope_index(seq, mm_token_type_ids=mm, **kwargs)
        positions = positions[:, 0].cpu()
        return positions[:, :n], int(positions[0, n])

    def _prefill(self, rows: list[_Row]):
        """Run each row's uncached tokens after its cached past: (batched cache, key validity, logits)."""
        import torch
        from transformers import DynamicCache

        p = self.policy
        device, dtype = p.device, self._dtype
        B = len(rows)
        P = max(r.past.length for r in rows)
        N = max(len(r.new_ids) for r in rows)
        valid = torch.zeros((B, P + N), dtype=torch.bool)
        input_ids = torch.full((B, N), p.pad_id, dtype=torch.long)
        positions = torch.zeros((3, B, N), dtype=torch.long)
        for b, r in enumerate(rows):
            n = len(r.new_ids)
            valid[b, P - r.past.length : P] = True
            valid[b, P + N - n :] = True
            input_ids[b, N - n :] = torch.as_tensor(r.new_ids)
            positions[:, b, N - n :] = r.positions
        cache = DynamicCache()
        if P > 0:
            cache = DynamicCache(ddp_cache_data=self._batched_past(rows, P))
        causal = torch.ones((N, P + N), dtype=torch.bool)
        causal[:, P:] = torch.tril(causal[:, P:])
        mask = valid[:, None, :] & causal[None]
        pad_query = ~valid[:, P:]
        if bool(pad_query.any()):  # a padding query attends to itself only (no empty softmax row)
            b_idx, q_idx = torch.nonzero(pad_query, as_tuple=True)
            mask[b_idx, q_idx] = False
            mask[b_idx, q_idx, P + q_idx] = True
        inputs: dict[str, Any] = {}
        for key in VISION_KEYS:
            parts = [torch.as_tensor(v[key]) for r in rows for v in r.vision if key in v]
            if parts:
                inputs[key] = torch.cat(parts, dim=0).to(device)
        out = p.model(
            input_ids=input_ids.to(device),
            attention_mask=self._mask(mask[:, None].to(device), dtype),
            position_ids=positions.to(device),
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: cache},
            **inputs,
        )
        self.stats["prefill_tokens"] += sum(len(r.new_ids) for r in rows)
        # the new tokens' keys/values, padding dropped: one segment per prefilled row (shared by its group)
        new_valid = valid[:, P:].to(device)
        for b, r in enumerate(rows):
            sel = new_valid[b]
            r.prompt = _Segment(
                [layer.keys[b][:, P:][:, sel] for layer in cache.layers],
                [layer.values[b][:, P:][:, sel] for layer in cache.layers],
            )
        return cache, valid.to(device), out.logits[:, -1, :]

    @staticmethod
    def _batched_past(rows: list[_Row], P: int) -> list[tuple[Any, Any]]:
        import torch

        first = next(r.past.segments[0] for r in rows if r.past.segments)
        layers = []
        for layer in range(len(first.keys)):
            like = first.keys[layer]
            keys = like.new_zeros((len(rows), like.shape[0], P, like.shape[2]))
            values = torch.zeros_like(keys)
            for b, r in enumerate(rows):
                at = P - r.past.length
                for seg in r.past.segments:
                    n = seg.length
                    keys[b, :, at : at + n] = seg.keys[layer]
                    values[b, :, at : at + n] = seg.values[layer]
                    at += n
            layers.append((keys, values))
        return layers

    def _mask(self, mask, dtype):
        """The boolean mask as the attention implementation takes it ({"full_attention": 4-D mask})."""
        import torch

        if self._additive:
            zero = torch.zeros((), dtype=dtype, device=mask.device)
            mask = torch.where(mask, zero, torch.finfo(dtype).min)
        return {"full_attention": mask}

    # ---------------------------------------------------------------- decode
    def _decode(self, requests, rows: list[_Row], cache, valid, logits) -> list[TurnOutput]:
        import torch

        p = self.policy
        s = p.config.sampling
        device = valid.device
        stop = torch.as_tensor(sorted(p.stop_ids), device=device)
        width = valid.shape[1]  # decoded tokens' keys start here in the batched cache
        active = list(range(len(requests)))
        ids: list[list[int]] = [[] for _ in requests]
        logps: list[list[float]] = [[] for _ in requests]
        outputs: list[TurnOutput | None] = [None] * len(requests)
        while True:
            tokens = sample_next(logits, s, p.suppressed_ids)
            lp = token_logprobs(logits, tokens, s.temperature, p.suppressed_ids).tolist()
            stopped = torch.isin(tokens, stop).tolist()
            token_list = tokens.tolist()
            keep = []
            for b, i in enumerate(active):
                ids[i].append(token_list[b])
                logps[i].append(lp[b])
                done = stopped[b] or len(ids[i]) >= s.max_new_tokens
                if done:
                    outputs[i] = TurnOutput(ids[i], logps[i], "stop" if stopped[b] else "length")
                    self._store(requests[i].slot, rows[i], cache, b, width)
                else:
                    keep.append(b)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.as_tensor(keep, device=device)
                cache.batch_select_indices(index)
                valid, tokens = valid[index], tokens[index]
                active = [active[b] for b in keep]
            fed = len(ids[active[0]])  # tokens generated so far by every active row; the last is fed now
            position = torch.as_tensor([rows[i].next_pos + fed - 1 for i in active], device=device)
            valid = torch.cat([valid, torch.ones((len(active), 1), dtype=torch.bool, device=device)], dim=1)
            out = p.model(
                input_ids=tokens.view(-1, 1),
                attention_mask=self._mask(valid[:, None, None, :], self._dtype),
                position_ids=position.view(1, -1, 1).expand(3, -1, -1),
                use_cache=True,
                **{self._cache_kw: cache},
            )
            logits = out.logits[:, -1, :]
            self.stats["decode_steps"] += 1
        return outputs

    def _store(self, slot: int, row: _Row, cache, b: int, width: int) -> None:
        """Keep the finished row's cache: its past, its prompt segment, and its fed decoded tokens."""
        fed = cache.layers[0].keys.shape[2] - width  # decoded tokens in the cache (all but the last sampled)
        segments = [*row.past.segments, row.prompt]
        if fed > 0:
            segments.append(
                _Segment(
                    [layer.keys[b, :, width:].clone() for layer in cache.layers],
                    [layer.values[b, :, width:].clone() for layer in cache.layers],
                )
            )
        self._episodes[slot] = _EpisodeCache(
            segments=segments,
            length=row.past.length + len(row.new_ids) + fed,
            next_pos=row.next_pos + fed,
        )
