"""The 1-bit mask file (``propetl_masks.bin``).

Layout (all integers little-endian; documented in docs/mask_format.md):

    bytes 0-7    magic b"PPTLMASK"
    bytes 8-11   uint32 format version (1)
    bytes 12-15  uint32 header length H
    16 .. 16+H   header, UTF-8 JSON: adapter name, method, kept-count rule, bit order, ``coding`` and
                 one entry per mask {name, shape, density, kept, offset, nbytes}
    payload      each mask flattened row-major, coded as the header's ``coding`` says: ``bits`` packs
                 8 entries per byte (least significant bit first), padded to a whole byte; ``range``
                 (compact export, version 3) is the range code of ``mask_coding``, about
                 log2 C(numel, kept) bits; entry offsets are relative to the payload
    last 32      SHA-256 of every byte before it
"""

import hashlib
import json
import math
import struct
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import torch

from .atomic import atomic_write_bytes
from .mask_coding import decode_mask, encode_mask
from .masks import KEPT_COUNT_RULE, kept_count

MASK_FILE_NAME = "propetl_masks.bin"
MAGIC = b"PPTLMASK"
FORMAT_VERSION = 1
# Range-coded files carry a version of their own, so that a reader that knows only packed bits refuses them
# by version instead of misreading their payload.
RANGE_CODED_VERSION = 3
READABLE_VERSIONS = (FORMAT_VERSION, RANGE_CODED_VERSION)
CODINGS = ("bits", "range")
_PREFIX = struct.Struct("<8sII")
_DIGEST_BYTES = 32


class MaskFileError(ValueError):
    """A mask file that is unreadable, corrupted or inconsistent with what it claims."""


@dataclass
class MaskFile:
    header: dict
    masks: Dict[str, torch.Tensor]  # name -> bool tensor

    @property
    def entries(self) -> List[dict]:
        return self.header["entries"]


def pack_mask(mask: torch.Tensor) -> bytes:
    bits = mask.detach().to("cpu").flatten().numpy().astype(bool)
    return np.packbits(bits, bitorder="little").tobytes()


def unpack_mask(data: bytes, shape: Tuple[int, ...]) -> torch.Tensor:
    numel = math.prod(shape)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little", count=numel)
    return torch.from_numpy(bits.astype(bool)).view(*shape)


def encode_mask_file(metadata: dict, masks: List[Tuple[str, torch.Tensor, float]], coding: str = "bits") -> bytes:
    """Serialise (name, 0/1 mask, density) triples; ``metadata`` goes into the header as is.

    ``coding``: ``bits`` (1 bit per entry) or ``range`` (about log2 C(numel, kept) bits per mask)."""
    if coding not in CODINGS:
        raise ValueError(f"mask coding must be one of {CODINGS}, got {coding!r}.")
    entries, payload = [], bytearray()
    for name, mask, density in masks:
        data = pack_mask(mask) if coding == "bits" else encode_mask(mask.detach().to("cpu").numpy())
        entries.append({"name": name, "shape": list(mask.shape), "density": density,
                        "kept": int(mask.sum().item()), "offset": len(payload), "nbytes": len(data)})
        payload += data
    header = dict(metadata, kept_count_rule=KEPT_COUNT_RULE, bit_order="little", coding=coding, entries=entries)
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    version = FORMAT_VERSION if coding == "bits" else RANGE_CODED_VERSION
    body = _PREFIX.pack(MAGIC, version, len(header_bytes)) + header_bytes + bytes(payload)
    return body + hashlib.sha256(body).digest()


def write_mask_file(path: str, metadata: dict, masks: List[Tuple[str, torch.Tensor, float]], coding: str = "bits"):
    atomic_write_bytes(path, encode_mask_file(metadata, masks, coding))


def read_mask_file(path: str) -> MaskFile:
    """Read and fully verify a mask file (checksum, layout, and every entry's kept count)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise MaskFileError(f"{path}: mask file not found (a ProPETL adapter folder needs {MASK_FILE_NAME}).")
    if len(data) < _PREFIX.size + _DIGEST_BYTES:
        raise MaskFileError(f"{path}: file is {len(data)} bytes, too short for a mask file (truncated?).")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise MaskFileError(f"{path}: not a ProPETL mask file (magic {magic!r}, expected {MAGIC!r}).")
    if version not in READABLE_VERSIONS:
        raise MaskFileError(f"{path}: mask format version {version}, this library reads versions "
                            f"{', '.join(map(str, READABLE_VERSIONS))}.")
    body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise MaskFileError(f"{path}: SHA-256 checksum mismatch; the file is truncated or corrupted.")
    try:
        header = json.loads(body[_PREFIX.size:_PREFIX.size + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MaskFileError(f"{path}: unreadable header ({err}).")
    payload = body[_PREFIX.size + header_len:]
    coding = header.get("coding", "bits")
    if coding != ("bits" if version == FORMAT_VERSION else "range"):
        raise MaskFileError(f"{path}: version {version} files are not coded {coding!r}.")
    masks = {}
    for entry in header.get("entries", []):
        shape = tuple(entry["shape"])
        numel = math.prod(shape)
        chunk = payload[entry["offset"]:entry["offset"] + entry["nbytes"]]
        if len(chunk) != entry["nbytes"] or (coding == "bits" and entry["nbytes"] != (numel + 7) // 8):
            raise MaskFileError(f"{path}: entry '{entry['name']}' claims {entry['nbytes']} bytes for shape "
                                f"{list(shape)}; expected {(numel + 7) // 8 if coding == 'bits' else len(chunk)}.")
        if coding == "bits":
            mask = unpack_mask(chunk, shape)
        else:
            mask = torch.from_numpy(decode_mask(chunk, numel, entry["kept"])).view(*shape)
        kept = int(mask.sum().item())
        expected = kept_count(entry["density"], numel, entry["name"])
        if kept != entry["kept"] or kept != expected:
            raise MaskFileError(f"{path}: entry '{entry['name']}' keeps {kept} entries (header says {entry['kept']}), "
                                f"but density {entry['density']} means {expected} ({KEPT_COUNT_RULE}).")
        masks[entry["name"]] = mask
    return MaskFile(header=header, masks=masks)
