"""ProLoRA: one (A, B) pair per adapted attention matrix, shared by all layers and masked per layer."""

import math
from typing import Tuple

import torch
from adapters.methods.lora import LoRA
from torch import nn

from ..configuration import ProLoRAConfig
from ..masks import TensorMask, mask_mode
from ..multitask import TaskMasks, attach_task_masks, hybrid_masked, route_by_task, task_masks_of
from ..prototype import PrototypeSource, attach_source, pending_prototype


def _new_lora_pair(matrix_key: str, lora_A_shape, lora_B_shape, config: ProLoRAConfig) -> dict:
    lora_A = torch.empty(lora_A_shape)
    lora_B = torch.empty(lora_B_shape)
    if config.init_weights == "lora":
        nn.init.kaiming_uniform_(lora_A, a=math.sqrt(5))
        nn.init.zeros_(lora_B)
    elif config.init_weights == "bert":
        nn.init.normal_(lora_A, std=0.02)
        nn.init.normal_(lora_B, std=0.02)
    else:
        raise ValueError(f"ProLoRAConfig.init_weights must be 'lora' or 'bert', got {config.init_weights!r}.")
    return {f"{matrix_key}_lora_A": nn.Parameter(lora_A), f"{matrix_key}_lora_B": nn.Parameter(lora_B)}


class ProLoRA(LoRA):
    """A LoRA module whose ``lora_A`` / ``lora_B`` are masked views of the prototype.

    ``LoRA.forward``, ``delta_w`` and AdapterHub's ``merge_adapter`` read ``self.lora_A`` and
    ``self.lora_B``; here they are properties, so all of them see the masked matrices.
    ``LoRA.__init__`` is not called because it would register per-layer A and B.
    """

    def __init__(self, lora_A_shape, lora_B_shape, config: ProLoRAConfig, matrix_key: str, adapters_config,
                 adapter_name: str, layer_idx: int):
        nn.Module.__init__(self)
        self.r = config.r
        self.lora_alpha = config.alpha
        self.scaling = self.lora_alpha / self.r
        self.composition_mode = config.composition_mode
        self.attn_matrices = config.attn_matrices
        self.use_gating = False
        self.use_dora = False
        self.name = adapter_name
        self.dtype = None
        self.matrix_key = matrix_key
        self.lora_dropout = nn.Dropout(p=config.dropout) if config.dropout > 0.0 else nn.Identity()

        if config.shared:
            prototype = pending_prototype(adapters_config, adapter_name, nn.ParameterDict)
            if f"{matrix_key}_lora_A" not in prototype:
                prototype.update(_new_lora_pair(matrix_key, lora_A_shape, lora_B_shape, config))
            if config.tasks:
                if task_masks_of(prototype) is None:
                    attach_task_masks(prototype, TaskMasks(adapter_name, config.tasks, config.task_density,
                                                           mask_mode(config)))
                task_masks_of(prototype).register_tensor(f"{matrix_key}_lora_A", tuple(lora_A_shape))
                task_masks_of(prototype).register_tensor(f"{matrix_key}_lora_B", tuple(lora_B_shape))
            if tuple(prototype[f"{matrix_key}_lora_A"].shape) != tuple(lora_A_shape):
                raise ValueError(f"ProLoRA '{adapter_name}': layer {layer_idx} ({matrix_key}) needs A of shape "
                                 f"{tuple(lora_A_shape)} but the shared prototype has "
                                 f"{tuple(prototype[f'{matrix_key}_lora_A'].shape)}.")
        else:
            prototype = self.unshared_prototype = nn.ParameterDict(
                _new_lora_pair(matrix_key, lora_A_shape, lora_B_shape, config))
        attach_source(self, PrototypeSource(adapter_name, prototype, config.shared))
        mode = mask_mode(config)
        where = f"LoRA '{adapter_name}' layer {layer_idx} ({matrix_key})"
        self.mask_A = TensorMask(tuple(lora_A_shape), config.layer_density, mode, f"A of {where}")
        self.mask_B = TensorMask(tuple(lora_B_shape), config.layer_density, mode, f"B of {where}")

    def _masked(self, mask: TensorMask, suffix: str) -> torch.Tensor:
        prototype = self.prototype_source.get()
        key = f"{self.matrix_key}_{suffix}"
        return hybrid_masked(prototype[key], mask, task_masks_of(prototype), key)

    @property
    def lora_A(self) -> torch.Tensor:
        return self._masked(self.mask_A, "lora_A")

    @property
    def lora_B(self) -> torch.Tensor:
        return self._masked(self.mask_B, "lora_B")

    def forward(self, hidden_states, layer_input):
        bank = task_masks_of(self.prototype_source.get())
        if bank is None:
            return super().forward(hidden_states, layer_input)

        def rows_of(tensor, rows):
            return tensor if tensor is None or rows is None else tensor[rows]

        def delta(rows):
            return super(ProLoRA, self).forward(rows_of(hidden_states, rows), rows_of(layer_input, rows))[0]

        return route_by_task(bank, layer_input.shape[0], layer_input.device, delta), None


def frozen_lora(module: ProLoRA, plain_config) -> LoRA:
    """The plain AdapterHub LoRA holding ``module``'s masked A and B (same outputs; mergeable)."""
    plain = LoRA(tuple(module.lora_A.shape), tuple(module.lora_B.shape), plain_config, name=module.name)
    plain.lora_A.copy_(module.lora_A)
    plain.lora_B.copy_(module.lora_B)
    for attribute in ("enable_lora", "lora_ind"):  # the block layout in a fused q/k/v projection (GPT-2)
        if hasattr(module, attribute):
            setattr(plain, attribute, getattr(module, attribute))
    plain.train(module.training)
    return plain


def plain_parameter_count(layers, config) -> Tuple[int, int]:
    """(stored, trainable) values of plain LoRA of the same geometry: an A and a B per adapted matrix and layer."""
    count = sum(m.prototype_source.get()[f"{m.matrix_key}_lora_A"].numel()
                + m.prototype_source.get()[f"{m.matrix_key}_lora_B"].numel() for m in layers)
    return count, count
