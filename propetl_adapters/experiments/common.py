"""What the runners share: the error they report, loading an AdapterHub model, freezing layer norms, the method
name and storage figures recorded in ``all_results.json``, software versions, JSON argument files and logging."""

import dataclasses
import glob
import importlib.metadata
import json
import logging
import os
import platform
import sys
from typing import Any, Dict, List, Optional

import adapters
import torch
import transformers
from adapters import AutoAdapterModel, PrefixTuningConfig
from adapters.configuration.adapter_config import ADAPTER_CONFIG_MAP

from .. import __version__
from ..configuration import is_propetl_config, replace_adapter_config
from ..serialization import adapter_tensors
from ..storage import HEAD_FILES, base_model_parameters, bits_by_width, bls_bits, folder_bytes, storage_report

FULL_FINETUNING = "full_finetuning"
# AdapterHub keeps its legacy names ("pfeiffer" for seq_bn, ...) beside the current ones; results use the current.
LEGACY_CONFIG_NAMES = {"pfeiffer", "houlsby", "parallel", "scaled_parallel", "pfeiffer+inv", "houlsby+inv"}


class ExperimentError(ValueError):
    """Bad arguments or input data; the message names the flag or file and what was expected."""


def configure_logging():
    """Warnings from every library, progress from this package, on stderr."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING,
                        stream=sys.stderr)
    logging.getLogger("propetl_adapters").setLevel(logging.INFO)


def read_json_arguments(path: str, usage: str = "a JSON object of arguments") -> dict:
    """The arguments object of a ``.json`` argument file (``run_glue.py args.json``, ``run_seq2seq.py CONFIG.json``);
    it must hold ``output_dir``."""
    if not os.path.isfile(path):
        raise ExperimentError(f"{path}: argument file not found")
    with open(path, encoding="utf-8") as handle:
        try:
            given = json.load(handle)
        except json.JSONDecodeError as err:
            raise ExperimentError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(given, dict) or "output_dir" not in given:
        raise ExperimentError(f"{path}: expected {usage} including \"output_dir\"")
    return given


def load_adapter_model(model_name_or_path: str, cache_dir: Optional[str] = None):
    """``AutoAdapterModel.from_pretrained``, marked for the Hugging Face Trainer as returning a mean loss.

    The heads of AdapterHub models average the loss over their batch and ignore ``num_items_in_batch``, but
    their ``forward`` takes ``**kwargs``, from which the Trainer (transformers >= 4.46) concludes the opposite:
    it would then skip the division by the gradient accumulation steps and multiply the loss by the number
    of processes. ``accepts_loss_kwargs = False`` is the attribute the Trainer reads instead of guessing.
    """
    model = AutoAdapterModel.from_pretrained(model_name_or_path, cache_dir=cache_dir)
    model.accepts_loss_kwargs = False
    return model


def freeze_layer_norms(model) -> int:
    """Freeze every LayerNorm of the model; returns how many trainable parameters that froze."""
    frozen = 0
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            for param in module.parameters(recurse=False):
                if param.requires_grad:
                    frozen += param.numel()
                    param.requires_grad_(False)
    return frozen


def plain_method_name(config) -> str:
    """AdapterHub's name of a plain config's class (seq_bn, lora, prefix_tuning, ...), else its class name."""
    names = [name for name, known in ADAPTER_CONFIG_MAP.items() if type(known) is type(config)]
    current = [name for name in names if name not in LEGACY_CONFIG_NAMES]
    if current or names:
        return (current or names)[0]
    return getattr(config, "architecture", None) or type(config).__name__


# Unpinned dependencies that touch training or scoring: a run that does not repeat may differ in one of them.
RECORDED_PACKAGES = ("accelerate", "datasets", "numpy", "tokenizers", "safetensors", "scikit-learn", "scipy")


def versions() -> dict:
    return {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "adapters": adapters.__version__, "propetl_adapters": __version__,
            "packages": {name: installed_version(name) for name in RECORDED_PACKAGES}, "machine": machine()}


def installed_version(distribution: str) -> Optional[str]:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def machine(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """The machine a run trained on: the same seeded runs scored differently on another machine (MRPC, session 37),
    whose CPU, unlike what could be seen of the earlier one, has native bf16 instructions; they are listed because
    bf16 autocast may take another path where they exist (the cause is not isolated)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open(cpuinfo_path) as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the platform's own name is all there is
        pass
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": model, "bf16_instructions": [flag for flag in BF16_CPU_FLAGS if flag in flags],
            "torch_threads": torch.get_num_threads(), "cuda": cuda}


# ---------------------------------------------------------------------------
# Storage accounting
# ---------------------------------------------------------------------------


def is_plain_reparametrised_prefix(config) -> bool:
    """Plain AdapterHub prefix tuning with its MLP (``flat=False``): exported as the generated prefixes."""
    return isinstance(config, PrefixTuningConfig) and not config.flat and not is_propetl_config(config)


def eject_plain_prefix(model, adapter_name: str):
    """Replace the prefix MLP of plain prefix tuning by the prefixes it generates, and mark the adapter's config
    flat: AdapterHub's ejection leaves ``flat=False``, so the saved prefixes would be dropped on load and a fresh
    random MLP built in their place."""
    model.eject_prefix_tuning(adapter_name)
    replace_adapter_config(model, adapter_name, model.adapters_config.get(adapter_name).replace(flat=True))


def head_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f in HEAD_FILES)


def storage_summary(model, adapter_name: Optional[str], method: str, folder: Optional[str],
                    trainable_module: int, head_parameters: int) -> dict:
    """Trainable parameters, bit-level storage (BLS), % of the model and bytes on disk of the trained module.

    ProPETL adapters use ``propetl_adapters.storage.storage_report`` (which also gives the plain
    counterpart). Plain adapters: BLS = bits of every stored tensor (32 x parameters in fp32),
    counted from the tensors ``save_adapter`` writes (plain prefix tuning is ejected first, so the
    generated per-layer prefixes are counted, not the reparametrising MLP). Full fine-tuning stores
    the whole model. The prediction head is always reported separately and never included.
    """
    summary: Dict[str, Any] = {"method": method, "head_parameters": head_parameters,
                               "head_bytes_on_disk": head_bytes(folder) if folder else None}
    if adapter_name is None:
        base = sum(p.numel() for p in model.base_model.parameters())
        groups = bits_by_width(model.base_model.parameters())
        summary.update(base_model_parameters=base, trainable_parameters=trainable_module,
                       stored_parameters_by_bits=groups, bls_bits=bls_bits(groups),
                       bytes_on_disk=None, plain_counterpart=None,
                       notes=["full fine-tuning stores a whole model per task; bytes on disk are the saved "
                              "model weights (prediction head included there)"])
        if folder:
            weights = glob.glob(os.path.join(folder, "model*.safetensors")) \
                + glob.glob(os.path.join(folder, "pytorch_model*.bin"))
            summary["bytes_on_disk"] = sum(os.path.getsize(p) for p in weights)
    elif is_propetl_config(model.adapters_config.get(adapter_name)):
        report = storage_report(model, adapter_name, saved_folder=folder)
        p, q = report.propetl, report.plain
        summary.update(base_model_parameters=report.base_model_parameters,
                       trainable_parameters=p.trainable_parameters,
                       stored_parameters_by_bits=p.stored_parameters_by_bits, bls_bits=p.bls_bits,
                       bytes_on_disk=p.bytes_on_disk,
                       plain_counterpart={"method": report.plain_method, **dataclasses.asdict(q)},
                       notes=list(report.notes))
    else:
        base = base_model_parameters(model)
        groups = bits_by_width(adapter_tensors(model, adapter_name).values())
        summary.update(base_model_parameters=base, trainable_parameters=trainable_module,
                       stored_parameters_by_bits=groups, bls_bits=bls_bits(groups),
                       bytes_on_disk=folder_bytes(folder) if folder else None, plain_counterpart=None, notes=[])
        if is_plain_reparametrised_prefix(model.adapters_config.get(adapter_name)) or method == "prefix_tuning":
            summary["notes"].append("plain prefix tuning is ejected before saving: the stored tensors are the "
                                    "generated per-layer prefixes, not the training-time MLP")
    base = summary["base_model_parameters"]
    summary["trainable_percent"] = 100.0 * summary["trainable_parameters"] / base
    summary["bls_percent"] = 100.0 * summary["bls_bits"] / (32 * base)
    return summary


def validation_curve(log_history: List[dict], metric: str) -> List[dict]:
    """``[{"epoch", "step", "value"}]``: the selection metric (``eval_<metric>``) at every evaluation during
    training, from the Trainer's log history (restored with a checkpoint, so a resumed run has it all). It tells
    whether a run was still improving when its budget ran out."""
    key = f"eval_{metric}"
    return [{"epoch": round(entry["epoch"], 4) if entry.get("epoch") is not None else None,
             "step": entry.get("step"), "value": entry[key]} for entry in log_history if key in entry]
