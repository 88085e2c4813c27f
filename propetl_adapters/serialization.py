"""Saving and loading ProPETL adapters through ``model.save_adapter`` / ``model.load_adapter``.

An exported adapter folder holds ``adapter_config.json``, the prototype weights (torch or
safetensors format, as the caller chooses) and ``propetl_masks.bin`` (1 bit per mask entry).
Float scores are not exported. Inside a ``training_checkpoint()`` block (AdapterTrainer
checkpoints) the weights file also keeps the float scores and the un-ejected prefix MLP,
so training resumes exactly.

Weights are keyed by their path below ``model.base_model`` and each tensor is written once,
even where AdapterHub registers a module under several paths (the prefix pool).

Methods that also train the backbone's layer norms (Hyperformer, Adapter†) save those separately
with ``save_base_layer_norms`` (``base_layer_norms.safetensors``) and restore them with
``load_base_layer_norms``: an adapter folder alone would not reproduce their outputs.
"""

import contextlib
import contextvars
import copy
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass
from os.path import isdir, join
from typing import Callable, Dict, Optional, Tuple

import torch
from adapters.configuration import AdapterConfig, build_full_config
from adapters.utils import (CONFIG_NAME, HEAD_CONFIG_NAME, HEAD_WEIGHTS_NAME, SAFE_HEAD_WEIGHTS_NAME,
                            SAFE_WEIGHTS_NAME, WEIGHTS_NAME, resolve_adapter_path)
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save as safetensors_bytes
from safetensors.torch import save_file as save_safetensors_file

from .adapter_folder import MANIFEST_NAME, AdapterFolderError, commit_folder, is_staging, verify_folder
from .configuration import ProPrefixConfig
from .atomic import atomic_write_bytes
from .mask_io import MASK_FILE_NAME, MaskFileError, read_mask_file, write_mask_file
from .masks import TensorMask
from .multitask import TASK_MASKS_ATTRIBUTE
from .methods.prefix import FLAT_KEY, ProPrefixGroup, generate_pairs

logger = logging.getLogger(__name__)
_keep_training_state = contextvars.ContextVar("propetl_keep_training_state", default=False)
_compact_format = contextvars.ContextVar("propetl_compact_format", default=None)
COMPACT_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# int8: every float tensor of two or more dimensions as int8 per row with a bfloat16 scale per row.
INT8 = "int8"
COMPACT_FORMATS = (*COMPACT_DTYPES, INT8)
INT8_SCALE_SUFFIX = ".int8_row_scale"  # the scale of tensor KEY is stored as KEY + this suffix
ADAPTER_CONTAINERS = ("adapters", "loras", "prefix_tunings", "shared_parameters")
BASE_LAYER_NORMS_FILE = "base_layer_norms.safetensors"
MANIFEST_KEY = "propetl_manifest"  # in adapter_config.json of every folder saved with a manifest


@contextlib.contextmanager
def training_checkpoint():
    """Within this block ``save_adapter`` also writes float scores and the un-ejected prototype."""
    token = _keep_training_state.set(True)
    try:
        yield
    finally:
        _keep_training_state.reset(token)


def check_compact_format(name: str) -> str:
    """``name`` if it is a compact prototype format ('bfloat16', 'float16' or 'int8'); else a ValueError."""
    if name not in COMPACT_FORMATS:
        raise ValueError(f"compact prototype dtype must be one of {sorted(COMPACT_FORMATS)}, got {name!r}.")
    return name


@contextlib.contextmanager
def compact_export(prototype_dtype: str = "bfloat16"):
    """Within this block ``save_adapter`` writes ProPETL adapters compactly: the prototype (every stored float)
    rounded to ``prototype_dtype`` and the masks range-coded near log2 C(numel, kept) bits. Loading needs nothing
    special; the loaded model equals the trained one with its prototype rounded the same way. Checkpoints
    (``training_checkpoint``) are never compact."""
    token = _compact_format.set(check_compact_format(prototype_dtype))
    try:
        yield
    finally:
        _compact_format.reset(token)


def compact_tensors(tensors: Dict[str, torch.Tensor], prototype_dtype: str) -> Dict[str, torch.Tensor]:
    """The tensors as a compact export stores them; non-float tensors as they are.

    bfloat16 / float16: every float in that dtype. int8: every float tensor of two or more dimensions as int8
    codes per row (last dimension), symmetric, with the row's scale max|value| / 127 rounded to bfloat16 and
    stored beside it (``KEY + INT8_SCALE_SUFFIX``); one-dimensional floats (biases) in bfloat16."""
    if check_compact_format(prototype_dtype) != INT8:
        dtype = COMPACT_DTYPES[prototype_dtype]
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    stored = {}
    for key, value in tensors.items():
        if not value.is_floating_point() or value.dim() < 2:
            stored[key] = value.to(torch.bfloat16) if value.is_floating_point() else value
            continue
        rows = value.detach().float().reshape(-1, value.shape[-1])
        scale = (rows.abs().amax(dim=1) / 127).to(torch.bfloat16)
        divisor = torch.where(scale == 0, torch.ones_like(scale), scale).float().unsqueeze(1)
        stored[key] = torch.round(rows / divisor).clamp(-127, 127).to(torch.int8).reshape(value.shape)
        stored[key + INT8_SCALE_SUFFIX] = scale
    return stored


def expand_compact(tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The values a compact file stands for: int8 rows times their scale (float32); other tensors unchanged."""
    expanded = {}
    for key, value in tensors.items():
        if key.endswith(INT8_SCALE_SUFFIX):
            continue
        scale = tensors.get(key + INT8_SCALE_SUFFIX)
        if scale is None:
            expanded[key] = value
        elif value.dtype != torch.int8 or scale.numel() != value.numel() // value.shape[-1]:
            raise ValueError(f"tensor '{key}' has an int8 row scale but is {value.dtype} of shape "
                             f"{tuple(value.shape)} with {scale.numel()} scales (expected int8, one scale per row).")
        else:
            rows = value.reshape(-1, value.shape[-1]).float() * scale.float().unsqueeze(1)
            expanded[key] = rows.reshape(value.shape)
    return expanded


def round_as_compact(tensors: Dict[str, torch.Tensor], prototype_dtype: str) -> Dict[str, torch.Tensor]:
    """The values a model holds after loading these tensors from a compact export in ``prototype_dtype``."""
    return expand_compact(compact_tensors(tensors, prototype_dtype))


def save_compact(model, save_directory: str, adapter_name: str, prototype_dtype: str = "bfloat16", **kwargs):
    """``model.save_adapter(save_directory, adapter_name, **kwargs)`` inside ``compact_export(prototype_dtype)``."""
    with compact_export(prototype_dtype):
        model.save_adapter(save_directory, adapter_name, **kwargs)


def belongs_to_adapter(adapter_name: Optional[str], path: str) -> bool:
    """Whether ``path`` lies inside adapter ``adapter_name`` (None: inside any adapter)."""
    dotted = f".{path}."
    return any(f".{kind}.{adapter_name}." in dotted if adapter_name is not None else f".{kind}." in dotted
               for kind in ADAPTER_CONTAINERS)


def is_layer_norm(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.LayerNorm) or type(module).__name__ == "T5LayerNorm"


def canonical_named_modules(root: torch.nn.Module) -> Dict[str, torch.nn.Module]:
    """Each module once, under its shortest path (AdapterHub registers the prefix pool under every layer)."""
    best: Dict[int, Tuple[str, torch.nn.Module]] = {}
    for path, module in root.named_modules(remove_duplicate=False):
        if id(module) not in best or len(path) < len(best[id(module)][0]):
            best[id(module)] = (path, module)
    return {path: module for path, module in best.values()}


def adapter_tensors(model, adapter_name: str) -> Dict[str, torch.Tensor]:
    """Every parameter and buffer of one adapter, keyed by its canonical path below base_model."""
    tensors = {}
    for module_path, module in canonical_named_modules(model.base_model).items():
        for name, tensor in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            path = f"{module_path}.{name}" if module_path else name
            if belongs_to_adapter(adapter_name, path):
                tensors[path] = tensor
    return tensors


def base_layer_norm_parameters(model) -> Dict[str, torch.nn.Parameter]:
    """The backbone's own layer-norm parameters (none of an adapter's), keyed by their path below base_model."""
    parameters = {}
    for module_path, module in canonical_named_modules(model.base_model).items():
        if not is_layer_norm(module) or belongs_to_adapter(None, module_path):
            continue
        for name, param in module.named_parameters(recurse=False):
            parameters[f"{module_path}.{name}" if module_path else name] = param
    return parameters


def save_base_layer_norms(model, folder: str) -> str:
    """Write the backbone's layer norms to ``folder/base_layer_norms.safetensors`` (atomically); returns the path."""
    os.makedirs(folder, exist_ok=True)
    path = join(folder, BASE_LAYER_NORMS_FILE)
    partial = path + ".partial"
    save_safetensors_file({name: p.detach().contiguous() for name, p in base_layer_norm_parameters(model).items()},
                          partial)
    os.replace(partial, path)
    return path


def load_base_layer_norms(model, folder_or_file: str):
    """Copy saved backbone layer norms into ``model``; names and shapes must match exactly."""
    path = join(folder_or_file, BASE_LAYER_NORMS_FILE) if isdir(folder_or_file) else folder_or_file
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no saved layer norms (expected {BASE_LAYER_NORMS_FILE})")
    saved = load_safetensors(path)
    own = base_layer_norm_parameters(model)
    if set(saved) != set(own):
        unknown, missing = sorted(set(saved) - set(own)), sorted(set(own) - set(saved))
        raise ValueError(f"{path}: its layer norms do not match this model's (not in the model: {unknown[:3]}, "
                         f"not in the file: {missing[:3]}); was it saved from another architecture?")
    with torch.no_grad():
        for name, tensor in saved.items():
            if tensor.shape != own[name].shape:
                raise ValueError(f"{path}: {name} has shape {tuple(tensor.shape)}, the model expects "
                                 f"{tuple(own[name].shape)}")
            own[name].copy_(tensor)


def adapter_masks(model, adapter_name: str) -> Dict[str, TensorMask]:
    """The learned masks of one adapter, keyed by canonical module path (the mask file's entry names)."""
    return {path: module for path, module in canonical_named_modules(model.base_model).items()
            if isinstance(module, TensorMask) and module.learned and belongs_to_adapter(adapter_name, path)}


def adapter_layers(model, adapter_name: str, layer_class: type) -> Dict[str, torch.nn.Module]:
    """The ``layer_class`` modules of one adapter (each once), keyed by canonical module path."""
    return {path: module for path, module in canonical_named_modules(model.base_model).items()
            if isinstance(module, layer_class) and belongs_to_adapter(adapter_name, path)}


def prefix_groups(model, adapter_name: str) -> Dict[str, ProPrefixGroup]:
    return adapter_layers(model, adapter_name, ProPrefixGroup)


def _prototype_prefix(adapter_name: str, group_path: str, config) -> str:
    return f"shared_parameters.{adapter_name}." if config.shared else f"{group_path}.unshared_prototype."


def export_state(model, adapter_name: str, keep_training_state: bool = False) -> Tuple[Dict[str, torch.Tensor], dict]:
    """The tensors and config that represent a ProPETL adapter on disk."""
    config = model.adapters_config.get(adapter_name)
    tensors = adapter_tensors(model, adapter_name)
    if not keep_training_state:
        score_paths = {f"{path}.scores" for path in adapter_masks(model, adapter_name)}
        tensors = {k: v for k, v in tensors.items() if k not in score_paths}
        if isinstance(config, ProPrefixConfig) and not config.flat:
            # Store the generated pairs, not the MLP that generates them (what BLS counts).
            for group_path, group in prefix_groups(model, adapter_name).items():
                prefix = _prototype_prefix(adapter_name, group_path, config)
                with torch.no_grad():
                    pairs = generate_pairs(group.prototype_source.get(), config).detach().clone()
                tensors = {k: v for k, v in tensors.items() if not k.startswith(prefix)}
                tensors[prefix + FLAT_KEY] = pairs
            config = config.replace(flat=True)
    return {k: v.detach().contiguous() for k, v in tensors.items()}, config


def save_propetl_adapter(loader, save_directory: str, adapter_name: str, meta_dict: Optional[dict] = None):
    """Body of the patched ``AdapterLoader.save`` for ProPETL configs.

    Through ``model.save_adapter`` it writes into the staging folder of a group commit (with the head);
    called on its own it commits its own files the same way."""
    model = loader.model
    if adapter_name not in model.adapters_config.adapters:
        raise ValueError(f"No adapter named '{adapter_name}' in this model "
                         f"(adapters: {sorted(model.adapters_config.adapters)}).")
    if not is_staging(save_directory):
        return commit_folder(save_directory,
                             lambda staging: save_propetl_adapter(loader, staging, adapter_name, meta_dict))
    model.apply_to_adapter_layers(lambda _, layer: layer.pre_save_adapters())
    keep = _keep_training_state.get()
    tensors, config = export_state(model, adapter_name, keep_training_state=keep)
    compact_format = None if keep else _compact_format.get()
    if compact_format is not None:
        tensors = compact_tensors(tensors, compact_format)
    if loader.weights_helper.use_safetensors:
        weights_name, weights = SAFE_WEIGHTS_NAME, safetensors_bytes(tensors)
    else:
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        weights_name, weights = WEIGHTS_NAME, buffer.getvalue()
    atomic_write_bytes(join(save_directory, weights_name), weights)
    masks = adapter_masks(model, adapter_name)
    if masks:
        # The digest ties the masks to these weights: a mask file from another save is refused on load.
        metadata = {"adapter": adapter_name, "method": config.propetl_method, "training_state": keep,
                    "weights": {"file": weights_name, "sha256": hashlib.sha256(weights).hexdigest()}}
        if compact_format is not None:
            metadata["prototype_dtype"] = compact_format
        write_mask_file(join(save_directory, MASK_FILE_NAME), metadata,
                        [(path, mask.binary(), mask.density) for path, mask in masks.items()],
                        coding="bits" if compact_format is None else "range")
    config_dict = build_full_config(config, model.config, model_name=model.model_name, name=adapter_name,
                                    model_class=model.__class__.__name__)
    config_dict[MANIFEST_KEY] = MANIFEST_NAME  # a folder saved with a manifest must never load without it
    if meta_dict:
        config_dict.update({k: v for k, v in meta_dict.items() if k not in config_dict})
    atomic_write_bytes(join(save_directory, CONFIG_NAME), json.dumps(config_dict, indent=2, sort_keys=True).encode())


def read_saved_config(folder: str) -> Optional[dict]:
    path = join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        return None
    saved = _read_json_object(path)
    config = saved.get("config")
    if isinstance(config, dict) and config.get("propetl_method") == "proprefix":
        config.setdefault("joint_kv_mask", False)  # saved before the field existed: separate key/value masks
    return saved


def _read_json_object(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterFolderError(f"{path}: not valid JSON ({err}).") from err
    if not isinstance(data, dict):
        raise AdapterFolderError(f"{path}: expected a JSON object, found {type(data).__name__}.")
    return data


def is_propetl_folder(folder: str) -> bool:
    saved = read_saved_config(folder) if isdir(folder) else None
    return bool(saved and isinstance(saved.get("config"), dict) and saved["config"].get("propetl_method"))


def _read_tensors(path: str, what: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """Tensors of a safetensors / torch file (pickles are never executed) and the SHA-256 of its bytes."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        tensors = load_safetensors_bytes(data) if path.endswith(".safetensors") else \
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        raise AdapterFolderError(f"{path}: cannot read the {what} ({type(err).__name__}: {err}).") from err
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise AdapterFolderError(f"{path}: the {what} file does not hold a name -> tensor mapping.")
    return tensors, hashlib.sha256(data).hexdigest()


def _read_weights(folder: str, use_safetensors: bool, listed: Optional[dict]) -> Tuple[Dict[str, torch.Tensor], str, str]:
    """(tensors, file name, SHA-256) of the prototype weights; with a manifest, of the file it lists."""
    names = [SAFE_WEIGHTS_NAME, WEIGHTS_NAME] if use_safetensors else [WEIGHTS_NAME, SAFE_WEIGHTS_NAME]
    for name in names:
        if os.path.isfile(join(folder, name)) and (listed is None or name in listed):
            tensors, sha256 = _read_tensors(join(folder, name), "prototype weights")
            return tensors, name, sha256
    raise FileNotFoundError(f"{folder}: no weights file ({WEIGHTS_NAME} or {SAFE_WEIGHTS_NAME}).")


def _rename(key: str, old: str, new: str) -> str:
    if old == new:
        return key
    for kind in ("adapters", "loras", "prefix_tunings", "shared_parameters"):
        key = ("." + key).replace(f".{kind}.{old}.", f".{kind}.{new}.")[1:]
    return key


def _check_mask_header(mask_file, config, folder: str):
    header = mask_file.header
    if header.get("method") != config.propetl_method:
        raise MaskFileError(f"{folder}/{MASK_FILE_NAME}: masks of a '{header.get('method')}' adapter, but "
                            f"adapter_config.json says '{config.propetl_method}'.")
    def expected_density(entry_name: str) -> float:
        return config.task_density if f".{TASK_MASKS_ATTRIBUTE}." in f".{entry_name}." else config.layer_density

    wrong = [e for e in mask_file.entries if e["density"] != expected_density(e["name"])]
    if wrong:
        raise MaskFileError(f"{folder}/{MASK_FILE_NAME}: entry '{wrong[0]['name']}' was saved with density "
                            f"{wrong[0]['density']} (kept {wrong[0]['kept']}), but adapter_config.json gives it "
                            f"{expected_density(wrong[0]['name'])}.")


def _install(model, adapter_name: str, tensors: Dict[str, torch.Tensor], mask_file, folder: str):
    """Copy saved tensors and masks into the model's adapter; raises before partial state is visible to callers."""
    targets = adapter_tensors(model, adapter_name)
    masks = adapter_masks(model, adapter_name)
    score_paths = {f"{path}.scores" for path in masks}
    for key, value in tensors.items():
        if key not in targets:
            raise ValueError(f"{folder}: weights file has tensor '{key}', which this model's adapter "
                             f"'{adapter_name}' does not have (is it the same model architecture and config?).")
        if tuple(targets[key].shape) != tuple(value.shape):
            raise ValueError(f"{folder}: tensor '{key}' has shape {tuple(value.shape)}, the model expects "
                             f"{tuple(targets[key].shape)}.")
    missing = [k for k in targets if k not in tensors and k not in score_paths]
    if missing:
        raise ValueError(f"{folder}: weights file lacks {len(missing)} tensor(s) of adapter '{adapter_name}', "
                         f"e.g. '{missing[0]}'.")
    has_scores = any(k in tensors for k in score_paths)
    if masks:
        saved_names, model_names = set(mask_file.masks), set(masks)
        if saved_names != model_names:
            extra, lacking = sorted(saved_names - model_names), sorted(model_names - saved_names)
            raise MaskFileError(
                f"{folder}/{MASK_FILE_NAME}: holds {len(saved_names)} masks, the model's adapter '{adapter_name}' "
                f"has {len(model_names)}" + (f"; not in the model: '{extra[0]}'" if extra else "")
                + (f"; missing from the file: '{lacking[0]}'" if lacking else "") + ".")
        for path, mask in masks.items():
            saved = mask_file.masks[path]
            if tuple(saved.shape) != mask.shape or int(saved.sum()) != mask.kept:
                raise MaskFileError(f"{folder}/{MASK_FILE_NAME}: mask '{path}' has shape {tuple(saved.shape)} and "
                                    f"keeps {int(saved.sum())}; the model expects shape {mask.shape} keeping "
                                    f"{mask.kept}.")
    with torch.no_grad():
        for key, value in tensors.items():
            targets[key].copy_(value)
        for path, mask in masks.items():
            if not has_scores:
                mask.load_binary(mask_file.masks[path])
            elif not torch.equal(mask.binary().bool(), mask_file.masks[path]):
                raise MaskFileError(f"{folder}/{MASK_FILE_NAME}: mask '{path}' disagrees with the saved scores.")


def verify_saved_folder(folder: str, saved: dict, warn: bool = True) -> Optional[dict]:
    """Every file against the manifest (see adapter_folder); None only for folders saved before manifests."""
    listed = verify_folder(folder)
    if listed is None and saved.get(MANIFEST_KEY):
        raise AdapterFolderError(f"{join(folder, MANIFEST_NAME)}: missing, but {CONFIG_NAME} says the folder was "
                                 "saved with one; its files cannot be checked.")
    if listed is None and warn:
        logger.warning("%s was saved without %s (an older version of this library): its files are not "
                       "checked as a unit.", folder, MANIFEST_NAME)
    return listed


def _config_difference(existing, config) -> Optional[str]:
    ours, theirs = existing.to_dict(), config.to_dict()
    for key in sorted(set(ours) | set(theirs)):
        if ours.get(key) != theirs.get(key):
            return f"{key}={theirs.get(key)!r} in the folder, {ours.get(key)!r} in the model"
    return None


class LoadSnapshot:
    """What loading a folder may change (adapter registration and tensors, head, active setup), to put back."""

    def __init__(self, model, adapter_name: str, head_name: Optional[str] = None):
        self.model, self.adapter_name = model, adapter_name
        self.adapter_existed = adapter_name in model.adapters_config.adapters
        self.adapter_tensors = {k: v.detach().clone() for k, v in adapter_tensors(model, adapter_name).items()} \
            if self.adapter_existed else None
        self.active_setup = model.adapters_config.active_setup
        heads = getattr(model, "heads", None)
        self.head_name = head_name if heads is not None else None
        self.head = heads[head_name] if self.head_name is not None and head_name in heads else None
        self.head_state = copy.deepcopy(self.head.state_dict()) if self.head is not None else None
        self.head_configs = copy.deepcopy(dict(getattr(model.config, "prediction_heads", {}) or {}))
        self.labels = (copy.deepcopy(model.config.label2id), copy.deepcopy(model.config.id2label))
        self.active_heads = copy.copy(getattr(model, "_active_heads", None))

    def restore(self):
        model, name = self.model, self.adapter_name
        if not self.adapter_existed and name in model.adapters_config.adapters:
            model.delete_adapter(name)
        elif self.adapter_existed:
            with torch.no_grad():
                for key, tensor in adapter_tensors(model, name).items():
                    tensor.copy_(self.adapter_tensors[key])
        model.adapters_config.active_setup = self.active_setup
        if self.head_name is None:
            return
        if self.head is None and self.head_name in model.heads:
            del model.heads[self.head_name]
        elif self.head is not None:
            model.heads[self.head_name] = self.head
            self.head.load_state_dict(self.head_state)
        model.config.prediction_heads = self.head_configs
        model.config.label2id, model.config.id2label = self.labels
        model._active_heads = self.active_heads


def load_propetl_adapter(loader, folder: str, requested_config=None, load_as: Optional[str] = None,
                         set_active: bool = False, loading_info=None) -> Tuple[str, str]:
    """Body of the patched ``AdapterLoader.load`` for ProPETL folders: every file is read and checked before
    anything is installed, and the model is unchanged if it raises."""
    model = loader.model
    saved = read_saved_config(folder)
    listed = verify_saved_folder(folder, saved)
    config_path = join(folder, CONFIG_NAME)
    if not isinstance(saved.get("name"), str) or not isinstance(saved.get("config"), dict):
        raise AdapterFolderError(f"{config_path}: needs a string 'name' and a 'config' object.")
    try:
        config = AdapterConfig.load(saved["config"])
    except (ValueError, TypeError) as err:
        raise AdapterFolderError(f"{config_path}: invalid adapter config ({err}).") from err
    if requested_config is not None and AdapterConfig.load(requested_config).to_dict().get("propetl_method") \
            != config.propetl_method:
        raise ValueError(f"{folder} holds a '{config.propetl_method}' adapter; it cannot be loaded with config "
                         f"{requested_config!r}.")
    saved_name = saved["name"]
    adapter_name = load_as or saved_name
    existing = model.adapters_config.get(adapter_name) if adapter_name in model.adapters_config.adapters else None
    if existing is not None and getattr(existing, "propetl_method", None) != config.propetl_method:
        kind = getattr(existing, "propetl_method", None) or type(existing).__name__
        raise ValueError(f"{folder} holds a '{config.propetl_method}' adapter, but adapter '{adapter_name}' in the "
                         f"model is a '{kind}'; load it under another name (load_as=...).")
    difference = _config_difference(existing, config) if existing is not None else None
    if difference:
        raise ValueError(f"{config_path}: adapter '{adapter_name}' in the model has another config ({difference}); "
                         f"load it under another name (load_as=...) or delete_adapter('{adapter_name}') first.")
    tensors, weights_name, weights_sha256 = _read_weights(folder, loader.weights_helper.use_safetensors, listed)
    mask_file = None
    if config.masked and not config.random_mask:
        mask_file = read_mask_file(join(folder, MASK_FILE_NAME))
        _check_mask_header(mask_file, config, folder)
        if mask_file.weights_sha256 is not None and mask_file.weights_sha256 != weights_sha256:
            raise MaskFileError(f"{join(folder, MASK_FILE_NAME)}: saved with weights of SHA-256 "
                                f"{mask_file.weights_sha256[:16]}..., but {weights_name} has {weights_sha256[:16]}... "
                                "(masks and weights come from different saves).")
        mask_file.masks = {_rename(k, saved_name, adapter_name): v for k, v in mask_file.masks.items()}
    try:
        tensors = expand_compact({_rename(k, saved_name, adapter_name): v for k, v in tensors.items()})
    except ValueError as err:
        raise AdapterFolderError(f"{join(folder, weights_name)}: {err}") from err

    snapshot = LoadSnapshot(model, adapter_name)
    try:
        if existing is None:
            model.add_adapter(adapter_name, config=config)
        _install(model, adapter_name, tensors, mask_file, folder)
    except BaseException:
        snapshot.restore()
        raise
    if set_active:
        model.set_active_adapters(adapter_name)
    if isinstance(loading_info, dict):
        loading_info.setdefault("missing_keys", [])
        loading_info.setdefault("unexpected_keys", [])
    return folder, adapter_name


@dataclass
class HeadFile:
    name: Optional[str]
    path: str
    model_class: str
    tensors: Dict[str, torch.Tensor]


def read_head_file(folder: str, use_safetensors: bool, load_as: Optional[str]) -> Optional[HeadFile]:
    """The saved prediction head, read and checked before the load starts (None: the folder has no head)."""
    config_path, torch_path, safe_path = (join(folder, n) for n in (HEAD_CONFIG_NAME, HEAD_WEIGHTS_NAME,
                                                                   SAFE_HEAD_WEIGHTS_NAME))
    has_weights = os.path.isfile(torch_path) or os.path.isfile(safe_path)
    if not has_weights and not os.path.isfile(config_path):
        return None
    if not os.path.isfile(config_path):
        raise AdapterFolderError(f"{config_path}: missing, but the folder holds head weights.")
    # The file AdapterHub's head loader reads: safetensors only when asked for and present.
    weights_path = safe_path if use_safetensors and os.path.isfile(safe_path) else torch_path
    if not os.path.isfile(weights_path):
        raise AdapterFolderError(f"{weights_path}: missing, but {HEAD_CONFIG_NAME} describes a head"
                                 + (" (it was saved with use_safetensors=True)" if os.path.isfile(safe_path) else "")
                                 + ".")
    head_config = _read_json_object(config_path)
    # 'name' is None for the static head of a plain transformers model
    if not isinstance(head_config.get("name"), (str, type(None))) or not isinstance(head_config.get("model_class"),
                                                                                      str):
        raise AdapterFolderError(f"{config_path}: needs a 'name' and a string 'model_class'.")
    tensors, _ = _read_tensors(weights_path, "head weights")
    old = head_config.get("name")
    new = load_as or old
    if old is not None and new != old:
        tensors = {k.replace(f"heads.{old}.", f"heads.{new}."): v for k, v in tensors.items()}
    return HeadFile(new, weights_path, head_config["model_class"], tensors)


def check_head_installed(model, head: HeadFile):
    """Every tensor of the loaded head came from the file (AdapterHub loads heads leniently)."""
    heads = getattr(model, "heads", None)
    if heads is None or head.name is None:  # a static head: AdapterHub loads it into the model as is
        return
    if head.name not in heads:
        raise AdapterFolderError(f"{head.path}: head '{head.name}' was not loaded ({HEAD_CONFIG_NAME} names model "
                                 f"class {head.model_class}, this model is {type(model).__name__}).")
    for key, tensor in heads[head.name].state_dict().items():
        saved = head.tensors.get(f"heads.{head.name}.{key}")
        if saved is None:
            raise AdapterFolderError(f"{head.path}: lacks tensor 'heads.{head.name}.{key}' of head '{head.name}'.")
        if not torch.equal(saved.to(tensor.dtype), tensor):
            raise AdapterFolderError(f"{head.path}: tensor 'heads.{head.name}.{key}' was not loaded as saved.")


def load_folder_transaction(model, folder: str, load_as: Optional[str], with_head: bool, use_safetensors: bool,
                            load: Callable[[], str]) -> str:
    """Run ``load()`` (AdapterHub's load_adapter: adapter, then head) as one unit: the head file is read and
    checked first, and any failure puts back the adapter, the head and the active setup."""
    saved = read_saved_config(folder)
    verify_saved_folder(folder, saved, warn=False)  # the adapter loader checks again, and warns
    head = read_head_file(folder, use_safetensors, load_as) if with_head else None
    snapshot = LoadSnapshot(model, load_as or saved.get("name"), head.name if head else None)
    try:
        name = load()
        if head is not None:
            check_head_installed(model, head)
        return name
    except BaseException as err:
        snapshot.restore()
        if isinstance(err, Exception) and folder not in str(err):  # e.g. AdapterHub's head loader
            raise AdapterFolderError(f"{folder}: loading failed, the model is unchanged "
                                     f"({type(err).__name__}: {err})") from err
        raise


def resolve_folder(loader, adapter_name_or_path: str, requested_config=None, version=None, **kwargs) -> str:
    if isdir(adapter_name_or_path):
        return adapter_name_or_path
    return resolve_adapter_path(adapter_name_or_path, loader.model.model_name,
                                adapter_config=AdapterConfig.load(requested_config) if requested_config else None,
                                version=version, **kwargs)
