"""The three ProPETL method modules: ProAdapter, ProLoRA and ProPrefix."""

from .adapter import MaskedLinear, ProAdapter
from .lora import ProLoRA
from .prefix import ProPrefixGroup

__all__ = ["MaskedLinear", "ProAdapter", "ProLoRA", "ProPrefixGroup"]
