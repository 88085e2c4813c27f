"""Disk size against bit-level storage for the three variants on roberta-base geometry (random weights).

Usage: python scripts/storage_table.py [--geometry roberta-base]
"""

import argparse
import tempfile

from adapters import AutoAdapterModel

import propetl_adapters  # noqa: F401
from propetl_adapters.geometry import geometry_config
from propetl_adapters.storage import folder_bytes, storage_report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometry", default="roberta-base")
    args = parser.parse_args()
    model = AutoAdapterModel.from_config(geometry_config(args.geometry))
    print("| variant | format | BLS (bits) | BLS/8 (bytes) | folder bytes | folder / (BLS/8) | % of model | plain % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for variant in ("proadapter", "prolora", "proprefix"):
        model.add_adapter(variant, config=variant)
        for use_safetensors in (True, False):
            with tempfile.TemporaryDirectory() as folder:
                model.save_adapter(folder, variant, use_safetensors=use_safetensors, with_head=False)
                report = storage_report(model, variant, saved_folder=folder)
                size = folder_bytes(folder)
            bls = report.propetl.bls_bits
            print(f"| {variant} | {'safetensors' if use_safetensors else 'torch'} | {bls:,} | {bls // 8:,} | "
                  f"{size:,} | {size / (bls / 8):.4f} | {report.propetl.bls_percent:.4f} | "
                  f"{report.plain.bls_percent:.4f} |")


if __name__ == "__main__":
    main()
