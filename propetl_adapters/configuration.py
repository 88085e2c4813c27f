"""Adapter configs for the three ProPETL variants.

Each config subclasses the matching AdapterHub config, so every place in
`adapters` that matches on ``BnConfig`` / ``LoRAConfig`` / ``PrefixTuningConfig``
treats a ProPETL adapter like its plain counterpart. The extra field
``propetl_method`` survives the round trip through ``adapter_config.json`` and
tells the patched ``AdapterConfig._get_config_class`` which class to rebuild.
"""

from dataclasses import dataclass, fields
from typing import Dict, Mapping, Type, Union

from adapters.configuration.adapter_config import (
    ADAPTER_CONFIG_MAP,
    AdapterConfig,
    LoRAConfig,
    PrefixTuningConfig,
    SeqBnConfig,
)


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
    """

    density: float = 0.5
    shared: bool = True
    masked: bool = True
    random_mask: bool = False
    propetl_method: str = ""

    def validate_propetl_fields(self):
        name = type(self).__name__
        density = self.density
        if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 < density <= 1.0:
            raise ValueError(f"{name}.density must be a number in (0, 1], got {density!r}.")
        if self.random_mask and not self.masked:
            raise ValueError(f"{name}: random_mask=True needs masked=True (a random mask is still a mask).")

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
        if self.phm_layer or self.is_parallel or self.use_gating:
            raise ValueError("ProAdapterConfig supports plain sequential bottlenecks only (phm_layer, is_parallel "
                             "and use_gating must be False).")


@dataclass(eq=False)
class ProLoRAConfig(LoRAConfig, ProPETLFields):
    """ProLoRA: one LoRA pair per attention matrix (q, v) shared by all layers; A and B are masked per layer."""

    r: int = 32
    alpha: int = 48
    propetl_method: str = "prolora"

    def __post_init__(self):
        self.validate_propetl_fields()
        if self.composition_mode != "add" or self.use_gating or self.use_dora or self.vera_d is not None \
                or self.vera_b is not None:
            raise ValueError("ProLoRAConfig supports additive LoRA only (composition_mode='add', no gating, "
                             "DoRA or VeRA).")


@dataclass(eq=False)
class ProPrefixConfig(PrefixTuningConfig, ProPETLFields):
    """ProPrefix: one generated key/value prefix pair shared by all layers; the pair is masked per layer."""

    prefix_length: int = 64
    bottleneck_size: int = 512
    propetl_method: str = "proprefix"

    def __post_init__(self):
        self.validate_propetl_fields()
        if self.use_gating:
            raise ValueError("ProPrefixConfig does not support use_gating.")


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
