"""Binary masks learned with edge-popup scores and a straight-through estimator.

A mask keeps the ``kept`` entries of largest |score| in ONE tensor (top-k per tensor,
never across tensors or layers). The kept count is fixed by ``kept_count`` and the
same rule is used in training, saving and loading.
"""

import math
from typing import Optional, Tuple

import torch
from torch import nn

KEPT_COUNT_RULE = "kept = floor(density * numel + 0.5)"


def kept_count(density: float, numel: int, what: str = "tensor") -> int:
    """Number of entries a mask of this density keeps (round half up)."""
    kept = int(math.floor(density * numel + 0.5))
    if kept < 1:
        raise ValueError(
            f"density={density} keeps 0 of the {numel} entries of {what}; "
            f"use a density of at least {0.5 / numel:.3g} ({KEPT_COUNT_RULE})."
        )
    return min(kept, numel)


def topk_binary_mask(scores: torch.Tensor, kept: int) -> torch.Tensor:
    """The 0/1 mask (dtype of ``scores``) keeping the ``kept`` entries of largest |score|; no gradient."""
    flat = scores.detach().abs().flatten()
    if kept == flat.numel():
        return torch.ones_like(scores)
    # topk is a selection (no full sort); scatter_ is much cheaper than index assignment on CPU (profiled).
    indices = torch.topk(flat, kept, sorted=False).indices
    return torch.zeros_like(flat).scatter_(0, indices, 1.0).view_as(scores)


class _StraightThroughTopK(torch.autograd.Function):
    """m = h(|s|) forward; backward treats h as the identity on |s|, so dL/ds = sign(s) * dL/dm (SPEC §1.1).

    The sign matters: the mask ranks |s|, so for a negative score, raising |s| means lowering s. Passing
    dL/dm to s unchanged (an earlier version did) moves every negative score against the loss.
    sign(0) counts as +1 so that a score at exactly 0 (a dropped entry of a loaded mask) can still grow.
    """

    @staticmethod
    def forward(ctx, scores: torch.Tensor, kept: int) -> torch.Tensor:
        ctx.save_for_backward(scores)
        return topk_binary_mask(scores, kept)

    @staticmethod
    def backward(ctx, grad_mask: torch.Tensor):
        (scores,) = ctx.saved_tensors
        return torch.where(scores < 0, -grad_mask, grad_mask), None


def straight_through_mask(scores: torch.Tensor, kept: int) -> torch.Tensor:
    """The top-``kept`` mask of |scores| with the straight-through gradient sign(s) * dL/dm."""
    return _StraightThroughTopK.apply(scores, kept)


def random_binary_mask(shape: Tuple[int, ...], kept: int, like: torch.Tensor) -> torch.Tensor:
    """A uniformly random mask with exactly ``kept`` ones (the random-mask ablation)."""
    return topk_binary_mask(torch.rand(shape, device=like.device, dtype=like.dtype), kept)


def or_masks(mask_a: torch.Tensor, mask_b: torch.Tensor) -> torch.Tensor:
    """Logical OR of two 0/1 masks written so that a gradient reaches both (1 - (1-a)(1-b))."""
    return 1.0 - (1.0 - mask_a) * (1.0 - mask_b)


def new_scores(shape: Tuple[int, ...], fan_in: Optional[int] = None) -> nn.Parameter:
    """Scores initialised like a linear layer's weight: uniform in ±1/sqrt(fan_in) (kaiming-uniform, a = sqrt(5)).

    ``fan_in`` defaults to the tensor's own (``shape[1:]`` for 2-D, ``shape[0]`` for 1-D). The bound sets how far a
    score sits from zero, so, with a given mask learning rate, how many steps it takes to flip an entry.
    """
    if fan_in is None:
        fan_in = math.prod(shape[1:]) if len(shape) >= 2 else shape[0]
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


class TensorMask(nn.Module):
    """The mask of one prototype tensor in one layer.

    Modes: ``learned`` (float scores, top-k, STE), ``random`` (fresh random mask each
    call, no parameters) and ``off`` (identity: the "only share" ablation).
    In learned mode and eval mode the mask is cached, so evaluation does not rerun top-k on
    every forward pass. Optimizers may update scores without bumping their version counter
    (seen with the HF Trainer), so the cache lives only between two calls of ``train()``/``eval()``
    and is also dropped when the scores' storage or version changes.
    """

    def __init__(self, shape: Tuple[int, ...], density: float, mode: str, what: str = "tensor",
                 fan_in: Optional[int] = None):
        super().__init__()
        if mode not in ("learned", "random", "off"):
            raise ValueError(f"unknown mask mode {mode!r}")
        self.shape = tuple(shape)
        self.mode = mode
        self.density = density
        self.kept = kept_count(density, math.prod(self.shape), what) if mode != "off" else math.prod(self.shape)
        if mode == "learned":
            self.scores = new_scores(self.shape, fan_in)
        self._cache: Optional[Tuple[tuple, torch.Tensor]] = None

    @property
    def learned(self) -> bool:
        return self.mode == "learned"

    def _cache_key(self) -> tuple:
        return (self.scores.data_ptr(), self.scores._version, self.scores.device, self.scores.dtype)

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def binary(self) -> torch.Tensor:
        """The current 0/1 mask without gradient."""
        if self.training:
            return topk_binary_mask(self.scores, self.kept)
        key = self._cache_key()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, topk_binary_mask(self.scores, self.kept))
        return self._cache[1]

    def forward(self, like: torch.Tensor) -> Optional[torch.Tensor]:
        """The mask to multiply with a tensor shaped like ``like`` (None in ``off`` mode)."""
        if self.mode == "off":
            return None
        if self.mode == "random":
            return random_binary_mask(self.shape, self.kept, like)
        if torch.is_grad_enabled() and self.scores.requires_grad:
            return straight_through_mask(self.scores, self.kept)
        return self.binary()

    def apply_to(self, weight: torch.Tensor) -> torch.Tensor:
        mask = self(weight)
        return weight if mask is None else weight * mask.to(weight.dtype)

    @torch.no_grad()
    def load_binary(self, mask: torch.Tensor):
        """Install a saved 0/1 mask: scores become the mask itself, whose top-k is exactly the mask."""
        if tuple(mask.shape) != self.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match {self.shape}")
        self.scores.copy_(mask.to(self.scores.dtype))
        self._cache = None

    def extra_repr(self) -> str:
        return f"shape={self.shape}, mode={self.mode}, kept={self.kept}"


def mask_mode(config) -> str:
    if not config.masked:
        return "off"
    return "random" if config.random_mask else "learned"
