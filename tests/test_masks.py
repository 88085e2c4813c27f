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


def test_straight_through_gradient_is_the_gradient_of_the_mask():
    torch.manual_seed(0)
    scores = torch.randn(4, 5, requires_grad=True)
    weight = torch.randn(4, 5)
    mask = straight_through_mask(scores, 10)
    (weight * mask).sum().backward()
    # d(sum(W * m))/dm = W, and the STE passes it unchanged to the scores.
    assert torch.equal(scores.grad, weight)


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
