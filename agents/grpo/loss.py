"""The GA-GRPO objective: a PPO-clipped surrogate over the policy's own tokens, plus an optional k3 KL.

All tensors are ``(B, T)`` and aligned on *target* positions: ``logp[b, t]`` is the learner's log-prob
of token t of trajectory b, ``old_logp`` the behaviour log-prob recorded when it was sampled, ``mask``
1 exactly on the policy's own tokens (prompts, tool responses and vision placeholders are 0), and
``advantages`` one value per trajectory, broadcast over its tokens.

The loss is a token mean: the per-token terms are summed over every masked token of the minibatch and
divided by ``num_tokens``, the number of masked tokens in the whole minibatch (not per micro-batch, so
gradient accumulation gives the same gradient as one big batch, and a long trajectory weighs by its
length as in DAPO-style token-level averaging).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SurrogateTerms", "k3_kl", "clipped_surrogate"]


@dataclass
class SurrogateTerms:
    """Sums over the masked tokens of one micro-batch (divide by the minibatch's token count)."""

    loss: object
    """Differentiable sum of −min(r·A, clip(r)·A) (+ kl_coef · k3) over masked tokens."""
    clipped: float
    """Masked tokens whose clipped term was the active one."""
    ratio: float
    """Sum of the ratios r over masked tokens."""
    kl: float
    """Sum of the k3 KL estimates against the reference over masked tokens (0 when none is given)."""
    kl_behaviour: float
    """Sum of k3 estimates of KL(π‖π_behaviour) over masked tokens: how far the update moved the policy."""
    tokens: int


def k3_kl(logp, ref_logp):
    """Per-token k3 estimate of KL(π‖π_ref): exp(ref − logp) − (ref − logp) − 1 (≥ 0, unbiased)."""
    import torch

    delta = (ref_logp - logp).clamp(-20.0, 20.0)
    return torch.exp(delta) - delta - 1.0


def clipped_surrogate(
    logp,
    old_logp,
    advantages,
    mask,
    *,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    ref_logp=None,
    kl_coef: float = 0.0,
) -> SurrogateTerms:
    """Sum over masked tokens of the negated PPO-clip objective (and the KL penalty when asked)."""
    import torch

    mask = mask.to(logp.dtype)
    adv = torch.as_tensor(advantages, dtype=logp.dtype, device=logp.device).reshape(-1, 1)
    ratio = torch.exp((logp - old_logp).clamp(-20.0, 20.0))
    high = clip_eps if clip_eps_high is None else clip_eps_high
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    kl_sum = 0.0
    if ref_logp is not None:
        kl = k3_kl(logp, ref_logp)
        if kl_coef > 0:
            per_token = per_token + kl_coef * kl
        kl_sum = float((kl.detach() * mask).sum())
    active_clip = (clipped < unclipped).to(logp.dtype) * mask
    return SurrogateTerms(
        loss=(per_token * mask).sum(),
        clipped=float(active_clip.sum()),
        ratio=float((ratio.detach() * mask).sum()),
        kl=kl_sum,
        kl_behaviour=float((k3_kl(logp.detach(), old_logp) * mask).sum()),
        tokens=int(mask.sum()),
    )
