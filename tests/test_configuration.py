import pytest
from adapters import AdapterArguments, AutoAdapterModel
from adapters.configuration import AdapterConfig, LoRAConfig, PrefixTuningConfig, SeqBnConfig

from propetl_adapters import ProAdapterConfig, ProLoRAConfig, ProPrefixConfig
from tests.conftest import tiny_config

PARENTS = {"proadapter": (ProAdapterConfig, SeqBnConfig), "prolora": (ProLoRAConfig, LoRAConfig),
           "proprefix": (ProPrefixConfig, PrefixTuningConfig)}


@pytest.mark.parametrize("name", sorted(PARENTS))
def test_registered_name_loads_subclass_of_adapterhub_config(name):
    config = AdapterConfig.load(name)
    cls, parent = PARENTS[name]
    assert type(config) is cls and isinstance(config, parent)
    assert config.density is None and config.shared and config.masked and not config.random_mask


def test_default_kept_fractions_and_mask_learning_rate_ratios_are_the_reference_scripts():
    # run_adapter.sh / run_lora.sh / run_prefix.sh: sparsity 0.5 / 0.1 / 0.1, mask lr 3e-3 / 3e-2 / 1e-4 at lr 1e-4.
    expected = {"proadapter": (0.5, 3e-3), "prolora": (0.1, 3e-2), "proprefix": (0.1, 1e-4)}
    for name, (density, mask_lr) in expected.items():
        config = AdapterConfig.load(name)
        assert config.layer_density == density
        assert config.reference_mask_lr_ratio * 1e-4 == pytest.approx(mask_lr)
    assert AdapterConfig.load("prolora[tasks=a|b]").layer_density == 0.3  # multi-task: 0.3 per family
    assert AdapterConfig.load("proprefix").joint_kv_mask


def test_paper_defaults():
    assert AdapterConfig.load("proadapter").reduction_factor == 12
    assert AdapterConfig.load("proadapter").non_linearity == "relu"
    lora = AdapterConfig.load("prolora")
    assert (lora.r, lora.alpha, lora.attn_matrices) == (32, 48, ["q", "v"])
    prefix = AdapterConfig.load("proprefix")
    assert (prefix.prefix_length, prefix.bottleneck_size, prefix.flat) == (64, 512, False)


def test_bracket_syntax_and_dict_round_trip():
    config = AdapterConfig.load("proadapter[reduction_factor=16,density=0.3,shared=False]")
    assert (config.reduction_factor, config.density, config.shared) == (16, 0.3, False)
    again = AdapterConfig.load(config.to_dict())
    assert type(again) is ProAdapterConfig and again == config


def test_adapter_arguments_and_add_adapter_accept_the_names():
    args = AdapterArguments(train_adapter=True, adapter_config="prolora[r=4]")
    model = AutoAdapterModel.from_config(tiny_config("bert"))
    model.add_adapter("a", config=args.adapter_config)
    assert isinstance(model.adapters_config.get("a"), ProLoRAConfig)


@pytest.mark.parametrize("bad", ["proadapter[density=0]", "proadapter[density=1.5]", "prolora[density=-0.1]",
                                 "proprefix[density='half']"])
def test_bad_density_names_the_field(bad):
    with pytest.raises(ValueError, match=r"density must be a number in \(0, 1\]"):
        AdapterConfig.load(bad)


def test_density_that_keeps_nothing_is_rejected_and_model_unchanged():
    model = AutoAdapterModel.from_config(tiny_config("bert"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="keeps 0 of the"):
        model.add_adapter("a", config="proadapter[reduction_factor=8,density=0.0001]")
    assert "a" not in model.adapters_config and "a" not in model.base_model.shared_parameters
    assert set(model.state_dict()) == set(before)


def test_unknown_config_name_lists_known_names():
    with pytest.raises(ValueError, match="Unknown adapter config 'proadaptr'.*proadapter"):
        AdapterConfig.load("proadaptr")


@pytest.mark.parametrize("bad, field, allowed", [
    ("proadapter[reduction_factor=0]", "ProAdapterConfig.reduction_factor", "finite number > 0"),
    ("proadapter[reduction_factor=-4]", "ProAdapterConfig.reduction_factor", "finite number > 0"),
    ("prolora[r=0]", "ProLoRAConfig.r", "integer >= 1"),
    ("prolora[r=-2]", "ProLoRAConfig.r", "integer >= 1"),
    ("prolora[r=2.5]", "ProLoRAConfig.r", "integer >= 1"),
    ("prolora[alpha=0]", "ProLoRAConfig.alpha", "finite number > 0"),
    ("prolora[dropout=1.0]", "ProLoRAConfig.dropout", r"number in \[0, 1\)"),
    ("proprefix[prefix_length=0]", "ProPrefixConfig.prefix_length", "integer >= 1"),
    ("proprefix[prefix_length=-3]", "ProPrefixConfig.prefix_length", "integer >= 1"),
    ("proprefix[bottleneck_size=0]", "ProPrefixConfig.bottleneck_size", "integer >= 1"),
    ("hyperformer++[reduction_factor=0]", "HyperformerConfig.reduction_factor", "finite number > 0"),
    ("hyperformer++[embedding_dim=0]", "HyperformerConfig.embedding_dim", "integer >= 1"),
])
def test_bad_geometry_names_the_field_and_range_and_registers_nothing(bad, field, allowed):
    model = AutoAdapterModel.from_config(tiny_config("bert"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"{field} must be an? {allowed}"):
        model.add_adapter("a", config=bad)
    assert "a" not in model.adapters_config and "a" not in model.base_model.shared_parameters
    assert set(model.state_dict()) == set(before)
    model.add_adapter("a", config="proadapter[reduction_factor=8]")  # the name is still free
    assert "a" in model.adapters_config


@pytest.mark.parametrize("config", ["proadapter[reduction_factor=64]", "hyperformer++[reduction_factor=33]"])
def test_reduction_factor_beyond_the_hidden_size_is_refused_not_clamped(config):
    model = AutoAdapterModel.from_config(tiny_config("bert"))  # hidden size 32
    with pytest.raises(ValueError, match=r"reduction_factor=\d+ leaves no bottleneck on hidden size 32; "
                                         r"allowed range \(0, 32\]"):
        model.add_adapter("a", config=config)
    assert "a" not in model.adapters_config and "a" not in model.base_model.shared_parameters
