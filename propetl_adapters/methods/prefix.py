"""ProPrefix: one generated key/value prefix pair shared by all layers, masked per layer.

The prototype is reparametrised as in prefix-tuning: an embedding P' (l x d) goes
through Linear(d -> bottleneck) -> tanh -> Linear(bottleneck -> 2 * inner) and gives
ONE pair (P_k, P_v), each l x inner. Each attention layer masks the generated pair
(the activations, not the MLP weights) with its own masks. After export the stored
prototype is the generated pair itself (``flat``), which is what bit-level storage counts.
"""

from typing import Dict, List, Tuple

import torch
from adapters.configuration import PrefixTuningConfig
from adapters.methods.modeling import Activation_Function_Class
from adapters.methods.prefix_tuning import FlatPrefixTuning, PrefixTuningGroup
from torch import nn

from ..configuration import ProPrefixConfig
from ..masks import TensorMask, mask_mode
from ..prototype import PrototypeSource, attach_source, pending_prototype

FLAT_KEY = "prefix"


def new_generator(config: ProPrefixConfig, input_size: int, inner: int, n_pairs: int) -> nn.ParameterDict:
    """Prototype parameters: either the reparametrising MLP or (flat) the pairs themselves."""
    out_features = n_pairs * 2 * inner
    if config.flat:
        return nn.ParameterDict({FLAT_KEY: nn.Parameter(torch.randn(config.prefix_length, out_features))})
    embedding = nn.Embedding(config.prefix_length, input_size)
    mlp_in = nn.Linear(input_size, config.bottleneck_size)
    mlp_out = nn.Linear(config.bottleneck_size, out_features)
    return nn.ParameterDict({
        "embedding": embedding.weight,
        "mlp_in_weight": mlp_in.weight, "mlp_in_bias": mlp_in.bias,
        "mlp_out_weight": mlp_out.weight, "mlp_out_bias": mlp_out.bias,
    })


def generate_pairs(prototype: nn.ParameterDict, config: ProPrefixConfig) -> torch.Tensor:
    """The prefix pairs, shape (prefix_length, n_pairs * 2 * inner); computed once per forward, batch-free."""
    if FLAT_KEY in prototype:
        return prototype[FLAT_KEY]
    hidden = torch.nn.functional.linear(prototype["embedding"], prototype["mlp_in_weight"], prototype["mlp_in_bias"])
    hidden = Activation_Function_Class(config.non_linearity.lower())(hidden)
    return torch.nn.functional.linear(hidden, prototype["mlp_out_weight"], prototype["mlp_out_bias"])


class LocationMasks(nn.Module):
    """The prefix masks of every attention layer at one location (e.g. encoder self-attention).

    With ``joint_kv_mask`` each layer has one (prefix_length, 2 * inner) mask over [P_k | P_v], so keys and values
    compete in one top-k, as in the reference; otherwise one key mask and one value mask per layer.
    """

    def __init__(self, n_layers: int, first_pair: int, shape: Tuple[int, int], config: ProPrefixConfig,
                 adapter_name: str, location_key: str):
        super().__init__()
        mode = mask_mode(config)
        where = f"prefix '{adapter_name}' at {location_key}"
        self.n_layers = n_layers
        if config.joint_kv_mask:
            joint_shape = (shape[0], 2 * shape[1])
            # The reference draws all layers' scores as one [layers, l, 2d] tensor: fan-in l * 2d.
            self.kv_masks = nn.ModuleList(
                TensorMask(joint_shape, config.layer_density, mode, f"[P_k | P_v] of {where} layer {i}",
                           fan_in=joint_shape[0] * joint_shape[1]) for i in range(n_layers))
        else:
            self.key_masks = nn.ModuleList(
                TensorMask(shape, config.layer_density, mode, f"P_k of {where} layer {i}") for i in range(n_layers))
            self.value_masks = nn.ModuleList(
                TensorMask(shape, config.layer_density, mode, f"P_v of {where} layer {i}") for i in range(n_layers))
        # With an unshared prototype (the "only mask" ablation) each layer owns one generated pair.
        self.first_pair = first_pair

    def apply_to(self, layer: int, pair: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(P_k ⊙ m_k, P_v ⊙ m_v) of one layer from its pair shaped (prefix_length, 2, inner)."""
        if hasattr(self, "kv_masks"):
            masked = self.kv_masks[layer].apply_to(pair.reshape(pair.shape[0], -1)).view_as(pair)
            return masked[:, 0], masked[:, 1]
        return self.key_masks[layer].apply_to(pair[:, 0]), self.value_masks[layer].apply_to(pair[:, 1])


class ProPrefixGroup(nn.ModuleDict):
    """Replaces AdapterHub's ``PrefixTuningGroup`` in the prefix pool for ProPrefix adapters.

    ``forward(batch_size)`` returns, per location, one (keys, values) pair per layer shaped
    (batch, n_heads, prefix_length, head_dim): the layout ``PrefixTuningLayer`` expects.
    """

    def __init__(self, adapter_name: str, location_configs: Dict[str, dict], config: ProPrefixConfig,
                 adapters_config):
        super().__init__()
        geometry = {(c["n_heads"], c["n_embd_per_head"], c["input_size"]) for c in location_configs.values()}
        if len(geometry) != 1:
            raise ValueError(f"ProPrefix '{adapter_name}' shares one prefix across all attention layers, which needs "
                             f"the same heads/head size everywhere; found {sorted(geometry)}.")
        (self.n_heads, self.head_dim, self.input_size), = geometry
        self.config = config
        inner = self.n_heads * self.head_dim
        total_layers = sum(c["count"] for c in location_configs.values())
        n_pairs = 1 if config.shared else total_layers

        def build():
            return new_generator(config, self.input_size, inner, n_pairs)

        if config.shared:
            prototype = pending_prototype(adapters_config, adapter_name, build)
        else:
            prototype = self.unshared_prototype = build()
        attach_source(self, PrototypeSource(adapter_name, prototype, config.shared))
        self.dropout = nn.Dropout(config.dropout)
        first_pair = 0
        for location_key, location in location_configs.items():
            self[location_key] = LocationMasks(location["count"], first_pair, (config.prefix_length, inner), config,
                                               adapter_name, location_key)
            if not config.shared:
                first_pair += location["count"]

    def location_masks(self) -> Dict[str, LocationMasks]:
        return {k: v for k, v in self.items() if isinstance(v, LocationMasks)}

    def pairs(self) -> torch.Tensor:
        """Generated pairs as (prefix_length, n_pairs, 2, inner)."""
        generated = generate_pairs(self.prototype_source.get(), self.config)
        return generated.view(self.config.prefix_length, -1, 2, self.n_heads * self.head_dim)

    def masked_layer_prefixes(self, pairs: torch.Tensor, location: LocationMasks, layer: int):
        """(P_k ⊙ m_k, P_v ⊙ m_v) of one layer, each (prefix_length, inner)."""
        pair = pairs[:, location.first_pair + layer if not self.config.shared else 0]
        return location.apply_to(layer, pair)

    def _to_attention_layout(self, prefix: torch.Tensor, batch_size: int) -> torch.Tensor:
        per_head = prefix.view(self.config.prefix_length, self.n_heads, self.head_dim).permute(1, 0, 2)
        return per_head.unsqueeze(0).expand(batch_size, -1, -1, -1)

    def forward(self, batch_size: int) -> Dict[str, List[Tuple[torch.Tensor, torch.Tensor]]]:
        pairs = self.dropout(self.pairs())
        states = {}
        for location_key, location in self.location_masks().items():
            layers = []
            for layer in range(location.n_layers):
                keys, values = self.masked_layer_prefixes(pairs, location, layer)
                layers.append((self._to_attention_layout(keys, batch_size),
                               self._to_attention_layout(values, batch_size)))
            states[location_key] = layers
        return states


def frozen_prefix_group(group: ProPrefixGroup, plain_config: PrefixTuningConfig) -> PrefixTuningGroup:
    """Fixed per-layer prefixes in the layout of AdapterHub's flat prefix tuning."""
    plain = PrefixTuningGroup({}, plain_config)
    pairs = group.pairs()
    inner = group.n_heads * group.head_dim
    for location_key, location in group.location_masks().items():
        n_layers = location.n_layers
        flat = FlatPrefixTuning(n_layers, group.n_heads, inner, plain_config, n_embd_per_head=group.head_dim)
        per_layer = [torch.stack(group.masked_layer_prefixes(pairs, location, layer), dim=1) for layer in range(n_layers)]
        # FlatPrefixTuning reads its vector as (prefix_length, n_layers * 2, n_heads, head_dim).
        flat.control_trans = nn.Parameter(torch.stack(per_layer, dim=1).reshape(-1).clone())
        flat.train(group.training)
        plain[location_key] = flat
    return plain


def plain_parameter_count(groups, config) -> Tuple[int, int]:
    """(stored, trainable) values of plain prefix tuning of the same geometry: stored, a key/value prefix per
    layer (what ejecting the MLP leaves); trained, the embedding and MLP that generate every layer's pair."""
    stored = trainable = 0
    for group in groups:
        n_layers = sum(loc.n_layers for loc in group.location_masks().values())
        inner = group.n_heads * group.head_dim
        stored += n_layers * 2 * config.prefix_length * inner
        trainable += (config.prefix_length * group.input_size + (group.input_size + 1) * config.bottleneck_size
                      + (config.bottleneck_size + 1) * 2 * inner * n_layers)
    return stored, trainable
