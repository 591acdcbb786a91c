"""The PPO-clipped token-mean surrogate and the k3 KL against direct computations."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from medscope_gym.agents.grpo.loss import clipped_surrogate, k3_kl  # noqa: E402


def _direct(logp, old, adv, mask, eps_low, eps_high):
    """The objective written as a plain loop over tokens."""
    total, clipped = 0.0, 0
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if not mask[b, t]:
                continue
            r = math.exp(float(logp[b, t] - old[b, t]))
            a = float(adv[b])
            un, cl = r * a, min(max(r, 1 - eps_low), 1 + eps_high) * a
            total += -min(un, cl)
            clipped += cl < un
    return total, clipped


@pytest.mark.parametrize("eps_high", [None, 0.28])
def test_surrogate_matches_a_direct_computation(eps_high):
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(3, 7, generator=g, dtype=torch.float64) * 3
    old = logp + torch.randn(3, 7, generator=g, dtype=torch.float64) * 0.4  # ratios well outside 1 ± ε too
    mask = (torch.rand(3, 7, generator=g) > 0.3).long()
    adv = [1.5, -0.7, 0.2]
    terms = clipped_surrogate(logp, old, adv, mask, clip_eps=0.2, clip_eps_high=eps_high)
    total, clipped = _direct(logp, old, adv, mask, 0.2, 0.2 if eps_high is None else eps_high)
    assert float(terms.loss) == pytest.approx(total, rel=1e-12)
    assert terms.clipped == clipped and clipped > 0
    assert terms.tokens == int(mask.sum())


def test_masked_tokens_get_no_gradient_and_do_not_change_the_loss():
    g = torch.Generator().manual_seed(1)
    logp = (-torch.rand(2, 6, generator=g) * 2).requires_grad_()
    old = logp.detach().clone()
    mask = torch.tensor([[0, 0, 1, 1, 0, 1], [1, 0, 0, 1, 1, 0]])
    terms = clipped_surrogate(logp, old, [1.0, -2.0], mask)
    (terms.loss / terms.tokens).backward()
    grad = logp.grad
    assert torch.all(grad[mask == 0] == 0)
    # at ratio 1 the gradient is the policy gradient: -A / (number of masked tokens) on every masked token
    expected = torch.tensor([-1.0, 2.0]).reshape(2, 1).expand(2, 6) / terms.tokens
    torch.testing.assert_close(grad[mask == 1], expected[mask == 1])
    shifted = logp.detach().clone()
    shifted[mask == 0] += 5.0
    again = clipped_surrogate(shifted, old, [1.0, -2.0], mask)
    assert float(again.loss) == pytest.approx(float(terms.loss.detach()))


def test_k3_is_nonnegative_zero_on_equal_policies_and_enters_the_loss_weighted():
    g = torch.Generator().manual_seed(2)
    logp = -torch.rand(2, 5, generator=g, dtype=torch.float64)
    ref = logp + torch.randn(2, 5, generator=g, dtype=torch.float64) * 0.3
    kl = k3_kl(logp, ref)
    assert torch.all(kl >= 0)
    assert torch.all(k3_kl(logp, logp) == 0)
    d = ref - logp
    torch.testing.assert_close(kl, torch.exp(d) - d - 1)
    mask = torch.ones(2, 5)
    base = clipped_surrogate(logp, logp, [0.5, 0.5], mask)
    with_kl = clipped_surrogate(logp, logp, [0.5, 0.5], mask, ref_logp=ref, kl_coef=0.1)
    assert float(with_kl.loss - base.loss) == pytest.approx(0.1 * float(kl.sum()))
    assert with_kl.kl == pytest.approx(float(kl.sum()))
