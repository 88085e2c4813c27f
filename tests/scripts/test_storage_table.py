"""scripts/storage_table.py: disk size against BLS, for a local model folder and compact exports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def table(*args) -> list[list[str]]:
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "storage_table.py"), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in proc.stdout.splitlines()[2:]]


def test_compact_int8_rows_of_a_local_geometry_count_int8_bits_and_safetensors_is_smaller(tmp_path):
    from transformers import BertConfig

    BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64).save_pretrained(tmp_path)
    plain = {(row[0], row[1]): row for row in table("--geometry", str(tmp_path), "--configs",
                                                    "proadapter[reduction_factor=4]")}
    compact = {(row[0], row[1]): row for row in table("--geometry", str(tmp_path), "--configs",
                                                      "proadapter[reduction_factor=4]", "prolora[r=4,alpha=6]",
                                                      "--compact", "int8")}
    assert sorted(compact) == [(c, f) for c in ("proadapter[reduction_factor=4]", "prolora[r=4,alpha=6]")
                               for f in ("safetensors", "torch")]
    bits = lambda row: int(row[2].replace(",", ""))  # noqa: E731
    size = lambda row: int(row[4].replace(",", ""))  # noqa: E731
    key = ("proadapter[reduction_factor=4]", "safetensors")
    # int8 prototype (and its per-row scales) instead of fp32: fewer bits, and a smaller folder.
    assert bits(compact[key]) < bits(plain[key]) and size(compact[key]) < size(plain[key])
    for config in ("proadapter[reduction_factor=4]", "prolora[r=4,alpha=6]"):
        assert size(compact[(config, "safetensors")]) < size(compact[(config, "torch")])
