"""Range-coded masks: exact round trip and a size at the information floor."""

import math

import numpy as np
import pytest

from propetl_adapters.mask_coding import MAX_CODED_ENTRIES, decode_mask, encode_mask, information_floor_bits


def _random_mask(numel, kept, seed):
    mask = np.zeros(numel, dtype=bool)
    mask[np.random.default_rng(seed).choice(numel, kept, replace=False)] = True
    return mask


@pytest.mark.parametrize("numel, kept", [(1, 0), (1, 1), (2, 1), (7, 4), (1000, 1), (1000, 999), (1000, 0),
                                         (4096, 410), (4096, 2048), (12288, 3686), (24576, 22118)])
def test_round_trip_is_exact_and_costs_the_information_floor(numel, kept):
    for seed in range(3):
        mask = _random_mask(numel, kept, seed)
        data = encode_mask(mask)
        assert np.array_equal(decode_mask(data, numel, kept), mask)
        # log2 C(n, k) plus the coder's flush (4 bytes) and one byte of rounding.
        assert len(data) * 8 <= math.ceil(information_floor_bits(numel, kept)) + 40


def test_structured_masks_round_trip():
    for mask in (np.arange(5000) % 2 == 0, np.arange(5000) < 1000, np.arange(5000) >= 4000):
        assert np.array_equal(decode_mask(encode_mask(mask), mask.size, int(mask.sum())), mask)


def test_floor_matches_the_entropy_per_entry_of_the_spec():
    # SPEC §1.4: 0.469 bits per entry at k = 0.1, 1 bit at k = 0.5.
    assert information_floor_bits(100000, 10000) / 100000 == pytest.approx(0.469, abs=1e-3)
    assert information_floor_bits(100000, 50000) / 100000 == pytest.approx(1.0, abs=1e-3)


def test_a_damaged_stream_still_decodes_to_the_right_number_of_ones():
    # The coder cannot detect damage (the mask file's checksum does); it must not crash or change the count.
    mask = _random_mask(3000, 900, 0)
    data = bytearray(encode_mask(mask))
    data[10] ^= 0xFF
    decoded = decode_mask(bytes(data), 3000, 900)
    assert int(decoded.sum()) == 900 and not np.array_equal(decoded, mask)
    assert int(decode_mask(b"", 3000, 900).sum()) == 900


def test_impossible_sizes_are_refused():
    with pytest.raises(ValueError, match="cannot keep 5"):
        decode_mask(b"", 4, 5)
    with pytest.raises(ValueError, match="at most"):
        encode_mask(np.zeros(MAX_CODED_ENTRIES + 1, dtype=bool))
