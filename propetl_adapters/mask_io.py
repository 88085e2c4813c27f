"""The 1-bit mask file (``propetl_masks.bin``).

Layout (all integers little-endian; documented in docs/mask_format.md):

    bytes 0-7    magic b"PPTLMASK"
    bytes 8-11   uint32 format version: 2 for packed bits, 4 for range-coded masks (compact export), whose
                 header is deflated; versions 1 (no ``weights``) and 3 (range-coded, plain header) are still read
    bytes 12-15  uint32 header length H
    16 .. 16+H   header, UTF-8 JSON (version 4: zlib-deflated UTF-8 JSON, a fifth of its size: the mask names
                 repeat): adapter name, method, kept-count rule, bit order, ``coding``, the file
                 name and SHA-256 of the prototype weights the masks belong to (``weights``, version 2 on)
                 and one entry per mask {name, shape, density, kept, offset, nbytes}
    payload      each mask flattened row-major, coded as the header's ``coding`` says: ``bits`` packs
                 8 entries per byte (least significant bit first), padded to a whole byte; ``range``
                 (version 3) is the range code of ``mask_coding``, about log2 C(numel, kept) bits;
                 entry offsets are relative to the payload
    last 32      SHA-256 of every byte before it
"""

import hashlib
import json
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .atomic import atomic_write_bytes
from .mask_coding import decode_mask, encode_mask
from .masks import KEPT_COUNT_RULE, kept_count

MASK_FILE_NAME = "propetl_masks.bin"
MAGIC = b"PPTLMASK"
FORMAT_VERSION = 2
# Range-coded files carry a version of their own, so that a reader that knows only packed bits refuses them
# by version instead of misreading their payload. Version 4 deflates the header too: in a small compact export
# the plain JSON header (names, shapes, offsets) was a tenth of the folder.
PLAIN_HEADER_RANGE_CODED_VERSION = 3
RANGE_CODED_VERSION = 4
READABLE_VERSIONS = (1, 2, PLAIN_HEADER_RANGE_CODED_VERSION, RANGE_CODED_VERSION)
_MAX_HEADER_BYTES = 64 << 20  # a deflated header may not expand beyond this (a crafted file cannot exhaust memory)
CODINGS = ("bits", "range")
# Every entry field, with the check its value must pass (a crafted header fails here, not with a KeyError).
_ENTRY_FIELDS = {
    "name": lambda v: isinstance(v, str) and v != "",
    "shape": lambda v: isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                   for d in v),
    "density": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1,
    "kept": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "offset": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "nbytes": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
}
_PREFIX = struct.Struct("<8sII")
_DIGEST_BYTES = 32


class MaskFileError(ValueError):
    """A mask file that is unreadable, corrupted or inconsistent with what it claims."""


@dataclass
class MaskFile:
    header: dict
    masks: Dict[str, torch.Tensor]  # name -> bool tensor
    version: int  # the format version it was written in (storage reports name it: version 4 headers are smaller)

    @property
    def entries(self) -> List[dict]:
        return self.header["entries"]

    @property
    def weights_sha256(self) -> Optional[str]:
        """SHA-256 (hex) of the weights file these masks were saved with; None in version 1 files."""
        return self.header.get("weights", {}).get("sha256")


def pack_mask(mask: torch.Tensor) -> bytes:
    bits = mask.detach().to("cpu").flatten().numpy().astype(bool)
    return np.packbits(bits, bitorder="little").tobytes()


def unpack_mask(data: bytes, shape: Tuple[int, ...]) -> torch.Tensor:
    numel = math.prod(shape)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little", count=numel)
    return torch.from_numpy(bits.astype(bool)).view(*shape)


def encode_mask_file(metadata: dict, masks: List[Tuple[str, torch.Tensor, float]], coding: str = "bits") -> bytes:
    """Serialise (name, 0/1 mask, density) triples; ``metadata`` goes into the header as is and must hold
    ``weights = {"file": name, "sha256": hex digest}`` of the weights file saved with the masks.

    ``coding``: ``bits`` (1 bit per entry) or ``range`` (about log2 C(numel, kept) bits per mask)."""
    if "weights" not in metadata:
        raise ValueError("a mask file records the weights it belongs to: metadata needs 'weights'.")
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
    if version == RANGE_CODED_VERSION:
        header_bytes = zlib.compress(header_bytes, 9)
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
    if _PREFIX.size + header_len > len(body):
        raise MaskFileError(f"{path}: header length {header_len} runs past the end of the file.")
    header_bytes = body[_PREFIX.size:_PREFIX.size + header_len]
    try:
        if version == RANGE_CODED_VERSION:
            header_bytes = _inflate(header_bytes)
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, zlib.error, ValueError) as err:
        raise MaskFileError(f"{path}: unreadable header ({err}).")
    _check_header(path, header, version)
    payload = body[_PREFIX.size + header_len:]
    coding = "bits" if version in (1, FORMAT_VERSION) else "range"
    if header.get("coding", "bits") != coding:
        raise MaskFileError(f"{path}: version {version} files are coded {coding!r}, the header says "
                            f"{header.get('coding')!r}.")
    masks = {}
    for entry in header["entries"]:
        shape = tuple(entry["shape"])
        numel = math.prod(shape)
        chunk = payload[entry["offset"]:entry["offset"] + entry["nbytes"]]
        if len(chunk) != entry["nbytes"] or (coding == "bits" and entry["nbytes"] != (numel + 7) // 8):
            raise MaskFileError(f"{path}: entry '{entry['name']}' claims {entry['nbytes']} bytes for shape "
                                f"{list(shape)}; expected {(numel + 7) // 8 if coding == 'bits' else len(chunk)}.")
        if coding == "bits":
            mask = unpack_mask(chunk, shape)
        elif entry["kept"] > numel:
            raise MaskFileError(f"{path}: entry '{entry['name']}' keeps {entry['kept']} of {numel} entries.")
        else:  # the range decoder yields exactly `kept` ones; the density rule below still checks `kept`
            mask = torch.from_numpy(decode_mask(chunk, numel, entry["kept"])).view(*shape)
        kept = int(mask.sum().item())
        expected = kept_count(entry["density"], numel, entry["name"])
        if kept != entry["kept"] or kept != expected:
            raise MaskFileError(f"{path}: entry '{entry['name']}' keeps {kept} entries (header says {entry['kept']}), "
                                f"but density {entry['density']} means {expected} ({KEPT_COUNT_RULE}).")
        masks[entry["name"]] = mask
    return MaskFile(header=header, masks=masks, version=version)


def _inflate(data: bytes) -> bytes:
    """A deflated header, refused (ValueError) if incomplete or larger than _MAX_HEADER_BYTES."""
    inflater = zlib.decompressobj()
    header = inflater.decompress(data, _MAX_HEADER_BYTES)
    if inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
        raise ValueError("the deflated header is incomplete or inflates beyond "
                         f"{_MAX_HEADER_BYTES} bytes")
    return header


def _check_header(path: str, header, version: int):
    """Every field the reader relies on is present and well-typed (the checksum only proves the file is intact)."""
    if not isinstance(header, dict) or not isinstance(header.get("entries"), list):
        raise MaskFileError(f"{path}: header has no 'entries' list.")
    for index, entry in enumerate(header["entries"]):
        if not isinstance(entry, dict):
            raise MaskFileError(f"{path}: header entry {index} is not an object.")
        for field, valid in _ENTRY_FIELDS.items():
            if field not in entry:
                raise MaskFileError(f"{path}: header entry {index} ('{entry.get('name')}') lacks field '{field}'.")
            if not valid(entry[field]):
                raise MaskFileError(f"{path}: header entry {index} ('{entry.get('name')}') has an invalid "
                                    f"'{field}': {entry[field]!r}.")
    if version >= 2:
        weights = header.get("weights")
        if not (isinstance(weights, dict) and isinstance(weights.get("file"), str)
                and isinstance(weights.get("sha256"), str) and len(weights["sha256"]) == 64):
            raise MaskFileError(f"{path}: version {version} header lacks 'weights' (file name and SHA-256 of the "
                                f"prototype weights the masks belong to).")
