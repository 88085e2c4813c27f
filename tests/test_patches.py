"""Fails loudly when `adapters` changes under our patches or under the internals they rely on.

Each entry pins the source of one upstream function (sha256 of ``inspect.getsource``, first 16
hex digits) as of adapters 1.3.0. If a hash changes, re-read that function, check the patch in
``propetl_adapters/patches.py`` (or the code that relies on it) still fits, then update the hash.
"""

import hashlib
import inspect

import adapters
import pytest
from adapters.context import ForwardContext
from adapters.heads import ClassificationHead, ModelWithFlexibleHeadsAdaptersMixin
from adapters.loading import AdapterLoader, PredictionHeadLoader
from adapters.methods.lora import LoRA, LoRALinear, LoRAMergedLinear
from adapters.methods.modeling import Adapter
from adapters.methods.prefix_tuning import FlatPrefixTuning, PrefixTuningLayer, PrefixTuningPool
from adapters.model_mixin import ModelAdaptersMixin, ModelWithHeadsAdaptersMixin
from adapters.trainer import AdapterTrainer

from propetl_adapters.patches import PATCHED_TARGETS, upstream

PATCHED = {
    "adapters.configuration.adapter_config.AdapterConfig._get_config_class": "2ef3a3c735210de9",
    "adapters.configuration.adapter_config.AdapterConfig.load": "aa993e50bcee73af",
    "adapters.methods.bottleneck.BottleneckLayer.add_adapter": "e22e67e92afea6fd",
    "adapters.methods.lora.LoRALayer.add_adapter": "0e1c20bc7e8ec1c3",
    "adapters.methods.lora.LoRAMergedLinear.forward": "71923108d2695ac0",
    "adapters.methods.prefix_tuning.PrefixTuningPool.confirm_prefix": "c9df4821b2138c3c",
    "adapters.model_mixin.ModelAdaptersMixin._add_adapter_weights": "0ccfa6dc0cc038b1",
    "adapters.loading.AdapterLoader.save": "64e1e8f408093d22",
    "adapters.loading.AdapterLoader.load": "f2e8e28b0cc5180d",
    "adapters.trainer.AdapterTrainer._save": "b8e8f90792cdfc3d",
    "adapters.utils.parse_adapter_config_string": "44ee6f48846815ac",
    "adapters.model_mixin.ModelAdaptersMixin.train_adapter": "c78ec33dd193a7ed",
    "adapters.model_mixin.ModelAdaptersMixin.reset_adapter": "4552f6e44da2297a",
    "adapters.model_mixin.ModelAdaptersMixin.save_adapter": "b452108e7000f974",
    "adapters.model_mixin.ModelAdaptersMixin.load_adapter": "96dae66d7a174d4f",
    "adapters.heads.model_mixin.ModelWithFlexibleHeadsAdaptersMixin.add_prediction_head_from_config": "ec4e59e8f032d227",
}

# Upstream code our modules rely on without patching it, with what it must keep doing.
RELIED_ON = {
    (ModelAdaptersMixin, "forward_context"): "4f060da86c3d180d",  # fills context.shared_parameters first
    (PrefixTuningLayer, "compose_single"): "267e1f445f9b16b4",  # reads prefix_states[name][location][id]
    (PrefixTuningPool, "forward"): "8b9aecd032bd8194",  # calls each group with the batch size
    (LoRA, "forward"): "5556800f3b938692",  # reads self.lora_A / self.lora_B (ProLoRA properties)
    (LoRALinear, "merge_adapter"): "2998f487cf5699b0",  # merges lora.delta_w
    (LoRAMergedLinear, "add_adapter"): "31436c9497c615b6",  # sets enable_lora / lora_ind on the ProLoRA module
    (LoRAMergedLinear, "_get_lora_shapes"): "76b68b9ea4c8f851",  # q/k/v blocks stacked in A and B (export.py)
    (LoRAMergedLinear, "_compute_adapted_weight"): "d0fb44fbdeeeb471",  # merges the masked lora_A / lora_B
    (Adapter, "forward"): "9f9b4b9aa456257e",  # calls self.adapter_down / self.adapter_up
    (FlatPrefixTuning, "forward"): "dcb8d2b038a920a3",  # layout of frozen prefixes
    (AdapterTrainer, "_load_best_model"): "57826d743996f87c",  # reloads through load_adapter
    (AdapterTrainer, "_load_adapters"): "3a50fcbb2d0a0d3b",  # resumes through load_adapter
    (AdapterLoader, "filter_func"): "11e46926834187e6",  # which state-dict keys belong to an adapter
    (ForwardContext, "wrap"): "3056af12eeaa57ac",  # one context per model forward
    (ModelWithHeadsAdaptersMixin, "save_adapter"): "63f7aadcb58023a0",  # head saved by a custom weights loader
    (ModelWithHeadsAdaptersMixin, "load_adapter"): "1e618dda3f3ab7ab",  # head loaded by a custom weights loader
    (PredictionHeadLoader, "load"): "48a7a5934d7c85a3",  # which head file it reads; lenient state-dict load
    (ClassificationHead, "forward"): "ba838ac6fbae4c35",  # uses cls_output when given (heads.py: the token mean)
    (ModelWithFlexibleHeadsAdaptersMixin, "add_custom_head"): "82b56f473da2b655",  # records head_type in the config
    (ModelWithFlexibleHeadsAdaptersMixin, "forward_head"): "354d01cae5dc1c6a",  # passes attention_mask to the head
}


def _qualified_name(owner) -> str:
    """'package.module.Class' for a class, 'package.module' for a patched module-level function."""
    return owner.__name__ if inspect.ismodule(owner) else f"{owner.__module__}.{owner.__name__}"


def _digest(function) -> str:
    if isinstance(function, (staticmethod, classmethod)):
        function = function.__func__
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def test_adapters_version_is_the_pinned_one():
    assert adapters.__version__ == "1.3.0", "propetl_adapters is written against adapters==1.3.0"


def test_every_patch_is_listed_and_its_target_is_unchanged():
    names = {f"{_qualified_name(owner)}.{attribute}": (owner, attribute) for owner, attribute in PATCHED_TARGETS}
    assert set(names) == set(PATCHED), "patches.py and this test list different targets"
    changed = {name: _digest(upstream(*target)) for name, target in names.items()
               if _digest(upstream(*target)) != PATCHED[name]}
    assert not changed, f"upstream functions under our patches changed: {changed}"


@pytest.mark.parametrize("owner, attribute", list(RELIED_ON), ids=lambda x: getattr(x, "__name__", x))
def test_relied_on_internals_are_unchanged(owner, attribute):
    assert _digest(owner.__dict__[attribute]) == RELIED_ON[(owner, attribute)], (
        f"{owner.__name__}.{attribute} changed upstream; re-check the code that relies on it")


@pytest.mark.parametrize("config", ["proadapter[reduction_factor=8]", "seq_bn[reduction_factor=8]"])
def test_activating_adapters_does_not_warn_that_no_adapter_is_active(caplog, tmp_path, config):
    from adapters import AutoAdapterModel

    from tests.conftest import build_adapter_model, tiny_config
    with caplog.at_level("WARNING", logger="adapters.model_mixin"):
        model = build_adapter_model("bert", config)  # add_adapter + train_adapter
        model.save_adapter(str(tmp_path), "task")
        reloaded = AutoAdapterModel.from_config(tiny_config("bert"))
        reloaded.load_adapter(str(tmp_path), set_active=True)
    assert "none are activated" not in caplog.text and reloaded.active_adapters is not None
    model.set_active_adapters(None)  # the warning itself is untouched elsewhere
    with caplog.at_level("WARNING", logger="adapters.model_mixin"):
        model(input_ids=__import__("torch").tensor([[2, 3, 4]]))
    assert "none are activated" in caplog.text
