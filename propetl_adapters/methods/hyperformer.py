"""Hyperformer++ and Hyperformer (Karimi Mahabadi et al., ACL 2021) as AdapterHub bottleneck adapters.

A hypernetwork generates every adapter's weights from a task embedding (64-d, N(0, 1)), a layer-id
embedding (64-d) and a block-type embedding (64-d: after self-attention / after the FFN). The three are
concatenated and projected, Linear(192→128) → ReLU → Linear(128→64) → LayerNorm, and linear
generators (N(0, 0.01) weights, zero bias) map the 64-d result to the adapter's down/up weights and
biases and to its layer norm's γ and β. Each adapter computes ``y + LN(up(gelu(down(y))))``.

- ``hyperformer++``: ONE set of generators, shared by every layer and task (one for the encoder and one
  for the decoder of an encoder-decoder model, as the reference's 0.29 %-per-task figure implies).
- ``hyperformer``: the generators are per layer and block, shared by the tasks.

The task embeddings, layer/block embeddings and projector live in ``shared_parameters[name]`` (the
task-embedding matrix as its parameter, the rest as a ``hypernetwork`` submodule). Tasks are routed
like the hybrid masks (``task_ids`` or ``active_task``, see ``multitask.py``).
"""

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from adapters.methods.modeling import Adapter
from torch import nn

from ..multitask import current_task, route_by_task, task_position
from ..prototype import PrototypeSource, attach_source, pending_prototype

TASK_EMBEDDING = "task_embedding"


class Generators(nn.Module):
    """Linear maps from the 64-d projected embedding to one adapter's tensors."""

    def __init__(self, projected_dim: int, hidden: int, bottleneck: int):
        super().__init__()
        self.hidden, self.bottleneck = hidden, bottleneck
        sizes = {"down_weight": bottleneck * hidden, "down_bias": bottleneck, "up_weight": hidden * bottleneck,
                 "up_bias": hidden, "ln_weight": hidden, "ln_bias": hidden}
        self.maps = nn.ModuleDict({name: nn.Linear(projected_dim, size) for name, size in sizes.items()})
        for linear in self.maps.values():
            nn.init.normal_(linear.weight, std=0.01)
            nn.init.zeros_(linear.bias)

    def forward(self, embedding: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = {name: linear(embedding) for name, linear in self.maps.items()}
        out["down_weight"] = out["down_weight"].view(self.bottleneck, self.hidden)
        out["up_weight"] = out["up_weight"].view(self.hidden, self.bottleneck)
        return out


class HyperNetwork(nn.Module):
    """Layer/block embeddings, the projector and (for hyperformer++) the shared generators.

    Exposes ``tasks``, ``task_index`` and ``adapter_name`` so ``multitask.route_by_task`` can route it.
    """

    def __init__(self, adapter_name: str, config, hidden: int, bottleneck: int, n_layers: int, sides: Tuple[str, ...]):
        super().__init__()
        self.adapter_name = adapter_name
        self.tasks = list(config.tasks)
        dim = config.embedding_dim
        self.layer_embedding = nn.Embedding(n_layers, dim)
        self.block_embedding = nn.Embedding(2, dim)
        self.projector = nn.Sequential(nn.Linear(3 * dim, config.projector_hidden_dim), nn.ReLU(),
                                       nn.Linear(config.projector_hidden_dim, config.projected_dim),
                                       nn.LayerNorm(config.projected_dim))
        if config.shared_generators:
            self.generators = nn.ModuleDict({side: Generators(config.projected_dim, hidden, bottleneck)
                                             for side in sides})

    def task_index(self, task: str) -> int:
        return task_position(self.adapter_name, self.tasks, task)

    def embedding(self, task_embedding: torch.Tensor, task: str, layer_idx: int, block: int) -> torch.Tensor:
        device = task_embedding.device
        parts = [task_embedding[self.task_index(task)],
                 self.layer_embedding(torch.tensor(layer_idx, device=device)),
                 self.block_embedding(torch.tensor(block, device=device))]
        return self.projector(torch.cat(parts))


def _new_shared(adapter_name: str, config, hidden: int, bottleneck: int, n_layers: int, sides) -> nn.ParameterDict:
    shared = nn.ParameterDict({TASK_EMBEDDING: nn.Parameter(torch.randn(len(config.tasks), config.embedding_dim))})
    shared.add_module("hypernetwork", HyperNetwork(adapter_name, config, hidden, bottleneck, n_layers, sides))
    return shared


class HyperAdapter(Adapter):
    """One layer's adapter whose tensors the hypernetwork generates for the task of each example."""

    def __init__(self, adapter_name: str, input_size: int, down_sample: int, config, adapters_config,
                 layer_idx: int, block: int, n_layers: int, side: str, sides: Tuple[str, ...]):
        super().__init__(adapter_name, input_size, down_sample, config)
        del self.adapter_down, self.adapter_up, self.adapter_norm_after  # generated, not stored per layer
        self.layer_idx, self.block, self.side = layer_idx, block, side
        shared = pending_prototype(adapters_config, adapter_name,
                                   lambda: _new_shared(adapter_name, config, input_size, down_sample, n_layers, sides))
        attach_source(self, PrototypeSource(adapter_name, shared, True))
        if not config.shared_generators:
            self.generators = Generators(config.projected_dim, input_size, down_sample)

    def _shared(self) -> nn.ParameterDict:
        return self.prototype_source.get()

    def generated(self, task: str) -> Dict[str, torch.Tensor]:
        shared = self._shared()
        hypernetwork = shared.hypernetwork
        embedding = hypernetwork.embedding(shared[TASK_EMBEDDING], task, self.layer_idx, self.block)
        generators = hypernetwork.generators[self.side] if hasattr(hypernetwork, "generators") else self.generators
        return generators(embedding)

    def forward(self, x, residual_input, output_gating=False):
        hypernetwork = self._shared().hypernetwork

        def adapter(rows):
            w = self.generated(current_task(hypernetwork))
            rows_x = x if rows is None else x[rows]
            down = F.gelu(F.linear(rows_x, w["down_weight"], w["down_bias"]))
            up = F.linear(down, w["up_weight"], w["up_bias"])
            return torch.cat([F.layer_norm(up, (up.shape[-1],), w["ln_weight"], w["ln_bias"]), down], dim=-1)

        both = route_by_task(hypernetwork, x.shape[0], x.device, adapter)
        up, down = both[..., :x.shape[-1]], both[..., x.shape[-1]:]
        return up + residual_input, down, up


def frozen_hyper_adapter(module: HyperAdapter, plain_config) -> Adapter:
    """An AdapterHub adapter holding the tensors ``module`` generates for the active task (same outputs)."""
    with torch.no_grad():
        w = module.generated(current_task(module._shared().hypernetwork))
        plain = Adapter(module.name, module.input_size, module.down_sample, plain_config)
        down = next(m for m in plain.adapter_down if isinstance(m, nn.Linear))
        for linear, prefix in ((down, "down"), (plain.adapter_up, "up"), (plain.adapter_norm_after, "ln")):
            linear.weight.copy_(w[f"{prefix}_weight"])
            linear.bias.copy_(w[f"{prefix}_bias"])
    plain.original_ln_after = module.original_ln_after
    plain.train(module.training)
    return plain


def plain_parameter_count(layers, config) -> Tuple[int, int]:
    """(stored, trainable) values of the plain counterpart: one adapter per task in every adapted block
    (down and up projections with biases, and its layer norm)."""
    per_adapter = sum(2 * m.input_size * m.down_sample + m.down_sample + 3 * m.input_size for m in layers)
    count = per_adapter * len(config.tasks)
    return count, count
