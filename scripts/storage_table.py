"""Disk size against bit-level storage of ProPETL adapter folders (random weights: the sizes do not depend on them).

Usage: python scripts/storage_table.py [--geometry roberta-base | MODEL_FOLDER] [--configs CONFIG ...]
                                       [--compact bfloat16|float16|int8]

``--compact`` writes compact exports (16-bit or int8 prototype, range-coded masks) instead of the fp32 folder
with 1-bit masks; then the BLS column counts the compact values' bits.
"""

import argparse
import contextlib
import os
import tempfile

from adapters import AutoAdapterModel
from transformers import AutoConfig

import propetl_adapters  # noqa: F401
from propetl_adapters.geometry import geometry_config
from propetl_adapters.serialization import COMPACT_FORMATS, compact_export
from propetl_adapters.storage import folder_bytes, storage_report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometry", default="roberta-base",
                        help="a named geometry of propetl_adapters.geometry, or a local model folder")
    parser.add_argument("--configs", nargs="+", default=["proadapter", "prolora", "proprefix"],
                        help="adapter configs (bracket syntax allowed), one folder each")
    parser.add_argument("--compact", choices=sorted(COMPACT_FORMATS), default=None,
                        help="write compact exports with this prototype format")
    args = parser.parse_args()
    config = AutoConfig.from_pretrained(args.geometry) if os.path.isdir(args.geometry) \
        else geometry_config(args.geometry)
    model = AutoAdapterModel.from_config(config)
    print("| config | format | BLS (bits) | BLS/8 (bytes) | folder bytes | folder / (BLS/8) | % of model | plain % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for index, adapter_config in enumerate(args.configs):
        name = f"adapter{index}"
        model.add_adapter(name, config=adapter_config)
        for use_safetensors in (True, False):
            with tempfile.TemporaryDirectory() as folder:
                with compact_export(args.compact) if args.compact else contextlib.nullcontext():
                    model.save_adapter(folder, name, use_safetensors=use_safetensors, with_head=False)
                report = storage_report(model, name, saved_folder=folder)
                size = folder_bytes(folder)
            bls = report.propetl.bls_bits
            print(f"| {adapter_config} | {'safetensors' if use_safetensors else 'torch'} | {bls:,} | {bls // 8:,} | "
                  f"{size:,} | {size / (bls / 8):.4f} | {report.propetl.bls_percent:.4f} | "
                  f"{report.plain.bls_percent:.4f} |")
        model.delete_adapter(name)


if __name__ == "__main__":
    main()
