"""ProAdapter: a Pfeiffer bottleneck whose W_down and W_up come from the shared prototype, masked per layer."""

from typing import Tuple

import torch
import torch.nn.functional as F
from adapters.methods.modeling import Adapter
from torch import nn

from ..configuration import ProAdapterConfig
from ..masks import TensorMask, mask_mode
from ..multitask import TaskMasks, attach_task_masks, hybrid_masked, route_by_task, task_masks_of
from ..prototype import PrototypeSource, attach_source, pending_prototype


class MaskedLinear(nn.Module):
    """``x (W ⊙ m)^T + b``: W and b come from the prototype, m is this layer's mask (OR the task's mask in a
    multi-task adapter, each example with its own task); the bias is never masked."""

    def __init__(self, source: PrototypeSource, key: str, mask: TensorMask):
        super().__init__()
        attach_source(self, source)
        self.key = key
        self.mask = mask

    def effective_weight_and_bias(self) -> Tuple[torch.Tensor, torch.Tensor]:
        prototype = self.prototype_source.get()
        weight_key = f"{self.key}_weight"
        weight = hybrid_masked(prototype[weight_key], self.mask, task_masks_of(prototype), weight_key)
        return weight, prototype[f"{self.key}_bias"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def linear(rows):
            return F.linear(x if rows is None else x[rows], *self.effective_weight_and_bias())

        return route_by_task(task_masks_of(self.prototype_source.get()), x.shape[0], x.device, linear)


class ProAdapter(Adapter):
    """A sequential bottleneck adapter whose projections are masked views of the prototype.

    ``Adapter.__init__`` builds and initialises this layer's linears (following the config's
    ``init_weights``); the first layer's pair becomes the prototype, the rest are dropped.
    ``Adapter.forward`` runs unchanged on the masked projections.
    """

    def __init__(self, adapter_name: str, input_size: int, down_sample: int, config: ProAdapterConfig,
                 adapters_config, layer_idx: int):
        super().__init__(adapter_name, input_size, down_sample, config)
        down_position, down_linear = next((i, m) for i, m in enumerate(self.adapter_down) if isinstance(m, nn.Linear))
        up_linear = self.adapter_up

        def this_layers_pair() -> nn.ParameterDict:
            pair = nn.ParameterDict({
                "down_weight": down_linear.weight, "down_bias": down_linear.bias,
                "up_weight": up_linear.weight, "up_bias": up_linear.bias,
            })
            if config.tasks:
                bank = TaskMasks(adapter_name, config.tasks, config.task_density, mask_mode(config))
                bank.register_tensor("down_weight", tuple(down_linear.weight.shape))
                bank.register_tensor("up_weight", tuple(up_linear.weight.shape))
                attach_task_masks(pair, bank)
            return pair

        if config.shared:
            prototype = pending_prototype(adapters_config, adapter_name, this_layers_pair)
            if prototype["down_weight"].shape != down_linear.weight.shape:
                raise ValueError(f"ProAdapter '{adapter_name}': layer {layer_idx} needs a bottleneck of shape "
                                 f"{tuple(down_linear.weight.shape)} but the shared prototype has "
                                 f"{tuple(prototype['down_weight'].shape)}; all layers must share one geometry.")
        else:
            prototype = self.unshared_prototype = this_layers_pair()
        source = PrototypeSource(adapter_name, prototype, config.shared)
        attach_source(self, source)
        mode = mask_mode(config)
        where = f"adapter '{adapter_name}' layer {layer_idx}"

        def layer_mask(linear: nn.Linear, what: str) -> TensorMask:
            # The reference keeps adapter scores transposed ([d, bn] for W_down, [bn, d] for W_up), so their
            # init bound is 1/sqrt(rows of the weight): 1/sqrt(bn) for W_down, 1/sqrt(d) for W_up.
            shape = tuple(linear.weight.shape)
            return TensorMask(shape, config.layer_density, mode, f"{what} of {where}", fan_in=shape[0])

        modules = list(self.adapter_down)
        modules[down_position] = MaskedLinear(source, "down", layer_mask(down_linear, "W_down"))
        self.adapter_down = nn.Sequential(*modules)
        self.adapter_up = MaskedLinear(source, "up", layer_mask(up_linear, "W_up"))

    def masked_linears(self):
        return [m for m in self.adapter_down if isinstance(m, MaskedLinear)] + [self.adapter_up]


def frozen_adapter(module: ProAdapter, plain_config) -> Adapter:
    """The plain AdapterHub adapter holding ``module``'s masked weights (same outputs, no top-k)."""
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


def plain_parameter_count(layers, config) -> Tuple[int, int]:
    """(stored, trainable) values of the plain, unshared adapter of the same geometry: each layer's own pair."""
    count = sum(sum(t.numel() for t in m.prototype_source.get().values()) for m in layers)
    return count, count
