"""save_adapter / load_adapter for the three variants: files, exact reload, and bad input."""

import json
import os
import subprocess
import sys

import pytest
import torch
from adapters import AutoAdapterModel
from adapters.utils import SAFE_WEIGHTS_NAME, WEIGHTS_NAME

from propetl_adapters.mask_io import MASK_FILE_NAME, MaskFileError, read_mask_file, write_mask_file
from propetl_adapters.serialization import adapter_tensors
from tests.conftest import VARIANTS, build_adapter_model, model_inputs, model_output, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trained(arch, variant, seed=0):
    model = build_adapter_model(arch, VARIANTS[variant], seed=seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)
    return model.eval()


def _saved_bert(folder, variant):
    """A trained tiny-BERT adapter saved (without head) to ``folder``; returns the model."""
    model = _trained("bert", variant)
    model.save_adapter(str(folder), "task", with_head=False)
    return model


def _fresh(arch, seed=0):
    torch.manual_seed(seed)
    return AutoAdapterModel.from_config(tiny_config(arch)).eval()


@pytest.mark.parametrize("use_safetensors", [True, False])
def test_saved_folder_layout(tmp_path, variant, use_safetensors):
    model = _trained("bert", variant)
    model.save_adapter(str(tmp_path), "task", use_safetensors=use_safetensors, with_head=False)
    files = set(os.listdir(tmp_path))
    assert files == {"adapter_config.json", MASK_FILE_NAME, SAFE_WEIGHTS_NAME if use_safetensors else WEIGHTS_NAME}
    saved = json.load(open(tmp_path / "adapter_config.json"))
    assert saved["config"]["propetl_method"] == variant
    masks = read_mask_file(str(tmp_path / MASK_FILE_NAME))
    assert all(e["kept"] == int(m.sum()) for e, m in zip(masks.entries, masks.masks.values()))
    weights = torch.load(tmp_path / WEIGHTS_NAME) if not use_safetensors else \
        __import__("safetensors.torch").torch.load_file(str(tmp_path / SAFE_WEIGHTS_NAME))
    assert not any(k.endswith(".scores") for k in weights), "float scores must not be exported"
    assert all(k.startswith("shared_parameters.task.") for k in weights)


@pytest.mark.parametrize("arch", ["bert", "roberta", "t5"])
@pytest.mark.parametrize("with_head", [True, False])
def test_reload_reproduces_outputs_exactly(tmp_path, arch, variant, with_head):
    model = _trained(arch, variant)
    inputs = model_inputs(arch)
    with torch.no_grad():
        expected = model_output(model, inputs) if with_head else model.base_model(**inputs)[0]
    model.save_adapter(str(tmp_path), "task", with_head=with_head)
    fresh = _fresh(arch)
    fresh.load_adapter(str(tmp_path), set_active=True, with_head=with_head)
    fresh.eval()
    with torch.no_grad():
        got = model_output(fresh, inputs) if with_head else fresh.base_model(**inputs)[0]
    assert (got - expected).abs().max().item() == 0.0


def test_reload_in_a_fresh_process_is_bit_exact(tmp_path):
    for variant in VARIANTS:
        model = _trained("roberta", variant)
        with torch.no_grad():
            torch.save(model_output(model, model_inputs("roberta")), tmp_path / f"{variant}.pt")
        model.save_adapter(str(tmp_path / variant), "task", use_safetensors=True)
    script = f"""
import sys, torch
sys.path.insert(0, {REPO!r})
import propetl_adapters
from adapters import AutoAdapterModel
from tests.conftest import tiny_config, model_inputs, model_output
for variant in {list(VARIANTS)!r}:
    torch.manual_seed(0)
    model = AutoAdapterModel.from_config(tiny_config("roberta")).eval()
    model.load_adapter({str(tmp_path)!r} + "/" + variant, set_active=True, use_safetensors=True)
    with torch.no_grad():
        got = model_output(model, model_inputs("roberta"))
    expected = torch.load({str(tmp_path)!r} + "/" + variant + ".pt")
    print(variant, (got - expected).abs().max().item())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    diffs = dict(line.split() for line in result.stdout.strip().splitlines())
    assert diffs == {v: "0.0" for v in VARIANTS}


def _readme_line(start: str) -> str:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        [line] = [l for l in handle if l.startswith(start)]
    return line.split("#")[0].strip()


def test_readme_save_and_load_lines_give_the_logits_in_a_fresh_process(tmp_path, monkeypatch):
    """The README's five-line example, its save and load calls as written: logits, not hidden states."""
    model = build_adapter_model("roberta", VARIANTS["proadapter"], name="rte")
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)
        expected = model.eval()(**model_inputs("roberta")).logits
    torch.save(expected, tmp_path / "expected.pt")
    monkeypatch.chdir(tmp_path)  # the README's relative "out/rte"
    exec(_readme_line("model.save_adapter("), {"model": model})
    script = f"""
import sys, torch
sys.path.insert(0, {REPO!r})
import propetl_adapters
from adapters import AutoAdapterModel
from tests.conftest import tiny_config, model_inputs
torch.manual_seed(0)
model = AutoAdapterModel.from_config(tiny_config("roberta"))
{_readme_line("model.load_adapter(")}
got = model.eval()(**model_inputs("roberta"))
print(tuple(got.logits.shape), torch.equal(got.logits, torch.load("expected.pt")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "(3, 2) True"


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model, before):
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_mask_file_for_another_layer_count_is_rejected_and_model_unchanged(tmp_path, variant):
    _saved_bert(tmp_path, variant)
    config = tiny_config("bert")
    config.num_hidden_layers = 2
    torch.manual_seed(0)
    other = AutoAdapterModel.from_config(config)
    before = _state(other)
    with pytest.raises(ValueError, match=MASK_FILE_NAME + "|weights file"):
        other.load_adapter(str(tmp_path), with_head=False)
    assert "task" not in other.adapters_config
    _assert_unchanged(other, before)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte"])
def test_damaged_mask_file_is_rejected(tmp_path, variant, damage):
    _saved_bert(tmp_path, variant)
    path = tmp_path / MASK_FILE_NAME
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = _fresh("bert")
    before = _state(fresh)
    with pytest.raises(MaskFileError, match="checksum|too short"):
        fresh.load_adapter(str(tmp_path), with_head=False)
    _assert_unchanged(fresh, before)


def test_kept_count_disagreeing_with_config_is_rejected(tmp_path):
    _saved_bert(tmp_path, "proadapter")
    saved = json.load(open(tmp_path / "adapter_config.json"))
    saved["config"]["density"] = 0.25
    json.dump(saved, open(tmp_path / "adapter_config.json", "w"))
    fresh = _fresh("bert")
    with pytest.raises(MaskFileError, match="density 0.5.*gives it 0.25"):
        fresh.load_adapter(str(tmp_path), with_head=False)
    assert "task" not in fresh.adapters_config


def test_mask_whose_kept_count_breaks_its_density_is_rejected(tmp_path):
    mask = torch.zeros(4, 4)
    mask[0, :3] = 1
    write_mask_file(str(tmp_path / "m.bin"), {"method": "proadapter"}, [("x", mask, 0.5)])
    with pytest.raises(MaskFileError, match="keeps 3 entries.*means 8"):
        read_mask_file(str(tmp_path / "m.bin"))


def test_prolora_folder_cannot_be_loaded_as_proadapter(tmp_path):
    _saved_bert(tmp_path, "prolora")
    fresh = _fresh("bert")
    with pytest.raises(ValueError, match="holds a 'prolora' adapter.*proadapter"):
        fresh.load_adapter(str(tmp_path), config="proadapter", with_head=False)
    target = _trained("bert", "proadapter")
    before = _state(target)
    with pytest.raises(ValueError, match="holds a 'prolora' adapter, but adapter 'task' in the model is a 'proadapter'"):
        target.load_adapter(str(tmp_path), with_head=False)
    _assert_unchanged(target, before)


def test_load_as_renames_and_keeps_masks(tmp_path):
    model = _saved_bert(tmp_path, "proadapter")
    fresh = _fresh("bert")
    name = fresh.load_adapter(str(tmp_path), load_as="renamed", with_head=False)
    assert name == "renamed"
    ours = {k.replace(".task.", ".renamed."): v for k, v in adapter_tensors(model, "task").items()
            if not k.endswith("scores")}
    theirs = adapter_tensors(fresh, "renamed")
    assert all(torch.equal(v, theirs[k]) for k, v in ours.items())


def test_proprefix_saved_before_joint_masks_reloads_with_separate_key_and_value_masks(tmp_path):
    # Adapters saved before `joint_kv_mask` existed were trained with one key and one value mask per layer;
    # their adapter_config.json lacks the field, and they must load back as they were trained.
    model = build_adapter_model("bert", "proprefix[prefix_length=6,bottleneck_size=16,joint_kv_mask=False]")
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)
    model.eval()
    inputs = model_inputs("bert")
    with torch.no_grad():
        expected = model_output(model, inputs)
    model.save_adapter(str(tmp_path), "task")
    config_path = tmp_path / "adapter_config.json"
    saved = json.load(open(config_path))
    del saved["config"]["joint_kv_mask"]
    config_path.write_text(json.dumps(saved))
    fresh = _fresh("bert")
    fresh.load_adapter(str(tmp_path), set_active=True)
    assert fresh.adapters_config.get("task").joint_kv_mask is False
    with torch.no_grad():
        assert torch.equal(model_output(fresh.eval(), inputs), expected)


@pytest.mark.parametrize("prototype_dtype", ["bfloat16", "float16"])
def test_compact_reload_equals_the_model_with_its_prototype_rounded(tmp_path, arch, variant, prototype_dtype):
    # The reference: the plain (fp32) export loaded, then every stored float rounded to the compact dtype.
    from propetl_adapters.mask_io import RANGE_CODED_VERSION
    from propetl_adapters.serialization import COMPACT_DTYPES, save_compact
    model = _trained(arch, variant)
    inputs = model_inputs(arch)
    save_compact(model, str(tmp_path / "compact"), "task", prototype_dtype=prototype_dtype)
    model.save_adapter(str(tmp_path / "plain"), "task")
    mask_path = tmp_path / "compact" / MASK_FILE_NAME
    assert read_mask_file(str(mask_path)).header["coding"] == "range"
    assert int.from_bytes(mask_path.read_bytes()[8:12], "little") == RANGE_CODED_VERSION
    compact, rounded = _fresh(arch), _fresh(arch)
    compact.load_adapter(str(tmp_path / "compact"), set_active=True)
    rounded.load_adapter(str(tmp_path / "plain"), set_active=True)
    with torch.no_grad():
        unrounded = model_output(rounded.eval(), inputs)
        for tensor in adapter_tensors(rounded, "task").values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(COMPACT_DTYPES[prototype_dtype]).float())
        assert torch.equal(model_output(compact.eval(), inputs), model_output(rounded, inputs))
    assert not torch.equal(model_output(compact, inputs), unrounded)  # the rounding is real


def test_compact_export_refuses_an_unknown_dtype(tmp_path):
    from propetl_adapters.serialization import save_compact
    with pytest.raises(ValueError, match="must be one of"):
        save_compact(_trained("bert", "proadapter"), str(tmp_path), "task", prototype_dtype="int8")
