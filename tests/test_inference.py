"""freeze_masks: plain per-layer modules with identical outputs and no top-k left at inference."""

import pytest
import torch
from adapters.configuration import LoRAConfig, PrefixTuningConfig, SeqBnConfig

import propetl_adapters.masks as masks_module
from propetl_adapters.inference import freeze_masks
from tests.conftest import VARIANTS, build_adapter_model, model_inputs, model_output

PLAIN = {"proadapter": SeqBnConfig, "prolora": LoRAConfig, "proprefix": PrefixTuningConfig}


@pytest.mark.parametrize("arch", ["bert", "t5"])
def test_frozen_model_matches_masked_model_and_runs_no_topk(arch, variant, monkeypatch):
    model = build_adapter_model(arch, VARIANTS[variant])
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.3)
    model.eval()
    inputs = model_inputs(arch)
    with torch.no_grad():
        expected = model_output(model, inputs)
    freeze_masks(model, "task")
    config = model.adapters_config.get("task")
    assert isinstance(config, PLAIN[variant]) and not hasattr(config, "propetl_method")

    def no_topk(*args, **kwargs):
        raise AssertionError("top-k ran after freezing")

    monkeypatch.setattr(masks_module, "topk_binary_mask", no_topk)
    with torch.no_grad():
        got = model_output(model, inputs)
    assert torch.equal(got, expected)
    assert "task" not in model.base_model.shared_parameters


def test_frozen_prolora_merges_into_base_weights():
    model = build_adapter_model("bert", VARIANTS["prolora"])
    with torch.no_grad():
        for param in model.base_model.shared_parameters["task"].values():
            param.normal_()
    model.eval()
    inputs = model_inputs("bert")
    with torch.no_grad():
        expected = model_output(model, inputs)
    freeze_masks(model, "task")
    model.merge_adapter("task")
    with torch.no_grad():
        merged = model_output(model, inputs)
    assert torch.allclose(merged, expected, atol=1e-5)


def test_random_mask_adapter_cannot_be_frozen():
    model = build_adapter_model("bert", "proadapter[reduction_factor=8,random_mask=True]")
    with pytest.raises(ValueError, match="random mask"):
        freeze_masks(model, "task")
