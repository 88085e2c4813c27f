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

from .configuration import HyperformerConfig, is_propetl_config, replace_adapter_config
from .methods.registry import method_of
from .multitask import active_task
from .serialization import adapter_layers


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


def _replace_layers(model, adapter_name: str, plain_config):
    """Put the plain module of each of the adapter's layer modules (bottleneck and LoRA layers, prefix pool) in
    its place, drop the shared parameters and point the adapter at ``plain_config``."""
    method = method_of(model.adapters_config.get(adapter_name))
    for path, layer in adapter_layers(model, adapter_name, method.layer_class).items():
        container, key = path.rsplit(".", 1)
        model.base_model.get_submodule(container)[key] = method.freeze(layer, plain_config)
    if adapter_name in model.base_model.shared_parameters:
        del model.base_model.shared_parameters[adapter_name]
    replace_adapter_config(model, adapter_name, plain_config)


def _freeze_layers(model, adapter_name: str, config):
    plain_config = config.plain_config()
    if isinstance(plain_config, PrefixTuningConfig):
        plain_config = plain_config.replace(flat=True)
    _replace_layers(model, adapter_name, plain_config)


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
    with active_task(task):
        _replace_layers(model, adapter_name, plain_config)
    return model
