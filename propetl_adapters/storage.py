"""Bit-level storage (BLS) accounting and the ``propetl-storage`` command.

BLS = sum over parameter groups of (count x bit width): the prototype and any other
float tensors at their dtype's width, every mask entry at 1 bit. The counts are taken
from exactly the tensors ``save_adapter`` writes, so the report and the folder agree.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, Optional

import torch

from adapters import AutoAdapterModel
from transformers import AutoConfig

from .configuration import ProPrefixConfig
from .geometry import GEOMETRIES, geometry_config
from .mask_coding import encode_mask
from .mask_io import MASK_FILE_NAME, read_mask_file
from .methods.registry import method_of
from .multitask import task_bank
from .serialization import (COMPACT_FORMATS, adapter_layers, adapter_masks, adapter_tensors, compact_export,
                            compact_tensors, export_state, read_saved_config)

HEAD_FILES = {"head_config.json", "pytorch_model_head.bin", "model_head.safetensors"}


@dataclass
class StorageFigures:
    trainable_parameters: int
    stored_parameters_by_bits: Dict[int, int]
    bls_bits: int
    bls_percent: float
    bytes_on_disk: Optional[int] = None
    # Compact export: mask entries range-coded (not in stored_parameters_by_bits) and the bits their codes take.
    coded_mask_entries: int = 0
    coded_mask_bits: int = 0


@dataclass
class StorageReport:
    adapter: str
    method: str
    base_model_parameters: int
    propetl: StorageFigures
    plain_method: str
    plain: StorageFigures
    head_parameters: int = 0
    # Multi-task adapters: bits each task adds (hybrid masks: its task mask; Hyperformer: its task
    # embedding), the bits all tasks share, and the whole storage divided by the number of tasks (the
    # "% per task" of the Hyperformer paper).
    task_bits: Dict[str, int] = field(default_factory=dict)
    shared_bits: Optional[int] = None
    amortized_task_percent: Optional[float] = None
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def bits_by_width(tensors: Iterable[torch.Tensor]) -> Dict[int, int]:
    """Number of stored values per bit width (dtype size), widest first."""
    groups: Dict[int, int] = {}
    for tensor in tensors:
        bits = tensor.element_size() * 8
        groups[bits] = groups.get(bits, 0) + tensor.numel()
    return dict(sorted(groups.items(), reverse=True))


def bls_bits(groups: Dict[int, int]) -> int:
    """Bit-level storage: sum over groups of (bit width x number of values)."""
    return sum(bits * count for bits, count in groups.items())


def _figures(trainable: int, groups: Dict[int, int], base: int, bytes_on_disk: int, coded_mask_entries: int = 0,
             coded_mask_bits: int = 0) -> StorageFigures:
    bits = bls_bits(groups) + coded_mask_bits
    return StorageFigures(trainable_parameters=trainable, stored_parameters_by_bits=groups, bls_bits=bits,
                          bls_percent=100.0 * bits / (32 * base), bytes_on_disk=bytes_on_disk,
                          coded_mask_entries=coded_mask_entries, coded_mask_bits=coded_mask_bits)


def base_model_parameters(model) -> int:
    """Parameters of the pre-trained model alone: no adapter, no prototype, no head."""
    adapter_ids = set()
    for name in model.adapters_config.adapters:
        adapter_ids |= {id(t) for t in adapter_tensors(model, name).values()}
    return sum(p.numel() for p in model.base_model.parameters() if id(p) not in adapter_ids)


def folder_bytes(folder: str) -> int:
    """Bytes of an adapter folder, prediction-head files excluded (the paper's figures exclude the head)."""
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
               if f not in HEAD_FILES and os.path.isfile(os.path.join(folder, f)))


def _plain_figures(model, adapter_name: str, config, base: int) -> StorageFigures:
    """The same geometry trained as the plain, unshared PETL method (one module per layer, no masks)."""
    method = method_of(config)
    stored, trainable = method.plain_parameter_count(
        adapter_layers(model, adapter_name, method.layer_class).values(), config)
    # Plain bytes on disk: the float32 payload alone (BLS / 8), no file overhead.
    return _figures(trainable, {32: stored}, base, 32 * stored // 8)


def saved_prototype_dtype(folder: str) -> Optional[str]:
    """The prototype format of a compact export ('bfloat16' / 'float16' / 'int8'), None for a plain one."""
    path = os.path.join(folder, MASK_FILE_NAME)
    return read_mask_file(path).header.get("prototype_dtype") if os.path.isfile(path) else None


def storage_report(model, adapter_name: str, saved_folder: Optional[str] = None,
                   prototype_dtype: Optional[str] = None) -> StorageReport:
    """Storage of one ProPETL adapter and of its plain counterpart.

    Args:
        saved_folder: a folder written by ``save_adapter``; its size is reported as bytes on disk.
            Without it the adapter is saved to a temporary folder (safetensors) and measured.
        prototype_dtype: report a compact export (``compact_export``) in this format ('bfloat16', 'float16',
            'int8'): the stored values at their widths and the masks at the bits of their range codes. A compact
            ``saved_folder`` sets it itself.
    """
    config = model.adapters_config.get(adapter_name)
    method = method_of(config)
    if method is not None and not method.masked:
        return hyperformer_report(model, adapter_name, saved_folder)
    if method is None:
        raise ValueError(f"Adapter '{adapter_name}' is not a ProPETL or Hyperformer adapter (config "
                         f"{type(config).__name__}).")
    if prototype_dtype is None and saved_folder is not None:
        prototype_dtype = saved_prototype_dtype(saved_folder)
    base = base_model_parameters(model)
    tensors, _ = export_state(model, adapter_name)
    groups = bits_by_width((compact_tensors(tensors, prototype_dtype) if prototype_dtype else tensors).values())
    masks = adapter_masks(model, adapter_name)
    if prototype_dtype is None:
        mask_bits = {id(m): m.scores.numel() for m in masks.values()}
        if mask_bits:
            groups[1] = sum(mask_bits.values())
        coded_entries = coded_bits = 0
    else:  # the real bits of each range code, as the mask file stores them
        mask_bits = {id(m): 8 * len(encode_mask(m.binary().cpu().numpy())) for m in masks.values()}
        coded_entries, coded_bits = sum(m.scores.numel() for m in masks.values()), sum(mask_bits.values())
    trainable = sum(t.numel() for t in adapter_tensors(model, adapter_name).values() if isinstance(t, torch.nn.Parameter))
    has_heads = hasattr(model, "heads")
    propetl = _figures(trainable, groups, base, _bytes_on_disk(model, adapter_name, saved_folder, prototype_dtype),
                       coded_entries, coded_bits)
    plain = _plain_figures(model, adapter_name, config, base)
    head = 0
    if has_heads and adapter_name in model.heads:
        head = sum(p.numel() for p in model.heads[adapter_name].parameters())
    task_bits = {}
    if config.tasks:
        bank = task_bank(model, adapter_name)
        task_bits = {task: sum(mask_bits[id(m)] for m in bank.masks[task].values()) for task in bank.tasks}
    notes = []
    if task_bits:
        notes.append("plain figures are ONE plain module shared by all tasks (no per-task storage)")
    if isinstance(config, ProPrefixConfig):
        notes.append("prefix prototype counted as the generated key/value pair (what save_adapter stores), "
                     "not the reparametrising MLP used during training")
    notes.append("plain bytes on disk are BLS/8 (float32 payload, no file overhead)")
    return StorageReport(adapter=adapter_name, method=config.propetl_method, base_model_parameters=base,
                         propetl=propetl, plain_method=method.plain_name, plain=plain,
                         head_parameters=head, task_bits=task_bits,
                         shared_bits=propetl.bls_bits - sum(task_bits.values()) if task_bits else None,
                         amortized_task_percent=propetl.bls_percent / len(task_bits) if task_bits else None,
                         notes=notes)


def _bytes_on_disk(model, adapter_name: str, saved_folder: Optional[str], prototype_dtype: Optional[str] = None) -> int:
    if saved_folder is not None:
        return folder_bytes(saved_folder)
    with tempfile.TemporaryDirectory() as tmp:
        with compact_export(prototype_dtype) if prototype_dtype is not None else contextlib.nullcontext():
            model.save_adapter(tmp, adapter_name, use_safetensors=True,
                               **({"with_head": False} if hasattr(model, "heads") else {}))
        return folder_bytes(tmp)


def hyperformer_report(model, adapter_name: str, saved_folder: Optional[str] = None) -> StorageReport:
    """Hyperformer(++): every stored tensor at 32 bits; a task adds its task embedding; the plain counterpart
    is one adapter per task (same bottleneck, after attention and FFN, with its layer norm)."""
    config = model.adapters_config.get(adapter_name)
    base = base_model_parameters(model)
    tensors = adapter_tensors(model, adapter_name)
    trainable = sum(t.numel() for t in tensors.values() if isinstance(t, torch.nn.Parameter))
    figures = _figures(trainable, bits_by_width(tensors.values()), base,
                       _bytes_on_disk(model, adapter_name, saved_folder))
    method = method_of(config)
    stored, trainable = method.plain_parameter_count(
        adapter_layers(model, adapter_name, method.layer_class).values(), config)
    tasks = list(config.tasks)
    plain = _figures(trainable, {32: stored}, base, 4 * stored)
    embedding_bits = 32 * config.embedding_dim
    notes = ["a task adds one task embedding; amortized_task_percent = total / number of tasks (the Hyperformer "
             "paper's per-task figure)", "plain figures are one adapter per task (after attention and FFN, with "
             "its layer norm); bytes are BLS/8", "trainable layer norms of the base model (T5 in the reference "
             "setup) are not included"]
    return StorageReport(adapter=adapter_name, method=config.baseline_method, base_model_parameters=base,
                         propetl=figures, plain_method=method.plain_name, plain=plain,
                         task_bits={t: embedding_bits for t in tasks},
                         shared_bits=figures.bls_bits - embedding_bits * len(tasks),
                         amortized_task_percent=figures.bls_percent / len(tasks), notes=notes)


def format_report(report: StorageReport) -> str:
    p, q = report.propetl, report.plain
    width = 34

    def row(label, a, b):
        return f"{label:<{width}}{a:>20}{b:>26}"

    lines = [f"adapter '{report.adapter}' ({report.method}); base model: {report.base_model_parameters:,} parameters",
             row("", report.method, "plain " + report.plain_method),
             row("trainable parameters", f"{p.trainable_parameters:,}", f"{q.trainable_parameters:,}")]
    for bits in sorted(set(p.stored_parameters_by_bits) | set(q.stored_parameters_by_bits), reverse=True):
        lines.append(row(f"stored {bits}-bit values", f"{p.stored_parameters_by_bits.get(bits, 0):,}",
                         f"{q.stored_parameters_by_bits.get(bits, 0):,}"))
    if p.coded_mask_entries:
        lines.append(row("range-coded mask entries", f"{p.coded_mask_entries:,}", "0"))
        lines.append(row("  bits of their codes", f"{p.coded_mask_bits:,}", "0"))
    lines += [row("bit-level storage (bits)", f"{p.bls_bits:,}", f"{q.bls_bits:,}"),
              row("% of base model (32-bit)", f"{p.bls_percent:.4f} %", f"{q.bls_percent:.4f} %"),
              row("bytes on disk", f"{p.bytes_on_disk:,}", f"~{q.bytes_on_disk:,}"),
              row(f"{report.method} / plain BLS", f"{p.bls_bits / q.bls_bits:.4f}", "1")]
    if report.task_bits:
        lines.append(f"shared by all tasks: {report.shared_bits:,} bits; all storage / tasks: "
                     f"{report.amortized_task_percent:.4f} % of the base model per task")
        lines += [f"task '{task}': {bits:,} bits ({100.0 * bits / (32 * report.base_model_parameters):.4f} % of the "
                  f"base model)" for task, bits in report.task_bits.items()]
    if report.head_parameters:
        lines.append(f"prediction head (not included above): {report.head_parameters:,} parameters, "
                     f"{4 * report.head_parameters:,} bytes in fp32")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def build_base_model(model_spec: str):
    """An AdapterModel with the geometry of ``model_spec`` (preset, folder or hub name) and uninitialised weights.

    Counting needs shapes only: the model is built on the meta device and then given uninitialised CPU memory,
    which skips the random initialisation of every base weight (minutes for roberta-base on a busy machine).
    Adapters added afterwards are initialised as usual, so their saved size is real.
    """
    config = geometry_config(model_spec) if model_spec in GEOMETRIES else AutoConfig.from_pretrained(model_spec)
    with torch.device("meta"):
        model = AutoAdapterModel.from_config(config)
    return model.to_empty(device="cpu")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="propetl-storage",
        description="Report trainable parameters, bit-level storage and bytes on disk of a ProPETL adapter "
                    "and of the plain PETL module with the same geometry.")
    parser.add_argument("path", help="a folder written by save_adapter, or a model (preset name such as "
                                     "roberta-base / t5-base, local folder, or hub name) together with --config")
    parser.add_argument("--config", help="adapter config string when PATH is a model, e.g. 'proadapter[density=0.5]'")
    parser.add_argument("--model", help="the base model of a saved adapter folder (default: the model_name "
                                        "recorded in its adapter_config.json)")
    parser.add_argument("--compact", metavar="DTYPE", choices=sorted(COMPACT_FORMATS),
                        help="with --config: report the compact export (prototype in DTYPE: bfloat16, float16, or int8 "
                             "per row with a bfloat16 scale; range-coded masks); a saved compact folder is reported "
                             "as such without it")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    saved = read_saved_config(args.path) if os.path.isdir(args.path) else None
    try:
        if saved is not None:
            if not os.path.isfile(os.path.join(args.path, MASK_FILE_NAME)) and saved["config"].get("masked", True):
                print(f"warning: {args.path} has no {MASK_FILE_NAME}", file=sys.stderr)
            model_spec = args.model or saved.get("model_name")
            if not model_spec:
                parser.error(f"{args.path}/adapter_config.json records no model_name; pass --model")
            model = build_base_model(model_spec)
            name = model.load_adapter(args.path, with_head=False)
            report = storage_report(model, name, saved_folder=args.path)
        else:
            if not args.config:
                parser.error(f"{args.path} is not a saved adapter folder; pass --config to add one to this model")
            model = build_base_model(args.path)
            model.add_adapter("adapter", config=args.config)
            report = storage_report(model, "adapter", prototype_dtype=args.compact)
    except (OSError, ValueError) as err:
        print(f"propetl-storage: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
