"""One entry per method this package adds to AdapterHub, so code elsewhere asks the registry instead of testing
config classes one by one.

Each ``Method`` names its config class, the module ``patches.py`` builds for it in a layer (ProPrefix: one
group per prefix pool), the AdapterHub name of its plain counterpart, the function that turns one of its layer
modules into that plain module (``inference.freeze_masks`` / ``freeze_hypernetwork``), the count of values the
plain, unshared counterpart stores (``storage``), and the reference scripts' kept fraction and mask/prototype
learning-rate ratio (ProPETL variants; they live on the config classes, which sit below this module).
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from ..configuration import HyperformerConfig, ProAdapterConfig, ProLoRAConfig, ProPrefixConfig
from . import adapter, hyperformer, lora, prefix


@dataclass(frozen=True)
class Method:
    name: str
    config_class: type
    layer_class: type
    plain_name: str
    # (layer module, plain config) -> the AdapterHub module with the same outputs (for the active task, if any).
    freeze: Callable
    # (layer modules of one adapter, config) -> (stored, trainable) values of the plain, unshared method.
    plain_parameter_count: Callable[..., Tuple[int, int]]
    masked: bool = True  # ProPETL: binary masks over a shared prototype; False: generated weights (Hyperformer)
    tasks_required: bool = False  # needs a task list (Hyperformer: a task embedding conditions every weight)
    trains_layer_norms: bool = False  # the method's reference setup trains the backbone's layer norms

    @property
    def default_density(self) -> Optional[float]:
        """The reference scripts' kept fraction k of a single-task mask (None: no masks)."""
        return self.config_class.default_density if self.masked else None

    @property
    def mask_lr_ratio(self) -> Optional[float]:
        """The reference scripts' mask learning rate / prototype learning rate (None: no masks)."""
        return self.config_class.reference_mask_lr_ratio if self.masked else None


METHODS: Dict[str, Method] = {m.name: m for m in (
    Method("proadapter", ProAdapterConfig, adapter.ProAdapter, "seq_bn", adapter.frozen_adapter,
           adapter.plain_parameter_count),
    Method("prolora", ProLoRAConfig, lora.ProLoRA, "lora", lora.frozen_lora, lora.plain_parameter_count),
    Method("proprefix", ProPrefixConfig, prefix.ProPrefixGroup, "prefix_tuning", prefix.frozen_prefix_group,
           prefix.plain_parameter_count),
    Method("hyperformer", HyperformerConfig, hyperformer.HyperAdapter, "adapter per task",
           hyperformer.frozen_hyper_adapter, hyperformer.plain_parameter_count, masked=False,
           tasks_required=True, trains_layer_norms=True),
)}


def method_of(config) -> Optional[Method]:
    """The registry entry of an adapter config (None for AdapterHub's own methods and full fine-tuning)."""
    for method in METHODS.values():
        if isinstance(config, method.config_class):
            return method
    return None
