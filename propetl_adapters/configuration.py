"""Adapter configs for the three ProPETL variants.

Each config subclasses the matching AdapterHub config, so every place in
`adapters` that matches on ``BnConfig`` / ``LoRAConfig`` / ``PrefixTuningConfig``
treats a ProPETL adapter like its plain counterpart. The extra field
``propetl_method`` survives the round trip through ``adapter_config.json`` and
tells the patched ``AdapterConfig._get_config_class`` which class to rebuild.
"""

import re
from dataclasses import dataclass, fields
from typing import Dict, Mapping, Optional, Sequence, Tuple, Type, Union

from adapters.configuration.adapter_config import (
    ADAPTER_CONFIG_MAP,
    AdapterConfig,
    LoRAConfig,
    PrefixTuningConfig,
    SeqBnConfig,
)
from torch import nn

TASK_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


def parse_task_list(tasks, where: str = "tasks") -> Tuple[str, ...]:
    """Task names from a '|'- or ','-separated string or a sequence; validated and de-duplicated in order."""
    if tasks is None:
        return ()
    if isinstance(tasks, str):
        names = [t.strip() for t in re.split(r"[|,]", tasks) if t.strip()]
    elif isinstance(tasks, (list, tuple)):
        names = [str(t).strip() for t in tasks]
    else:
        raise ValueError(f"{where} must be a list of task names or a 'a|b|c' string, got {tasks!r}.")
    for name in names:
        if not TASK_NAME_PATTERN.match(name) or hasattr(nn.ModuleDict, name):
            raise ValueError(f"{where}: invalid task name {name!r}; use letters, digits, '_' or '-', starting "
                             "with a letter (it names a module and a mask-file entry).")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{where}: task names repeated: {duplicates}.")
    return tuple(names)


def validate_tasks(config) -> list:
    """The task list of a config that needs one (Hyperformer), normalised; ValueError when it is empty."""
    tasks = list(parse_task_list(config.tasks, where=f"{type(config).__name__}.tasks"))
    if not tasks:
        raise ValueError(f"{type(config).__name__} needs tasks (e.g. 'hyperformer++[tasks=rte|mrpc]'): the "
                         "hypernetwork is conditioned on a task embedding.")
    return tasks


def check_geometry(config, integers=(), positives=(), fractions=()):
    """Refuse geometry fields that would build an empty or negative module, naming the field and its range."""
    name = type(config).__name__
    for field_name in integers:
        value = getattr(config, field_name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}.{field_name} must be an integer >= 1, got {value!r}.")
    for field_name in positives:
        value = getattr(config, field_name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(f"{name}.{field_name} must be a finite number > 0, got {value!r}.")
    for field_name in fractions:
        value = getattr(config, field_name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"{name}.{field_name} must be a number in [0, 1), got {value!r}.")


@dataclass(eq=False)
class ProPETLFields:
    """Fields shared by all ProPETL configs.

    Args:
        density: the kept fraction k of every masked tensor (the paper's "sparsity ratio k%").
        shared: one prototype for all layers (True) or one module per layer, each masked
            (False: the "only mask" ablation).
        masked: learn binary masks (True) or use the prototype unmasked (False: the
            "only share" ablation).
        random_mask: draw a fresh random sub-network at every forward pass instead of
            learning scores (the "random mask" ablation).
        tasks: task names of a multi-task adapter with hybrid layer/task masks (SPEC §1.3): a list,
            or one string 'rte|mrpc|stsb' (so ``proadapter[tasks=rte|mrpc]`` works). Empty: single task.
        task_density: kept fraction of every task mask.
        density: kept fraction of every layer mask; None means the variant's ``default_density`` for a single
            task (the reference scripts' k: ProAdapter 0.5, ProLoRA 0.1, ProPrefix 0.1; the paper's text says
            0.5 for all) and 0.3 with ``tasks`` (the paper's setting, which keeps about half of the prototype
            after the OR).
    """

    # Class-level facts of each variant's reference scripts (not dataclass fields, so not saved in configs).
    default_density = 0.5
    # Mask learning rate / prototype learning rate of the reference scripts (ProAdapter 3e-3 / 1e-4).
    reference_mask_lr_ratio = 30.0

    density: Optional[float] = None
    shared: bool = True
    masked: bool = True
    random_mask: bool = False
    tasks: Union[None, str, Sequence[str]] = None
    task_density: float = 0.3
    propetl_method: str = ""

    def validate_propetl_fields(self):
        name = type(self).__name__
        tasks = list(parse_task_list(self.tasks, where=f"{name}.tasks")) or None
        object.__setattr__(self, "tasks", tasks)  # configs are frozen after __init__; normalise once here
        for field_name in ("density", "task_density"):
            value = getattr(self, field_name)
            if field_name == "density" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
                raise ValueError(f"{name}.{field_name} must be a number in (0, 1], got {value!r}.")
        if self.random_mask and not self.masked:
            raise ValueError(f"{name}: random_mask=True needs masked=True (a random mask is still a mask).")
        if tasks and not (self.shared and self.masked):
            raise ValueError(f"{name}: tasks (hybrid layer/task masks) need shared=True and masked=True.")

    @property
    def layer_density(self) -> float:
        """The kept fraction of every layer mask (``density``, or its default for one task / several tasks)."""
        if self.density is not None:
            return self.density
        return 0.3 if self.tasks else self.default_density

    def plain_config(self) -> AdapterConfig:
        """The AdapterHub config of the plain method with the same geometry (used after freezing masks)."""
        plain_cls = PLAIN_PARENT[type(self)]
        plain_names = {f.name for f in fields(plain_cls)}
        return plain_cls(**{k: v for k, v in self.to_dict().items() if k in plain_names})


@dataclass(eq=False)
class ProAdapterConfig(SeqBnConfig, ProPETLFields):
    """ProAdapter: one Pfeiffer adapter after the FFN shared by all layers; W_down and W_up are masked per layer."""

    reduction_factor: Union[float, Mapping] = 12
    non_linearity: str = "relu"
    propetl_method: str = "proadapter"

    def __post_init__(self):
        self.validate_propetl_fields()
        if not isinstance(self.reduction_factor, Mapping):
            check_geometry(self, positives=("reduction_factor",))
        if self.phm_layer or self.is_parallel or self.use_gating:
            raise ValueError("ProAdapterConfig supports plain sequential bottlenecks only (phm_layer, is_parallel "
                             "and use_gating must be False).")


@dataclass(eq=False)
class ProLoRAConfig(LoRAConfig, ProPETLFields):
    """ProLoRA: one LoRA pair per attention matrix (q, v) shared by all layers; A and B are masked per layer."""

    r: int = 32
    alpha: int = 48
    propetl_method: str = "prolora"
    default_density = 0.1
    reference_mask_lr_ratio = 300.0  # 3e-2 / 1e-4

    def __post_init__(self):
        self.validate_propetl_fields()
        check_geometry(self, integers=("r",), positives=("alpha",), fractions=("dropout",))
        if self.composition_mode != "add" or self.use_gating or self.use_dora or self.vera_d is not None \
                or self.vera_b is not None:
            raise ValueError("ProLoRAConfig supports additive LoRA only (composition_mode='add', no gating, "
                             "DoRA or VeRA).")


@dataclass(eq=False)
class ProPrefixConfig(PrefixTuningConfig, ProPETLFields):
    """ProPrefix: one generated key/value prefix pair shared by all layers; the pair is masked per layer.

    ``joint_kv_mask``: one (prefix_length, 2 * inner) mask per layer that ranks the key and value prefixes
    together, as the reference does (default); False gives separate key and value masks (each top-k on its own),
    which is how adapters saved before this field existed were trained.
    """

    prefix_length: int = 64
    bottleneck_size: int = 512
    joint_kv_mask: bool = True
    propetl_method: str = "proprefix"
    default_density = 0.1
    reference_mask_lr_ratio = 1.0  # 1e-4 / 1e-4

    def __post_init__(self):
        self.validate_propetl_fields()
        check_geometry(self, integers=("prefix_length", "bottleneck_size"), fractions=("dropout",))
        if self.use_gating:
            raise ValueError("ProPrefixConfig does not support use_gating.")
        if self.tasks:
            raise ValueError("ProPrefixConfig does not support tasks: hybrid task masks are implemented for "
                             "proadapter (the paper's multi-task model) and prolora.")


@dataclass(eq=False)
class HyperformerConfig(SeqBnConfig):
    """Hyperformer++ (one hypernetwork for all layers and tasks) or Hyperformer (``shared_generators=False``:
    generators per layer and block). Adapters after self-attention and after the FFN, reduction 32,
    ``y + LN(up(gelu(down(y))))``; see ``methods/hyperformer.py``. ``tasks`` is required."""

    mh_adapter: bool = True
    output_adapter: bool = True
    reduction_factor: Union[float, Mapping] = 32
    non_linearity: str = "gelu"
    ln_after: bool = True
    tasks: Union[None, str, Sequence[str]] = None
    embedding_dim: int = 64
    projector_hidden_dim: int = 128
    projected_dim: int = 64
    shared_generators: bool = True
    baseline_method: str = "hyperformer++"

    def __post_init__(self):
        object.__setattr__(self, "tasks", validate_tasks(self))
        if isinstance(self.reduction_factor, Mapping) or self.ln_before or not self.ln_after or self.is_parallel \
                or self.use_gating or self.phm_layer:
            raise ValueError("HyperformerConfig: one reduction factor, ln_after=True, a sequential adapter without "
                             "gating or PHM.")
        check_geometry(self, integers=("embedding_dim", "projector_hidden_dim", "projected_dim"),
                       positives=("reduction_factor",))


# Baselines built the same way (registered names; ``baseline_method`` rebuilds the class from a saved config).
BASELINE_CONFIGS: Dict[str, AdapterConfig] = {
    "hyperformer++": HyperformerConfig(tasks=["task"]),
    "hyperformer": HyperformerConfig(tasks=["task"], shared_generators=False, baseline_method="hyperformer"),
}

PROPETL_CONFIGS: Dict[str, Type[AdapterConfig]] = {
    "proadapter": ProAdapterConfig,
    "prolora": ProLoRAConfig,
    "proprefix": ProPrefixConfig,
}
PLAIN_PARENT = {ProAdapterConfig: SeqBnConfig, ProLoRAConfig: LoRAConfig, ProPrefixConfig: PrefixTuningConfig}


def is_propetl_config(config) -> bool:
    return isinstance(config, ProPETLFields)


def register_configs():
    """Make the ProPETL names usable wherever `adapters` accepts a config string."""
    for name, cls in PROPETL_CONFIGS.items():
        ADAPTER_CONFIG_MAP[name] = cls()
    ADAPTER_CONFIG_MAP.update(BASELINE_CONFIGS)


def replace_adapter_config(model, adapter_name: str, config: AdapterConfig):
    """Point an existing adapter at another config (registered like any dict config)."""
    model.adapters_config.adapters.pop(adapter_name)
    model.adapters_config.add(adapter_name, config=config)
