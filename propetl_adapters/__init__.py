"""ProPETL ("One Network, Many Masks", ACL 2023) as an extension of AdapterHub's `adapters`.

Importing this package registers the configs ``proadapter``, ``prolora`` and ``proprefix``
and applies the patches listed in ``propetl_adapters.patches``.
"""

from .configuration import (PROPETL_CONFIGS, ProAdapterConfig, ProLoRAConfig, ProPETLFields, ProPrefixConfig,
                            is_propetl_config, register_configs)

register_configs()

from . import patches  # noqa: E402  (applies the patches once the configs exist)
from .mask_io import MASK_FILE_NAME, MaskFileError, read_mask_file  # noqa: E402
from .serialization import training_checkpoint  # noqa: E402
from .multitask import TaskRoutingError, active_task, add_task  # noqa: E402
from .inference import freeze_masks  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "PROPETL_CONFIGS", "ProAdapterConfig", "ProLoRAConfig", "ProPETLFields", "ProPrefixConfig", "is_propetl_config",
    "MASK_FILE_NAME", "MaskFileError", "read_mask_file", "training_checkpoint", "patches",
    "TaskRoutingError", "active_task", "add_task", "freeze_masks",
]
