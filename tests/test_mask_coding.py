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
                                         (4096, 410), (4096, 2048), (12288, 3686), (24576, 22118),
                                         # k = 1 (every entry kept), kept = 1, and odd sizes
                                         (7, 7), (999, 999), (999, 1), (12345, 1), (12345, 12344), (999, 100),
                                         (12345, 6172), (3, 2)])
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


@pytest.mark.parametrize("numel", [1, 7, 999, 12345])
def test_a_mask_keeping_everything_costs_only_the_flush(numel):
    # k = 1: there is one such mask (log2 C(n, n) = 0 bits); the stream is the coder's flush alone.
    data = encode_mask(np.ones(numel, dtype=bool))
    assert information_floor_bits(numel, numel) == 0
    assert len(data) <= 5
    assert decode_mask(data, numel, numel).all()


def _range_coded_file(tmp_path):
    import torch

    from propetl_adapters.mask_io import write_mask_file

    masks = [(name, torch.from_numpy(_random_mask(numel, kept, seed).reshape(shape)), density)
             for name, numel, kept, shape, density, seed in [("a", 999, 500, (27, 37), 0.5, 0),
                                                             ("b", 12345, 1235, (12345,), 0.1, 1),
                                                             ("c", 7, 7, (7,), 1.0, 2)]]
    path = tmp_path / "masks.bin"
    write_mask_file(str(path), {"weights": {"file": "w.safetensors", "sha256": "0" * 64}}, masks, coding="range")
    return path, {name: mask for name, mask, _ in masks}


def test_range_coded_mask_file_round_trips_odd_shapes_kept_one_and_k_one(tmp_path):
    import torch

    from propetl_adapters.mask_io import read_mask_file

    path, masks = _range_coded_file(tmp_path)
    read = read_mask_file(str(path))
    assert read.header["coding"] == "range" and read.version == 4
    assert all(torch.equal(read.masks[name], mask.bool()) for name, mask in masks.items())


@pytest.mark.parametrize("damage", ["flip_payload_byte", "truncate", "drop_last_byte", "append_byte"])
def test_a_corrupt_range_coded_stream_is_refused(tmp_path, damage):
    # The range decoder itself cannot see damage (test above); the mask file's SHA-256 refuses it.
    from propetl_adapters.mask_io import MaskFileError, read_mask_file

    path, _ = _range_coded_file(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip_payload_byte":
        data[len(data) - 40] ^= 0x01  # inside the last mask's code, before the 32-byte digest
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "drop_last_byte":
        data = data[:-1]
    else:
        data += b"\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(MaskFileError, match="checksum|too short"):
        read_mask_file(str(path))


def _rewrite(path, version: int, header: bytes):
    """The file at ``path`` with another version and header (payload kept), its checksum recomputed."""
    import hashlib
    import struct

    data = path.read_bytes()
    _, _, header_len = struct.unpack_from("<8sII", data)
    body = data[:8] + struct.pack("<II", version, len(header)) + header + data[16 + header_len:-32]
    path.write_bytes(body + hashlib.sha256(body).digest())


def test_a_resealed_range_coded_entry_with_an_impossible_count_is_refused(tmp_path):
    # A crafted file with a valid checksum: an entry that claims more ones than entries is refused by name.
    import json
    import struct
    import zlib

    from propetl_adapters.mask_io import MaskFileError, read_mask_file

    path, _ = _range_coded_file(tmp_path)
    data = path.read_bytes()
    _, version, header_len = struct.unpack_from("<8sII", data)
    header = json.loads(zlib.decompress(data[16:16 + header_len]))
    header["entries"][2]["kept"] = 8  # entry 'c' has 7 entries
    _rewrite(path, version, zlib.compress(json.dumps(header, sort_keys=True).encode()))
    with pytest.raises(MaskFileError, match="'c' keeps 8 of 7"):
        read_mask_file(str(path))


def test_range_coded_files_deflate_their_header_and_plain_version_3_files_still_read(tmp_path):
    import struct
    import zlib

    import torch

    from propetl_adapters.mask_io import PLAIN_HEADER_RANGE_CODED_VERSION, RANGE_CODED_VERSION, read_mask_file

    path, masks = _range_coded_file(tmp_path)
    data = path.read_bytes()
    _, version, header_len = struct.unpack_from("<8sII", data)
    plain = zlib.decompress(data[16:16 + header_len])
    assert version == RANGE_CODED_VERSION and header_len < len(plain)
    _rewrite(path, PLAIN_HEADER_RANGE_CODED_VERSION, plain)  # what compact exports wrote before version 4
    read = read_mask_file(str(path))
    assert read.header["coding"] == "range" and read.version == PLAIN_HEADER_RANGE_CODED_VERSION
    assert all(torch.equal(read.masks[name], mask.bool()) for name, mask in masks.items())


@pytest.mark.parametrize("damage", ["not_deflated", "cut_short", "trailing_bytes", "inflates_too_far"])
def test_a_crafted_deflated_header_is_refused_even_with_a_valid_checksum(tmp_path, damage, monkeypatch):
    import struct
    import zlib

    from propetl_adapters import mask_io

    path, _ = _range_coded_file(tmp_path)
    data = path.read_bytes()
    _, version, header_len = struct.unpack_from("<8sII", data)
    deflated = data[16:16 + header_len]
    header = {"not_deflated": zlib.decompress(deflated), "cut_short": deflated[:-3],
              "trailing_bytes": deflated + b"\x00", "inflates_too_far": deflated}[damage]
    if damage == "inflates_too_far":
        monkeypatch.setattr(mask_io, "_MAX_HEADER_BYTES", 100)
    _rewrite(path, version, header)
    with pytest.raises(mask_io.MaskFileError, match="unreadable header"):
        mask_io.read_mask_file(str(path))
