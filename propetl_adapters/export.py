"""Export a (Pro)LoRA adapter as an ordinary PEFT LoRA adapter, and the ``propetl-export`` command.

With its masks applied, ProLoRA is plain LoRA: layer l uses ``A_proto ⊙ m_l`` and ``B_proto ⊙ m_l``
(``m_l OR m_t`` for task t of a hybrid multi-task adapter), scaled by alpha / r like PEFT's LoRA. So every
task of a ProLoRA model can be written as one PEFT folder (``adapter_config.json`` and
``adapter_model.safetensors``) that ``PeftModel.from_pretrained`` and LoRA serving engines load.

Both AdapterHub and PEFT store ``lora_A`` as [r, in] and ``lora_B`` as [out, r]. A fused q/k/v projection
(GPT-2's ``c_attn``) holds the enabled matrices as blocks of one grouped pair; it is written as a LoRA of
rank ``blocks · r`` on the whole projection, with zero rows of B for the matrices that are not adapted.
"""

import argparse
import json
import os
import sys
from collections import Counter
from os.path import join
from typing import Dict, List, Optional, Tuple

import torch
from adapters.configuration import LoRAConfig
from adapters.heads import ModelWithFlexibleHeadsAdaptersMixin
from adapters.methods.lora import LoRA, LoRALayer, LoRAMergedLinear
from safetensors.torch import save as safetensors_bytes

from .atomic import atomic_write_bytes
from .configuration import is_propetl_config
from .multitask import active_task
from .serialization import belongs_to_adapter, canonical_named_modules, read_saved_config
from .storage import build_base_model

PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
PEFT_INSTALL = "pip install 'propetl-adapters[peers]' (or pip install peft)"


def _require_peft():
    try:
        import peft  # the optional `peers` extra: needed only when exporting
    except ImportError:
        raise ImportError(f"exporting to PEFT's LoRA format needs the peft package: {PEFT_INSTALL}") from None
    return peft


def _check_exportable(model, adapter_name: str):
    if adapter_name not in model.adapters_config.adapters:
        raise ValueError(f"No adapter named '{adapter_name}' in this model "
                         f"(adapters: {sorted(model.adapters_config.adapters)}).")
    config = model.adapters_config.get(adapter_name)
    if not isinstance(config, LoRAConfig):
        kind = getattr(config, "propetl_method", None) or getattr(config, "architecture", None) \
            or type(config).__name__
        raise ValueError(f"Adapter '{adapter_name}' is a '{kind}' adapter; only prolora and lora adapters have a "
                         "LoRA form to export.")
    if config.composition_mode != "add" or config.use_gating or config.use_dora or config.vera_d is not None \
            or config.vera_b is not None:
        raise ValueError(f"Adapter '{adapter_name}': only additive LoRA without gating, DoRA or VeRA can be "
                         "exported to PEFT's plain LoRA format.")
    if is_propetl_config(config) and config.random_mask:
        raise ValueError(f"Adapter '{adapter_name}' draws a random mask at every forward pass; there is no fixed "
                         "sub-network to export.")
    return config


def backbone_prefix(model) -> str:
    """Where the backbone sits inside the transformers model PEFT will wrap, as a key prefix ('' or 'name.').

    A model made adaptable with ``adapters.init`` is that model, so its own path is used. An AdapterHub
    ``AutoAdapterModel`` follows transformers' task classes (``LlamaForCausalLM`` keeps ``model.``,
    ``BertForSequenceClassification`` keeps ``bert.``; ``T5ForConditionalGeneration`` has none).
    """
    if isinstance(model, ModelWithFlexibleHeadsAdaptersMixin):
        return "" if model.config.is_encoder_decoder else model.base_model.base_model_prefix + "."
    path = next((name for name, module in model.named_modules() if module is model.base_model), "")
    return f"{path}." if path else ""


def _layer_pair(layer: LoRALayer, lora: LoRA) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """(A [rank, in], B [out, rank], rank) of one layer in PEFT's layout."""
    lora_A, lora_B = lora.lora_A.detach().clone(), lora.lora_B.detach().clone()
    if not isinstance(layer, LoRAMergedLinear):
        return lora_A, lora_B, lora_A.shape[0]
    blocks, r = sum(lora.enable_lora), lora.r
    block_out = layer.out_features // len(lora.enable_lora)
    full_B = lora_B.new_zeros((layer.out_features, blocks * r))
    enabled = [position for position, on in enumerate(lora.enable_lora) if on]
    for block, position in enumerate(enabled):
        full_B[position * block_out:(position + 1) * block_out, block * r:(block + 1) * r] = \
            lora_B[block * block_out:(block + 1) * block_out]
    return lora_A, full_B, blocks * r


def _target_modules(model, exported: List[str], prefix: str):
    """Leaf names (e.g. ['q_proj', 'v_proj']) if they pick out exactly the exported modules, else full names."""
    leaves = sorted({path.rsplit(".", 1)[-1] for path in exported})
    matched = {path for path in canonical_named_modules(model.base_model)
               if path.rsplit(".", 1)[-1] in leaves and not belongs_to_adapter(None, path)}
    return leaves if matched == set(exported) else sorted(prefix + path for path in exported)


def _peft_files(model, adapter_name: str, config, prefix: str, base_model_name_or_path: Optional[str]
                ) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """The PEFT config dict and weights of the adapter as the model runs it now (the active task, if any)."""
    peft = _require_peft()
    tensors, ranks, fan_in_fan_out = {}, {}, False
    for path, layer in canonical_named_modules(model.base_model).items():
        if not isinstance(layer, LoRALayer) or adapter_name not in layer.loras:
            continue
        lora_A, lora_B, rank = _layer_pair(layer, layer.loras[adapter_name])
        key = f"base_model.model.{prefix}{path}"
        tensors[f"{key}.lora_A.weight"] = lora_A.contiguous()
        tensors[f"{key}.lora_B.weight"] = lora_B.contiguous()
        ranks[path] = rank
        fan_in_fan_out |= bool(getattr(layer, "fan_in_fan_out", False))  # GPT-2's Conv1D layers
    if not ranks:
        raise ValueError(f"Adapter '{adapter_name}' has no LoRA layer in this model.")
    scale = config.alpha / config.r  # PEFT scales by lora_alpha / rank: keep that ratio at every rank

    def alpha(r: int):
        return int(r * scale) if float(r * scale).is_integer() else r * scale

    rank, _ = Counter(ranks.values()).most_common(1)[0]
    other = {prefix + path: r for path, r in ranks.items() if r != rank}
    peft_config = peft.LoraConfig(
        r=rank, lora_alpha=alpha(rank), lora_dropout=config.dropout,
        target_modules=_target_modules(model, list(ranks), prefix), fan_in_fan_out=fan_in_fan_out,
        rank_pattern=other, alpha_pattern={name: alpha(r) for name, r in other.items()},
        base_model_name_or_path=base_model_name_or_path, bias="none")
    config_dict = {k: sorted(v) if isinstance(v, set) else v for k, v in peft_config.to_dict().items()}
    return config_dict, tensors


def _write_folder(folder: str, config_dict: dict, tensors: Dict[str, torch.Tensor]):
    os.makedirs(folder, exist_ok=True)
    atomic_write_bytes(join(folder, PEFT_WEIGHTS_FILE), safetensors_bytes(tensors, metadata={"format": "pt"}))
    atomic_write_bytes(join(folder, PEFT_CONFIG_FILE),
                       (json.dumps(config_dict, indent=2, sort_keys=True) + "\n").encode())


@torch.no_grad()
def export_peft_lora(model, adapter: str, folder: str, task: Optional[str] = None,
                     base_model_name_or_path: Optional[str] = None, prefix: Optional[str] = None
                     ) -> Dict[Optional[str], str]:
    """Write ``adapter`` as a PEFT LoRA folder; returns {task: folder} ({None: folder} for one task).

    A multi-task adapter is written for ``task``, or, with ``task=None``, once per task in ``folder/<task>``.
    ``base_model_name_or_path`` (default: the model's own name) is recorded for PEFT; ``prefix`` overrides
    where the backbone sits in the model PEFT will wrap (see ``backbone_prefix``; '' for e.g. ``AutoModel``).
    """
    config = _check_exportable(model, adapter)
    tasks = list(getattr(config, "tasks", None) or [])
    if task is not None and not tasks:
        raise ValueError(f"Adapter '{adapter}' has no tasks; export it without task=.")
    if task is not None and task not in tasks:
        raise ValueError(f"Adapter '{adapter}' has no task '{task}' (tasks: {tasks}).")
    _require_peft()
    prefix = backbone_prefix(model) if prefix is None else (prefix.rstrip(".") + "." if prefix else "")
    name = base_model_name_or_path or getattr(model.config, "name_or_path", None) or None
    was_training = model.training
    model.eval()
    try:
        if not tasks:
            _write_folder(folder, *_peft_files(model, adapter, config, prefix, name))
            return {None: folder}
        written = {}
        for one in [task] if task is not None else tasks:
            target = folder if task is not None else join(folder, one)
            with active_task(one):
                _write_folder(target, *_peft_files(model, adapter, config, prefix, name))
            written[one] = target
        return written
    finally:
        model.train(was_training)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="propetl-export",
        description="Write a saved (Pro)LoRA adapter as plain PEFT LoRA folders (one per task of a multi-task "
                    "adapter) that PeftModel.from_pretrained and LoRA serving engines load.")
    parser.add_argument("adapter_folder", help="a folder written by save_adapter")
    parser.add_argument("output", help="the PEFT folder to write (for all tasks: one subfolder per task)")
    parser.add_argument("--model", help="the base model (local folder or hub name; default: the model_name "
                                        "recorded in the adapter folder); only its config is read")
    parser.add_argument("--task", help="export only this task of a multi-task adapter")
    parser.add_argument("--prefix", help="where the backbone sits in the model PEFT will wrap (default: as in "
                                         "transformers' task classes, e.g. 'model' for Llama; '' for AutoModel)")
    args = parser.parse_args(argv)
    try:
        _require_peft()
        saved = read_saved_config(args.adapter_folder)
        if saved is None:
            raise ValueError(f"{args.adapter_folder} is not an adapter folder (no adapter_config.json).")
        model_spec = args.model or saved.get("model_name")
        if not model_spec:
            raise ValueError(f"{args.adapter_folder}/adapter_config.json records no model_name; pass --model.")
        model = build_base_model(model_spec)
        name = model.load_adapter(args.adapter_folder, with_head=False)
        written = export_peft_lora(model, name, args.output, task=args.task, base_model_name_or_path=model_spec,
                                   prefix=args.prefix)
    except (ImportError, OSError, ValueError) as err:
        print(f"propetl-export: error: {err}", file=sys.stderr)
        return 2
    for task, path in written.items():
        print(f"{task or name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
