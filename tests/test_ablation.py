"""Parameter matching of the ablation settings: the formulas agree with storage_report on real modules."""

import pytest
from adapters import AutoAdapterModel
from transformers import BertConfig

from propetl_adapters.ablation import matched_settings, proadapter_bls
from propetl_adapters.storage import storage_report


@pytest.mark.parametrize("match", ["bn", "k"])
def test_matched_settings_have_the_bls_that_storage_report_measures(match):
    hidden, layers = 48, 3
    settings = matched_settings(hidden, layers, bottleneck=8, density=0.5, only_mask_match=match)
    target = proadapter_bls(hidden, layers, 8)
    for name, setting in settings.items():
        model = AutoAdapterModel.from_config(BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers,
                                                        num_attention_heads=4, intermediate_size=64))
        model.add_adapter("a", config=setting["config"])
        report = storage_report(model, "a")
        assert report.propetl.bls_bits == setting["bls_bits"], name
    for name in ("only_share",) + (("only_mask",) if match == "bn" else ()):
        assert abs(settings[name]["bls_bits"] - target) / target < 0.25, name
    assert settings["only_share"]["bottleneck"] > 8
    if match == "bn":
        assert settings["only_mask"]["bottleneck"] < 8 and settings["only_mask"]["density"] == 0.5
    else:
        assert settings["only_mask"]["bottleneck"] == 8 and settings["only_mask"]["density"] == pytest.approx(0.5 / 3, abs=1e-6)
