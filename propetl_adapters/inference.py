"""Freezing masks into plain per-layer AdapterHub modules, so inference runs no top-k at all.

After ``freeze_masks(model, name)`` the adapter is an ordinary AdapterHub adapter of the
parent method (seq_bn, lora, prefix_tuning) whose per-layer tensors are ``prototype ⊙ mask``:
outputs are identical, ProLoRA can then be merged with ``model.merge_adapter(name)``, and
``save_adapter`` writes a plain adapter.
"""

import contextlib
from typing import Optional

import torch
from adapters.configuration import PrefixTuningConfig, SeqBnConfig
from adapters.methods.lora import LoRA
from adapters.methods.modeling import Adapter
from adapters.methods.prefix_tuning import FlatPrefixTuning, PrefixTuningGroup
from torch import nn

from .configuration import HyperformerConfig, is_propetl_config, replace_adapter_config
from .methods.adapter import MaskedLinear, ProAdapter
from .methods.hyperformer import HyperAdapter, plain_adapter_for_task
from .methods.lora import ProLoRA
from .multitask import active_task
from .serialization import canonical_named_modules, prefix_groups


def _frozen_adapter(module: ProAdapter, plain_config) -> Adapter:
    plain = Adapter(module.name, module.input_size, module.down_sample, plain_config)
    plain_linears = [m for m in plain.adapter_down if isinstance(m, nn.Linear)] + [plain.adapter_up]
    for masked, linear in zip(module.masked_linears(), plain_linears):
        weight, bias = masked.effective_weight_and_bias()
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    # Keep every other per-layer tensor (e.g. a layer norm before the bottleneck) as trained.
    for (name, source), target in zip(
            [(n, m) for n, m in module.adapter_down.named_children() if not isinstance(m, MaskedLinear)],
            [m for m in plain.adapter_down if not isinstance(m, nn.Linear)]):
        target.load_state_dict(source.state_dict())
    plain.original_ln_after = module.original_ln_after
    plain.train(module.training)
    return plain


def _frozen_lora(module: ProLoRA, plain_config) -> LoRA:
    plain = LoRA(tuple(module.lora_A.shape), tuple(module.lora_B.shape), plain_config, name=module.name)
    plain.lora_A.copy_(module.lora_A)
    plain.lora_B.copy_(module.lora_B)
    for attribute in ("enable_lora", "lora_ind"):  # the block layout in a fused q/k/v projection (GPT-2)
        if hasattr(module, attribute):
            setattr(plain, attribute, getattr(module, attribute))
    plain.train(module.training)
    return plain


def _frozen_prefix_group(group, plain_config: PrefixTuningConfig) -> PrefixTuningGroup:
    """Fixed per-layer prefixes in the layout of AdapterHub's flat prefix tuning."""
    plain = PrefixTuningGroup({}, plain_config)
    pairs = group.pairs()
    inner = group.n_heads * group.head_dim
    for location_key, location in group.location_masks().items():
        n_layers = location.n_layers
        flat = FlatPrefixTuning(n_layers, group.n_heads, inner, plain_config, n_embd_per_head=group.head_dim)
        per_layer = [torch.stack(group.masked_layer_prefixes(pairs, location, layer), dim=1) for layer in range(n_layers)]
        # FlatPrefixTuning reads its vector as (prefix_length, n_layers * 2, n_heads, head_dim).
        flat.control_trans = nn.Parameter(torch.stack(per_layer, dim=1).reshape(-1).clone())
        flat.train(group.training)
        plain[location_key] = flat
    return plain


_FROZEN = {ProAdapter: _frozen_adapter, ProLoRA: _frozen_lora}


@torch.no_grad()
def freeze_masks(model, adapter_name: str, task: Optional[str] = None):
    """Replace a ProPETL adapter by the plain adapter its masks select, layer by layer (outputs unchanged).

    A multi-task adapter is frozen for one ``task`` (its masks ``m_l OR m_task``); the other tasks are dropped.
    """
    config = model.adapters_config.get(adapter_name)
    if not is_propetl_config(config):
        raise ValueError(f"Adapter '{adapter_name}' is not a ProPETL adapter (config {type(config).__name__}).")
    if config.random_mask:
        raise ValueError(f"Adapter '{adapter_name}' draws a random mask at every forward pass; there is no fixed "
                         "sub-network to freeze.")
    if config.tasks and task not in config.tasks:
        raise ValueError(f"Adapter '{adapter_name}' is multi-task; pass task= one of {config.tasks} to freeze_masks "
                         f"(got {task!r}).")
    if not config.tasks and task is not None:
        raise ValueError(f"Adapter '{adapter_name}' has no tasks; call freeze_masks without task=.")
    with active_task(task) if task is not None else contextlib.nullcontext():
        _freeze_layers(model, adapter_name, config)
    return model


def _freeze_layers(model, adapter_name: str, config):
    plain_config = config.plain_config()
    if isinstance(plain_config, PrefixTuningConfig):
        plain_config = plain_config.replace(flat=True)
    for module in canonical_named_modules(model).values():
        # Bottleneck layers keep their adapters in `.adapters`, LoRA layers in `.loras`.
        for registry_name in ("adapters", "loras"):
            registry = getattr(module, registry_name, None)
            if isinstance(registry, nn.ModuleDict) and adapter_name in registry:
                masked = registry[adapter_name]
                if type(masked) in _FROZEN:
                    registry[adapter_name] = _FROZEN[type(masked)](masked, plain_config)
    for group in prefix_groups(model, adapter_name).values():
        model.base_model.prefix_tuning.prefix_tunings[adapter_name] = _frozen_prefix_group(group, plain_config)
    if adapter_name in model.base_model.shared_parameters:
        del model.base_model.shared_parameters[adapter_name]
    replace_adapter_config(model, adapter_name, plain_config)


@torch.no_grad()
def freeze_hypernetwork(model, adapter_name: str, task: str):
    """Replace a Hyperformer(++) adapter by the plain adapters its hypernetwork generates for ``task``, so
    inference runs no hypernetwork (outputs identical; the other tasks are dropped from this model)."""
    config = model.adapters_config.get(adapter_name)
    if not isinstance(config, HyperformerConfig):
        raise ValueError(f"Adapter '{adapter_name}' is not a Hyperformer adapter (config {type(config).__name__}).")
    if task not in config.tasks:
        raise ValueError(f"Adapter '{adapter_name}' has no task {task!r}; its tasks: {config.tasks}.")
    plain_config = SeqBnConfig(mh_adapter=True, output_adapter=True, reduction_factor=config.reduction_factor,
                               non_linearity=config.non_linearity, ln_after=True,
                               original_ln_before=config.original_ln_before,
                               original_ln_after=config.original_ln_after, residual_before_ln=config.residual_before_ln)
    for module in canonical_named_modules(model).values():
        registry = getattr(module, "adapters", None)
        if isinstance(registry, nn.ModuleDict) and isinstance(registry[adapter_name] if adapter_name in registry
                                                              else None, HyperAdapter):
            registry[adapter_name] = plain_adapter_for_task(registry[adapter_name], task, plain_config)
    del model.base_model.shared_parameters[adapter_name]
    replace_adapter_config(model, adapter_name, plain_config)
    return model
