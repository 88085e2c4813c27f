import pytest
import torch

from propetl_adapters.masks import TensorMask, kept_count, or_masks, straight_through_mask, topk_binary_mask


def test_kept_count_rounds_half_up_and_rejects_empty_masks():
    assert kept_count(0.5, 7) == 4  # 3.5 -> 4
    assert kept_count(0.1, 64 * 768) == 4915
    assert kept_count(1.0, 10) == 10
    with pytest.raises(ValueError, match="keeps 0 of the 10 entries of W_up"):
        kept_count(0.04, 10, "W_up")


def test_topk_keeps_exactly_the_largest_magnitudes_per_tensor():
    scores = torch.tensor([[0.1, -3.0, 0.2], [2.0, -0.05, 1.0]])
    mask = topk_binary_mask(scores, 3)
    assert mask.tolist() == [[0, 1, 0], [1, 0, 1]]


def test_straight_through_gradient_is_sign_of_score_times_the_gradient_of_the_mask():
    # Scores of both signs and one exact zero: h ranks |s|, so dL/ds = sign(s) * dL/dm, with sign(0) = +1.
    scores = torch.tensor([[0.5, -2.0, 0.0], [-0.1, 3.0, -0.7]], requires_grad=True)
    weight = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = straight_through_mask(scores, 3)
    assert mask.tolist() == [[0, 1, 0], [0, 1, 1]]
    (weight * mask).sum().backward()  # dL/dm = W
    assert scores.grad.tolist() == [[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]]


def _recovery_agreement(rule, steps=600, seed=0):
    """Train only the scores of one mask to reproduce x (W * m*)^T for a fixed W and a random target m*.

    ``rule`` builds the 0/1 mask from the scores; returns the fraction of entries where the learned mask equals m*.
    """
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(32, 64, generator=generator)
    target = topk_binary_mask(torch.rand(32, 64, generator=generator), kept_count(0.5, 32 * 64))
    mask = TensorMask((32, 64), 0.5, "learned")
    with torch.no_grad():
        mask.scores.copy_(torch.empty(32, 64).uniform_(-0.125, 0.125, generator=generator))
    optimizer = torch.optim.Adam(mask.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.randn(16, 64, generator=generator)
        loss = ((x @ (weight * rule(mask)).T - x @ (weight * target).T) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (mask.binary() == target).float().mean().item()


def test_a_learned_mask_recovers_a_known_sub_network():
    assert _recovery_agreement(lambda mask: mask(mask.scores)) >= 0.95


def test_the_recovery_check_fails_for_the_rule_that_ignores_the_sign():
    # The same training with dL/ds = dL/dm (the old, wrong rule) stays near chance: the check can fail.
    class SignBlind(torch.autograd.Function):
        @staticmethod
        def forward(ctx, scores, kept):
            return topk_binary_mask(scores, kept)

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    assert _recovery_agreement(lambda mask: SignBlind.apply(mask.scores, mask.kept)) < 0.8


def test_or_mask_forward_and_gradient_reach_both_masks():
    a = torch.tensor([1.0, 0.0, 1.0, 0.0], requires_grad=True)
    b = torch.tensor([1.0, 1.0, 0.0, 0.0], requires_grad=True)
    combined = or_masks(a, b)
    assert combined.tolist() == [1, 1, 1, 0]
    combined.sum().backward()
    assert a.grad.tolist() == [0, 0, 1, 1] and b.grad.tolist() == [0, 1, 0, 1]


def test_learned_mask_caches_in_eval_and_recomputes_after_an_update():
    mask = TensorMask((8, 8), 0.5, "learned").eval()
    with torch.no_grad():
        first = mask(torch.empty(0))
        assert mask(torch.empty(0)) is first  # cached: no new top-k
        mask.scores.mul_(-1).add_(torch.randn(8, 8))
        assert mask(torch.empty(0)) is not first
    assert int(mask(torch.empty(0)).sum()) == 32


def test_cache_is_dropped_when_training_resumes_even_if_the_version_does_not_change():
    mask = TensorMask((8, 8), 0.5, "learned").eval()
    cached = mask.binary()
    mask.train()
    with torch.no_grad():
        mask.scores.data.neg_().add_(torch.randn(8, 8))  # .data: no version bump
    mask.eval()
    assert torch.equal(mask.binary(), topk_binary_mask(mask.scores, 32))
    assert mask.binary() is not cached


def test_random_mask_redraws_each_call_with_the_kept_count():
    mask = TensorMask((16, 16), 0.25, "random")
    draws = [mask(torch.empty(0)) for _ in range(3)]
    assert all(int(d.sum()) == 64 for d in draws)
    assert not torch.equal(draws[0], draws[1])
    assert list(mask.parameters()) == []


def test_off_mode_is_identity():
    weight = torch.randn(3, 3)
    assert TensorMask((3, 3), 0.5, "off").apply_to(weight) is weight
