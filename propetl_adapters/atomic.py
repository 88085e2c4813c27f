"""Atomic file writes: a temporary file, fsync, then rename, so a crash never leaves a half-written file."""

import json
import os


def atomic_write_bytes(path: str, data: bytes):
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_path, path)


def atomic_write_text(path: str, text: str):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, data, **dump_kwargs):
    """``data`` as indented JSON with a final newline; ``dump_kwargs`` go to ``json.dumps``."""
    atomic_write_text(path, json.dumps(data, indent=2, **dump_kwargs) + "\n")
