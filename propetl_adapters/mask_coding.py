"""Masks coded near their information floor.

A mask of ``numel`` entries with exactly ``kept`` ones is one of C(numel, kept) equally likely masks,
so it needs log2 C(numel, kept) bits (about ``numel * H(kept / numel)``): 0.469 bits per entry at
k = 0.1, 1 bit at k = 0.5. Packing one bit per entry wastes the difference whenever k != 0.5.

The coder is a byte-oriented binary range coder (32-bit range, carry propagated through a cached byte)
driven by the exact sequential model of a mask with a known number of ones: with ``ones`` ones left
among ``left`` entries, the next entry is 1 with probability ``ones / left``. Both sides know
``numel`` and ``kept`` (the mask file's header stores them), so the stream is
log2 C(numel, kept) bits plus a few bytes of coder overhead, and entries whose value is already
forced (no ones or no zeros left) cost nothing.
"""

import math

import numpy as np

_TOP = 1 << 32
_BOTTOM = 1 << 24  # the range is renormalised to stay at or above 2^24
# The smaller sub-interval is range * min(ones, zeros) / left >= 2^24 / left, so left must stay below 2^24.
MAX_CODED_ENTRIES = (1 << 24) - 1


def information_floor_bits(numel: int, kept: int) -> float:
    """log2 C(numel, kept): the fewest bits that can tell apart every mask with ``kept`` ones."""
    return (math.lgamma(numel + 1) - math.lgamma(kept + 1) - math.lgamma(numel - kept + 1)) / math.log(2)


def _check_size(numel: int, kept: int):
    if not 0 <= kept <= numel:
        raise ValueError(f"a mask of {numel} entries cannot keep {kept}.")
    if numel > MAX_CODED_ENTRIES:
        raise ValueError(f"range-coded masks hold at most {MAX_CODED_ENTRIES} entries; got {numel}.")


def encode_mask(mask) -> bytes:
    """The range-coded bytes of a 0/1 mask (any shape, read in row-major order)."""
    bits = np.asarray(mask).reshape(-1).astype(bool)
    numel, ones = bits.size, int(bits.sum())
    _check_size(numel, ones)
    out = bytearray()
    low, span, cache, pending = 0, _TOP - 1, 0, 1

    def shift_low():
        nonlocal low, cache, pending
        if low < 0xFF000000 or low >= _TOP:  # the top byte is settled (or a carry just settled it)
            carry = low >> 32
            out.append((cache + carry) & 0xFF)
            out.extend([(0xFF + carry) & 0xFF] * (pending - 1))
            pending = 0
            cache = (low >> 24) & 0xFF
        pending += 1
        low = (low & 0x00FFFFFF) << 8

    left = numel
    for bit in bits.tolist():
        zeros = left - ones
        if ones and zeros:  # otherwise the entry is forced and costs nothing
            bound = span * zeros // left
            if bit:
                low += bound
                span -= bound
            else:
                span = bound
            while span < _BOTTOM:
                span <<= 8
                shift_low()
        ones -= bit
        left -= 1
    for _ in range(5):
        shift_low()
    return bytes(out[1:])  # the first byte is always the initial empty cache


def decode_mask(data: bytes, numel: int, kept: int) -> np.ndarray:
    """The flat boolean mask that ``encode_mask`` turned into ``data``, given its size and number of ones."""
    _check_size(numel, kept)
    stream = iter(data)
    code = 0
    for _ in range(4):
        code = (code << 8) | next(stream, 0)
    span = _TOP - 1
    bits = np.zeros(numel, dtype=bool)
    ones, left = kept, numel
    for position in range(numel):
        zeros = left - ones
        if not zeros:
            bits[position:] = True
            break
        if not ones:
            break
        bound = span * zeros // left
        if code < bound:
            span = bound
        else:
            code -= bound
            span -= bound
            bits[position] = True
            ones -= 1
        left -= 1
        while span < _BOTTOM:
            span <<= 8
            code = ((code << 8) | next(stream, 0)) & (_TOP - 1)
    return bits
