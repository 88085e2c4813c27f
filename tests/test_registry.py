"""The method registry: one entry per method this package adds, found from any of its configs, naming the layer
module AdapterHub builds for it and the reference settings of its config class."""

import pytest
from adapters import AdapterConfig

from propetl_adapters.configuration import BASELINE_CONFIGS, PROPETL_CONFIGS
from propetl_adapters.methods.registry import METHODS, method_of
from propetl_adapters.serialization import adapter_layers
from tests.conftest import VARIANTS, build_adapter_model


@pytest.mark.parametrize("name", [*PROPETL_CONFIGS, *BASELINE_CONFIGS])
def test_every_registered_config_has_its_method(name):
    method = method_of(AdapterConfig.load(name))
    assert method is not None and isinstance(AdapterConfig.load(name), method.config_class)


@pytest.mark.parametrize("name", ["seq_bn", "lora", "prefix_tuning", "pfeiffer"])
def test_plain_adapterhub_methods_and_full_finetuning_have_none(name):
    assert method_of(AdapterConfig.load(name)) is None
    assert method_of(None) is None


def test_reference_kept_fractions_and_mask_learning_rate_ratios():
    assert {n: (m.default_density, m.mask_lr_ratio) for n, m in METHODS.items()} == {
        "proadapter": (0.5, 30.0), "prolora": (0.1, 300.0), "proprefix": (0.1, 1.0), "hyperformer": (None, None)}
    assert {n: m.plain_name for n, m in METHODS.items() if m.masked} == {
        "proadapter": "seq_bn", "prolora": "lora", "proprefix": "prefix_tuning"}
    assert [n for n, m in METHODS.items() if m.trains_layer_norms or m.tasks_required] == ["hyperformer"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_layer_class_is_what_the_model_builds(variant):
    model = build_adapter_model("bert", VARIANTS[variant])
    method = method_of(model.adapters_config.get("task"))
    assert method.name == variant
    layers = adapter_layers(model, "task", method.layer_class)
    assert layers and all(type(layer) is method.layer_class for layer in layers.values())
    stored, trainable = method.plain_parameter_count(layers.values(), model.adapters_config.get("task"))
    assert 0 < stored <= trainable if variant == "proprefix" else 0 < stored == trainable
