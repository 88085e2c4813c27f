"""Every change this package makes to AdapterHub's `adapters` internals, in one place.

Each patch wraps one upstream function and says why. ``PATCHED_TARGETS`` lists them and
``tests/test_patches.py`` checks that each target still has the source this code was
written against (adapters 1.3.0), so an upgrade of `adapters` fails loudly.
"""

import re
from typing import Mapping

import adapters.utils
from adapters.composition import parse_composition
from adapters.configuration.adapter_config import ADAPTER_CONFIG_MAP, AdapterConfig, BnConfig, LoRAConfig
from adapters.loading import AdapterLoader
from adapters.methods.bottleneck import BottleneckLayer
from adapters.methods.lora import LoRALayer, LoRAMergedLinear
from adapters.methods.prefix_tuning import PrefixTuningPool
from adapters.model_mixin import ModelAdaptersMixin
from adapters.trainer import AdapterTrainer

from .configuration import PROPETL_CONFIGS, ProAdapterConfig, ProLoRAConfig, ProPrefixConfig, is_propetl_config
from .methods.adapter import ProAdapter
from .methods.lora import ProLoRA
from .methods.prefix import ProPrefixGroup
from .prototype import adopt_pending_prototype, discard_pending_prototype
from .serialization import (is_propetl_folder, load_propetl_adapter, read_saved_config, resolve_folder,
                            save_propetl_adapter, training_checkpoint)

_originals = {}


def _patch(owner, attribute: str, replacement, static: bool = False):
    original = owner.__dict__[attribute]
    _originals[(owner, attribute)] = original
    setattr(owner, attribute, staticmethod(replacement) if static else replacement)
    return original.__func__ if static else original


# Reason: a saved ProPETL config must come back as its own class, not as the plain parent.
def _get_config_class(config_dict):
    method = config_dict.get("propetl_method")
    if method:
        if method not in PROPETL_CONFIGS:
            raise ValueError(f"Unknown propetl_method {method!r} in adapter config; expected one of "
                             f"{sorted(PROPETL_CONFIGS)}.")
        return PROPETL_CONFIGS[method]
    return _upstream_get_config_class(config_dict)


# Reason: an unknown config name should list the names that exist.
def _load_config(cls, config, download_kwargs=None, **kwargs):
    try:
        return _upstream_load_config.__get__(None, cls)(config, download_kwargs=download_kwargs, **kwargs)
    except ValueError as err:
        if isinstance(config, str) and "Could not identify" in str(err):
            raise ValueError(f"Unknown adapter config {config!r}. Known names: {', '.join(sorted(ADAPTER_CONFIG_MAP))};"
                             f" bracket syntax like 'proadapter[density=0.3]' and paths to config files also work."
                             ) from err
        raise


# Reason: build ProAdapter modules (shared prototype + per-layer masks) for ProAdapter configs.
def _bottleneck_add_adapter(self, adapter_name: str, layer_idx: int) -> bool:
    config = self.adapters_config.match(adapter_name, config_type=BnConfig, layer_idx=layer_idx,
                                        location_key=self.location_key)
    if not isinstance(config, ProAdapterConfig):
        return _upstream_bottleneck_add_adapter(self, adapter_name, layer_idx)
    self.layer_idx = layer_idx
    if isinstance(config.reduction_factor, Mapping):
        raise ValueError("ProAdapterConfig.reduction_factor must be one number: every layer shares one prototype.")
    adapter = ProAdapter(adapter_name, self.model_config.hidden_size,
                         int(self.model_config.hidden_size // config.reduction_factor), config,
                         self.adapters_config, layer_idx)
    if self.is_layer_hooked:
        adapter.original_ln_after = False
    adapter.train(self.training)
    self.adapters[adapter_name] = adapter
    return True


# Reason: build ProLoRA modules (one prototype pair per attention matrix, per-layer masks).
def _lora_add_adapter(self, adapter_name: str, layer_idx: int, **kwargs) -> bool:
    config = self.adapters_config.match(adapter_name, config_type=LoRAConfig, layer_idx=layer_idx,
                                        location_key=self.location_key)
    if not isinstance(config, ProLoRAConfig):
        return _upstream_lora_add_adapter(self, adapter_name, layer_idx, **kwargs)
    self.layer_idx = layer_idx
    if isinstance(self, LoRAMergedLinear):
        raise ValueError("ProLoRA supports models with separate q/k/v projections (BERT, RoBERTa, T5), "
                         "not fused attention matrices.")
    if not self._check_lora_location(config):
        return False
    lora_A_shape, lora_B_shape = self._get_lora_shapes(config)
    matrix_key = getattr(self, "attn_key", None) or self.location_key
    lora = ProLoRA(lora_A_shape, lora_B_shape, config, matrix_key, self.adapters_config, adapter_name, layer_idx)
    lora.train(self.training)
    self.loras[adapter_name] = lora.to(self.weight.device)
    return True


# Reason: the prefix pool must build one shared generated pair and per-layer masks for ProPrefix.
def _confirm_prefix(self, prefix_name: str) -> bool:
    config = self.adapters_config.match(prefix_name, ProPrefixConfig)
    if config is None:
        return _upstream_confirm_prefix(self, prefix_name)
    if prefix_name not in self.prefix_counts:
        raise ValueError(f"Prefix {prefix_name} not found in PrefixTuningPool")
    group = ProPrefixGroup(prefix_name, self.prefix_counts[prefix_name], config, self.adapters_config)
    group.train(self.training)
    self.prefix_tunings[prefix_name] = group
    del self.prefix_counts[prefix_name]
    return True


# Reason: the prototype built by the first layer must be registered once, in shared_parameters.
def _add_adapter_weights(self, adapter_name: str):
    try:
        _upstream_add_adapter_weights(self, adapter_name)
    except Exception:
        discard_pending_prototype(self, adapter_name)
        raise
    prototype = adopt_pending_prototype(self, adapter_name)
    if prototype is not None:
        prototype.to(next(self.base_model.parameters()).device)
    config = self.adapters_config.get(adapter_name)
    if is_propetl_config(config) and config.shared and adapter_name not in self.base_model.shared_parameters:
        raise ValueError(f"Adapter '{adapter_name}' ({config.propetl_method}) was added to no layer of this "
                         f"{self.config.model_type} model; check leave_out and the method's locations.")


# Reason: the task list of a multi-task config uses '|' inside brackets (proadapter[tasks=rte|mrpc]), which
# upstream takes for a ConfigUnion separator; bare task names are also not Python literals.
def _parse_config_string(config_string: str):
    chunks, depth, start = [], 0, 0
    for position, char in enumerate(config_string):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "|" and depth == 0:
            chunks.append(config_string[start:position])
            start = position + 1
    chunks.append(config_string[start:])
    # tasks=a|b|c -> tasks='a,b,c' (a string literal without '|'; parse_task_list accepts both separators)
    quoted = [re.sub(r"\btasks=([A-Za-z][\w\-|]*)(?=[,\]])", lambda m: "tasks='" + m.group(1).replace("|", ",") + "'",
                     chunk) for chunk in chunks]
    return [pair for chunk in quoted for pair in _upstream_parse_config_string(chunk)]


# Reason: task masks live below the prototype dict; upstream train_adapter unfreezes only its direct values.
def _train_adapter(self, adapter_setup, train_embeddings=False):
    _upstream_train_adapter(self, adapter_setup, train_embeddings)
    names = parse_composition(adapter_setup).flatten()
    for name in self.base_model.shared_parameters:
        if name in names and is_propetl_config(self.adapters_config.get(name)):
            for parameter in self.base_model.shared_parameters[name].parameters():
                parameter.requires_grad = True


# Reason: ProPETL adapters save packed 1-bit masks and each tensor once (safetensors rejects the
# prefix pool's duplicate registrations).
def _loader_save(self, save_directory, name, meta_dict=None):
    if is_propetl_config(self.model.adapters_config.get(name)):
        return save_propetl_adapter(self, save_directory, name, meta_dict)
    return _upstream_loader_save(self, save_directory, name, meta_dict)


# Reason: ProPETL folders need their masks unpacked and checked against the model; a ProPETL
# adapter must never be overwritten by a folder of another method.
def _loader_load(self, adapter_name_or_path, config=None, version=None, model_name=None, load_as=None,
                 loading_info=None, leave_out=None, set_active=False, **kwargs):
    folder = resolve_folder(self, adapter_name_or_path, config, version, **kwargs)
    if is_propetl_folder(folder):
        if leave_out:
            raise ValueError("leave_out is not supported when loading a ProPETL adapter (its prototype and masks "
                             "are saved for every layer).")
        return load_propetl_adapter(self, folder, requested_config=config, load_as=load_as, set_active=set_active,
                                    loading_info=loading_info)
    saved = read_saved_config(folder) or {}
    target = load_as or saved.get("name")
    if target in self.model.adapters_config.adapters and is_propetl_config(self.model.adapters_config.get(target)):
        raise ValueError(f"{folder} holds a plain '{saved.get('config', {}).get('architecture') or 'bottleneck'}' "
                         f"adapter; it cannot overwrite ProPETL adapter '{target}'. Use load_as=... .")
    if config is not None and is_propetl_config(AdapterConfig.load(config)):
        raise ValueError(f"{folder} holds a plain adapter without ProPETL masks; it cannot be loaded as {config!r}.")
    return _upstream_loader_load(self, folder, config, version, model_name, load_as, loading_info=loading_info,
                                 leave_out=leave_out, set_active=set_active, **kwargs)


# Reason: trainer checkpoints must keep float scores so a resumed run continues exactly.
def _trainer_save(self, output_dir=None, state_dict=None):
    with training_checkpoint():
        return _upstream_trainer_save(self, output_dir, state_dict)


_upstream_get_config_class = _patch(AdapterConfig, "_get_config_class", _get_config_class, static=True)
_upstream_load_config = _patch(AdapterConfig, "load", classmethod(_load_config))
_upstream_bottleneck_add_adapter = _patch(BottleneckLayer, "add_adapter", _bottleneck_add_adapter)
_upstream_lora_add_adapter = _patch(LoRALayer, "add_adapter", _lora_add_adapter)
_upstream_confirm_prefix = _patch(PrefixTuningPool, "confirm_prefix", _confirm_prefix)
_upstream_add_adapter_weights = _patch(ModelAdaptersMixin, "_add_adapter_weights", _add_adapter_weights)
_upstream_loader_save = _patch(AdapterLoader, "save", _loader_save)
_upstream_loader_load = _patch(AdapterLoader, "load", _loader_load)
_upstream_trainer_save = _patch(AdapterTrainer, "_save", _trainer_save)
_upstream_parse_config_string = _patch(adapters.utils, "parse_adapter_config_string", _parse_config_string)
_upstream_train_adapter = _patch(ModelAdaptersMixin, "train_adapter", _train_adapter)

PATCHED_TARGETS = [(owner, attribute) for owner, attribute in _originals]


def upstream(owner, attribute: str):
    """The original (unpatched) object, for tests and for code that must bypass a patch."""
    return _originals[(owner, attribute)]
