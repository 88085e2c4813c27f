"""The shared-prototype registry.

A ProPETL prototype is ONE ``nn.ParameterDict`` per adapter name, kept in AdapterHub's
``base_model.shared_parameters[adapter_name]`` store (so it is saved, counted and
frozen once). Layers cannot see the model while AdapterHub adds an adapter, so the
first layer that needs the prototype builds it into a pending slot keyed by the
model's ``ModelAdaptersConfig``; the model adopts it into ``shared_parameters`` once
every layer is built (see ``patches``).

At forward time a layer reads the prototype from the ``ForwardContext`` (which the
model fills from ``shared_parameters``), so replicas made by ``nn.DataParallel`` use
their own copy; outside a forward context it falls back to the object it was built with.
"""

from typing import Callable, Dict, Optional

from adapters.context import ForwardContext
from torch import nn

# id(ModelAdaptersConfig) -> {adapter name: prototype}. Slots live only while one add_adapter runs
# (ModelAdaptersConfig is unhashable, so it is keyed by id).
_pending: Dict[int, Dict[str, nn.ParameterDict]] = {}


def pending_prototype(adapters_config, adapter_name: str, build: Callable[[], nn.ParameterDict]) -> nn.ParameterDict:
    """The prototype being built for ``adapter_name``; the first caller builds it."""
    slots = _pending.setdefault(id(adapters_config), {})
    if adapter_name not in slots:
        slots[adapter_name] = build()
    return slots[adapter_name]


def adopt_pending_prototype(model, adapter_name: str) -> Optional[nn.ParameterDict]:
    """Move a freshly built prototype into ``base_model.shared_parameters`` (called once per add_adapter)."""
    prototype = _take_pending(model, adapter_name)
    if prototype is not None:
        model.base_model.shared_parameters[adapter_name] = prototype
    return prototype


def discard_pending_prototype(model, adapter_name: str):
    _take_pending(model, adapter_name)


def _take_pending(model, adapter_name: str) -> Optional[nn.ParameterDict]:
    slots = _pending.get(id(model.adapters_config), {})
    prototype = slots.pop(adapter_name, None)
    if not slots:
        _pending.pop(id(model.adapters_config), None)
    return prototype


class PrototypeSource:
    """How a layer module reaches its prototype. Not an nn.Module: the prototype must not be
    registered under every layer (it would be saved, counted and moved once per layer)."""

    def __init__(self, adapter_name: str, prototype: nn.ParameterDict, shared: bool):
        self.adapter_name = adapter_name
        self.fallback = prototype
        self.shared = shared

    def get(self) -> nn.ParameterDict:
        if self.shared:
            context = ForwardContext.get_context()
            in_context = getattr(context, "shared_parameters", None) if context is not None else None
            if in_context and self.adapter_name in in_context:
                return in_context[self.adapter_name]
        return self.fallback


def attach_source(module: nn.Module, source: PrototypeSource):
    """Store the source on a module without registering the prototype as its child."""
    module.__dict__["prototype_source"] = source
