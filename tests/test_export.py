"""export_peft_lora / propetl-export: PEFT loads the exported folders and computes the same logits."""

import contextlib
import copy
import json
import sys

import adapters
import pytest
import torch
from adapters import AutoAdapterModel
from transformers import (AutoModelForCausalLM, BertForSequenceClassification, LlamaForCausalLM,
                          RobertaForSequenceClassification, T5ForConditionalGeneration)

from conftest import build_adapter_model, model_inputs, tiny_config
from propetl_adapters import active_task
from propetl_adapters.export import PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, export_peft_lora, main

HF_CLASSES = {"bert": BertForSequenceClassification, "roberta": RobertaForSequenceClassification,
              "t5": T5ForConditionalGeneration, "llama": LlamaForCausalLM, "gpt2": AutoModelForCausalLM}
SINGLE = "prolora[r=4,alpha=6,density=0.5,attn_matrices=['q','k','v'],intermediate_lora=True,output_lora=True]"
HYBRID = "prolora[r=4,alpha=6,density=0.3,task_density=0.3,tasks=a|b]"


@pytest.fixture
def peft():
    return pytest.importorskip("peft")


def hf_model(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    config = tiny_config(arch)
    cls = HF_CLASSES[arch]
    return cls.from_config(config) if cls is AutoModelForCausalLM else cls(config)


@torch.no_grad()
def perturb_adapter(model):
    """Random prototype (B != 0) and scores, so every mask and the task OR matter."""
    for name, param in model.named_parameters():
        if ".loras." in name or "shared_parameters." in name:
            param.normal_()


def adapted(arch: str, config: str):
    """(a transformers model made adaptable by adapters.init with a random ProLoRA, an untouched copy)."""
    model = hf_model(arch)
    reference = copy.deepcopy(model).eval()
    adapters.init(model)
    model.add_adapter("t", config=config)
    model.set_active_adapters("t")
    perturb_adapter(model)
    return model.eval(), reference


def inputs_of(arch: str) -> dict:
    if arch in ("llama", "gpt2"):
        return {"input_ids": model_inputs("bert")["input_ids"]}
    return model_inputs(arch)


@pytest.mark.parametrize("arch", list(HF_CLASSES))
@pytest.mark.parametrize("config", [SINGLE, HYBRID], ids=["single", "hybrid"])
def test_peft_logits_equal_ours(peft, arch, config, tmp_path):
    model, reference = adapted(arch, config)
    written = export_peft_lora(model, "t", str(tmp_path))
    assert set(written) == ({None} if config == SINGLE else {"a", "b"})
    inputs = inputs_of(arch)
    with torch.no_grad():
        base = reference(**inputs).logits
    for task, folder in written.items():
        with torch.no_grad(), active_task(task) if task else contextlib.nullcontext():
            ours = model(**inputs).logits
        served = peft.PeftModel.from_pretrained(copy.deepcopy(reference), folder).eval()
        with torch.no_grad():
            theirs = served(**inputs).logits
        assert not torch.allclose(ours, base, atol=1e-3), "the adapter should change the logits"
        assert torch.allclose(theirs, ours, atol=1e-5), f"{arch} task {task}: {(theirs - ours).abs().max()}"


def test_config_and_weights_follow_peft_conventions(peft, tmp_path):
    model, _ = adapted("llama", HYBRID)
    export_peft_lora(model, "t", str(tmp_path), task="b", base_model_name_or_path="org/tiny-llama")
    saved = json.loads((tmp_path / PEFT_CONFIG_FILE).read_text())
    assert (saved["peft_type"], saved["r"], saved["lora_alpha"]) == ("LORA", 4, 6)
    assert isinstance(saved["lora_alpha"], int)
    assert saved["target_modules"] == ["q_proj", "v_proj"]
    assert saved["base_model_name_or_path"] == "org/tiny-llama"
    from safetensors.torch import load_file
    weights = load_file(str(tmp_path / PEFT_WEIGHTS_FILE))
    layer = model.model.layers[1].self_attn.q_proj.loras["t"]
    with torch.no_grad(), active_task("b"):
        expected_A = layer.lora_A
    assert torch.equal(weights["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"], expected_A)
    # Exactly the masked prototype: entries outside m_l OR m_b are zero.
    assert 0 < int((expected_A != 0).sum()) < expected_A.numel()
    assert len(weights) == 2 * 2 * 2  # layers x (q, v) x (A, B)


def test_gpt2_fused_attention_is_a_rank_pattern_on_c_attn(peft, tmp_path):
    model, _ = adapted("gpt2", "prolora[r=4,alpha=6,density=0.5]")
    export_peft_lora(model, "t", str(tmp_path))
    saved = json.loads((tmp_path / PEFT_CONFIG_FILE).read_text())
    # q and v blocks: rank 2r on the whole c_attn, alpha 2*alpha keeps the scaling alpha/r.
    assert (saved["r"], saved["lora_alpha"], saved["target_modules"]) == (8, 12, ["c_attn"])
    assert saved["fan_in_fan_out"] is True


def test_adapter_model_export_loads_into_the_causal_lm_class(peft, tmp_path):
    torch.manual_seed(0)
    model = AutoAdapterModel.from_config(tiny_config("llama"))
    model.add_adapter("t", config=HYBRID)
    model.add_causal_lm_head("t")
    model.set_active_adapters("t")
    perturb_adapter(model)
    model.eval()
    export_peft_lora(model, "t", str(tmp_path))
    causal_lm = LlamaForCausalLM(tiny_config("llama"))
    missing = causal_lm.model.load_state_dict(model.base_model.state_dict(), strict=False).missing_keys
    assert missing == []
    input_ids = inputs_of("llama")["input_ids"]
    for task in ("a", "b"):
        with torch.no_grad(), active_task(task):
            ours = model.base_model(input_ids=input_ids).last_hidden_state
        served = peft.PeftModel.from_pretrained(copy.deepcopy(causal_lm), str(tmp_path / task)).eval()
        with torch.no_grad():
            theirs = served(input_ids=input_ids, output_hidden_states=True).hidden_states[-1]
        assert torch.allclose(theirs, ours, atol=1e-5)


def test_cli_exports_one_task_of_a_saved_adapter(peft, tmp_path, capsys):
    hf_dir, adapter_dir, out = tmp_path / "base", tmp_path / "adapter", tmp_path / "peft"
    hf_model("llama").save_pretrained(str(hf_dir))
    model = AutoAdapterModel.from_pretrained(str(hf_dir))
    model.add_adapter("t", config=HYBRID)
    perturb_adapter(model)
    model.save_adapter(str(adapter_dir), "t", with_head=False)
    assert main([str(adapter_dir), str(out), "--model", str(hf_dir), "--task", "b"]) == 0
    assert capsys.readouterr().out.strip() == f"b: {out}"
    saved = json.loads((out / PEFT_CONFIG_FILE).read_text())
    assert saved["base_model_name_or_path"] == str(hf_dir)
    served = peft.PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(str(hf_dir)), str(out)).eval()
    model.set_active_adapters("t")
    model.eval()
    input_ids = inputs_of("llama")["input_ids"]
    with torch.no_grad(), active_task("b"):
        ours = model.base_model(input_ids=input_ids).last_hidden_state
    with torch.no_grad():
        theirs = served(input_ids=input_ids, output_hidden_states=True).hidden_states[-1]
    assert torch.allclose(theirs, ours, atol=1e-5)


@pytest.mark.parametrize("variant, config", [("proadapter", "proadapter[reduction_factor=8,density=0.5]"),
                                             ("proprefix", "proprefix[prefix_length=6,bottleneck_size=16,"
                                                           "density=0.5]")])
def test_methods_without_a_lora_form_are_refused_by_name(variant, config, tmp_path):
    model = build_adapter_model("bert", config)
    with pytest.raises(ValueError, match=f"'{variant}' adapter; only prolora and lora"):
        export_peft_lora(model, "task", str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_unknown_task_and_unknown_adapter_are_refused(tmp_path):
    model = build_adapter_model("bert", HYBRID, head=False)
    with pytest.raises(ValueError, match=r"no task 'z' \(tasks: \['a', 'b'\]\)"):
        export_peft_lora(model, "task", str(tmp_path), task="z")
    with pytest.raises(ValueError, match="No adapter named 'other'"):
        export_peft_lora(model, "other", str(tmp_path))
    single = build_adapter_model("bert", "prolora[r=4,alpha=6,density=0.5]", head=False)
    with pytest.raises(ValueError, match="has no tasks"):
        export_peft_lora(single, "task", str(tmp_path), task="a")


def test_without_peft_the_export_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    model = build_adapter_model("bert", "prolora[r=4,alpha=6,density=0.5]", head=False)
    with pytest.raises(ImportError, match=r"pip install 'propetl-adapters\[peers\]'") as error:
        export_peft_lora(model, "task", str(tmp_path))
    assert "\n" not in str(error.value)
    model.save_adapter(str(tmp_path / "adapter"), "task")
    assert main([str(tmp_path / "adapter"), str(tmp_path / "out"), "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("propetl-export: error: exporting to PEFT's LoRA format needs the peft package")
    assert len(err.splitlines()) == 1
