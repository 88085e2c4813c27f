"""save_adapter / load_adapter for the three variants: files, exact reload, and bad input."""

import json
import os
import subprocess
import sys

import pytest
import torch
from adapters import AutoAdapterModel
from adapters.utils import SAFE_WEIGHTS_NAME, WEIGHTS_NAME

from propetl_adapters.adapter_folder import MANIFEST_NAME, file_digest, write_manifest
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
    weights_name = SAFE_WEIGHTS_NAME if use_safetensors else WEIGHTS_NAME
    assert files == {"adapter_config.json", MASK_FILE_NAME, weights_name, MANIFEST_NAME}
    listed = json.load(open(tmp_path / MANIFEST_NAME))["files"]
    assert set(listed) == files - {MANIFEST_NAME}
    assert all(listed[name] == dict(zip(("size", "sha256"), file_digest(str(tmp_path / name)))) for name in listed)
    assert read_mask_file(str(tmp_path / MASK_FILE_NAME)).header["weights"] == {
        "file": weights_name, "sha256": listed[weights_name]["sha256"]}
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
    with pytest.raises(MaskFileError, match="checksum|too short"):
        read_mask_file(str(path))
    fresh = _fresh("bert")
    before = _state(fresh)
    with pytest.raises(ValueError, match=f"{MASK_FILE_NAME}: (\\d+ bytes|SHA-256 differs)"):  # the manifest sees it
        fresh.load_adapter(str(tmp_path), with_head=False)
    _assert_unchanged(fresh, before)
    write_manifest(str(tmp_path))  # a manifest that agrees: the mask file's own checksum still refuses it
    with pytest.raises(MaskFileError, match="checksum|too short"):
        fresh.load_adapter(str(tmp_path), with_head=False)
    _assert_unchanged(fresh, before)


def test_kept_count_disagreeing_with_config_is_rejected(tmp_path):
    _saved_bert(tmp_path, "proadapter")
    saved = json.load(open(tmp_path / "adapter_config.json"))
    saved["config"]["density"] = 0.25
    json.dump(saved, open(tmp_path / "adapter_config.json", "w"))
    write_manifest(str(tmp_path))
    fresh = _fresh("bert")
    with pytest.raises(MaskFileError, match="density 0.5.*gives it 0.25"):
        fresh.load_adapter(str(tmp_path), with_head=False)
    assert "task" not in fresh.adapters_config


def test_mask_whose_kept_count_breaks_its_density_is_rejected(tmp_path):
    mask = torch.zeros(4, 4)
    mask[0, :3] = 1
    write_mask_file(str(tmp_path / "m.bin"), {"method": "proadapter", "weights": {"file": "w", "sha256": "0" * 64}},
                    [("x", mask, 0.5)])
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
    # Saves of that time had no manifest either.
    from propetl_adapters.adapter_folder import MANIFEST_NAME
    from propetl_adapters.serialization import MANIFEST_KEY
    del saved[MANIFEST_KEY]
    (tmp_path / MANIFEST_NAME).unlink()
    config_path.write_text(json.dumps(saved))
    fresh = _fresh("bert")
    fresh.load_adapter(str(tmp_path), set_active=True)
    assert fresh.adapters_config.get("task").joint_kv_mask is False
    with torch.no_grad():
        assert torch.equal(model_output(fresh.eval(), inputs), expected)


@pytest.mark.parametrize("prototype_dtype", ["bfloat16", "float16", "int8"])
def test_compact_reload_equals_the_model_with_its_prototype_rounded(tmp_path, arch, variant, prototype_dtype):
    # The reference: the plain (fp32) export loaded, then every stored float rounded as the compact format does.
    from propetl_adapters.mask_io import RANGE_CODED_VERSION
    from propetl_adapters.serialization import export_state, round_as_compact, save_compact
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
        targets = adapter_tensors(rounded, "task")
        for key, value in round_as_compact(export_state(rounded, "task")[0], prototype_dtype).items():
            targets[key].copy_(value)
        assert torch.equal(model_output(compact.eval(), inputs), model_output(rounded, inputs))
    assert not torch.equal(model_output(compact, inputs), unrounded)  # the rounding is real


def test_compact_export_refuses_an_unknown_dtype(tmp_path):
    from propetl_adapters.serialization import save_compact
    with pytest.raises(ValueError, match="must be one of"):
        save_compact(_trained("bert", "proadapter"), str(tmp_path), "task", prototype_dtype="int4")


def test_int8_codes_each_row_with_its_own_scale_within_half_a_step():
    from propetl_adapters.serialization import INT8_SCALE_SUFFIX, compact_tensors, expand_compact
    torch.manual_seed(0)
    weights = torch.randn(3, 5, 7) * torch.tensor([1e-3, 1.0, 50.0]).view(3, 1, 1)  # rows of very unlike size
    weights[1, 2] = 0  # an all-zero row
    tensors = {"w": weights, "bias": torch.randn(7), "ids": torch.arange(4)}
    stored = compact_tensors(tensors, "int8")
    assert stored["w"].dtype == torch.int8 and stored["w"].shape == (3, 5, 7)
    scale = stored["w" + INT8_SCALE_SUFFIX]
    assert scale.dtype == torch.bfloat16 and scale.shape == (15,)
    assert stored["bias"].dtype == torch.bfloat16 and torch.equal(stored["ids"], tensors["ids"])
    codes = stored["w"].reshape(15, 7).int()
    nonzero = scale != 0
    assert codes[nonzero].abs().amax(dim=1).ge(126).all()  # each row uses the whole range (bf16-rounded scale)
    assert torch.equal(codes[~nonzero], torch.zeros_like(codes[~nonzero]))
    back = expand_compact(stored)
    assert set(back) == {"w", "bias", "ids"}
    error = (back["w"] - weights).reshape(15, 7).abs()
    assert (error <= scale.float().unsqueeze(1) / 2 + 1e-12).all()
    assert torch.equal(back["bias"], stored["bias"])
    stored["w" + INT8_SCALE_SUFFIX] = scale[:14]
    with pytest.raises(ValueError, match="one scale per row"):
        expand_compact(stored)


def test_int8_storage_counts_codes_at_8_bits_and_scales_at_16(tmp_path):
    from propetl_adapters.serialization import export_state, save_compact
    from propetl_adapters.storage import storage_report
    model = _trained("bert", "proadapter")
    stored, _ = export_state(model, "task")
    matrices = [v for v in stored.values() if v.is_floating_point() and v.dim() >= 2]
    vectors = [v for v in stored.values() if v.is_floating_point() and v.dim() < 2]
    save_compact(model, str(tmp_path), "task", prototype_dtype="int8")
    report = storage_report(model, "task", saved_folder=str(tmp_path)).propetl
    assert report.stored_parameters_by_bits[8] == sum(m.numel() for m in matrices)
    assert report.stored_parameters_by_bits[16] == (sum(m.numel() // m.shape[-1] for m in matrices)
                                                   + sum(v.numel() for v in vectors))
    assert read_mask_file(str(tmp_path / MASK_FILE_NAME)).header["prototype_dtype"] == "int8"


# --- integrity of every file and all-or-nothing loads (issue 17) ---

def _fingerprint(model):
    """Everything a load may change: tensors, adapters, heads and what is active."""
    return (_state(model), dict(model.adapters_config.adapters), sorted(model.heads),
            sorted(model.config.prediction_heads), str(model.active_adapters), model.active_head)


def _assert_same_model(model, fingerprint):
    state, *rest = fingerprint
    _assert_unchanged(model, state)
    assert list(_fingerprint(model)[1:]) == rest


def _rewrite_mask_header(path, edit, version=None):
    """Change a mask file's header and re-seal it with a valid checksum (a crafted, not a damaged, file)."""
    import hashlib
    import struct
    data = path.read_bytes()
    magic, old_version, length = struct.unpack_from("<8sII", data)
    header = json.loads(data[16:16 + length])
    edit(header)
    header_bytes = json.dumps(header, sort_keys=True).encode()
    body = struct.pack("<8sII", magic, version or old_version, len(header_bytes)) + header_bytes \
        + data[16 + length:-32]
    path.write_bytes(body + hashlib.sha256(body).digest())


def _flip_bit_of(path, tensor_name):
    """Flip the lowest bit of the first element of ``tensor_name`` inside a safetensors or torch file."""
    import io
    from safetensors.torch import load as load_bytes, save as save_bytes
    data = path.read_bytes()
    if path.suffix == ".safetensors":
        tensors = load_bytes(data)
    else:
        tensors = torch.load(io.BytesIO(data), weights_only=True)
    key = next(k for k in tensors if k.endswith(tensor_name))
    flat = tensors[key].view(-1).view(torch.int32)
    flat[0] ^= 1
    if path.suffix == ".safetensors":
        path.write_bytes(save_bytes(tensors))
    else:
        torch.save(tensors, path)


@pytest.mark.parametrize("use_safetensors", [True, False])
@pytest.mark.parametrize("reseal", [False, True], ids=["manifest", "mask_digest"])
def test_one_flipped_bit_in_the_prototype_weights_is_refused(tmp_path, use_safetensors, reseal):
    model = _trained("bert", "proadapter")
    model.save_adapter(str(tmp_path), "task", use_safetensors=use_safetensors, with_head=False)
    weights = tmp_path / (SAFE_WEIGHTS_NAME if use_safetensors else WEIGHTS_NAME)
    _flip_bit_of(weights, "up_bias")
    if reseal:  # a manifest that agrees: the digest in the mask file still ties masks to the original weights
        write_manifest(str(tmp_path))
    fresh = _fresh("bert")
    before = _fingerprint(fresh)
    expected = f"{MASK_FILE_NAME}: saved with weights of SHA-256" if reseal else \
        f"{weights.name}: (SHA-256 differs|\\d+ bytes, {MANIFEST_NAME} says)"
    with pytest.raises(ValueError, match=expected):
        fresh.load_adapter(str(tmp_path), with_head=False, use_safetensors=use_safetensors)
    _assert_same_model(fresh, before)


def test_mask_file_of_another_same_geometry_save_is_refused(tmp_path):
    _trained("bert", "proadapter", seed=0).save_adapter(str(tmp_path / "a"), "task", with_head=False)
    _trained("bert", "proadapter", seed=1).save_adapter(str(tmp_path / "b"), "task", with_head=False)
    (tmp_path / "a" / MASK_FILE_NAME).write_bytes((tmp_path / "b" / MASK_FILE_NAME).read_bytes())
    fresh = _fresh("bert")
    before = _fingerprint(fresh)
    with pytest.raises(ValueError, match=f"{MASK_FILE_NAME}: SHA-256 differs"):
        fresh.load_adapter(str(tmp_path / "a"), with_head=False)
    write_manifest(str(tmp_path / "a"))
    with pytest.raises(MaskFileError, match="masks and weights come from different saves"):
        fresh.load_adapter(str(tmp_path / "a"), with_head=False)
    _assert_same_model(fresh, before)


def test_folder_saved_with_a_manifest_is_refused_without_it(tmp_path):
    _saved_bert(tmp_path, "prolora")
    os.remove(tmp_path / MANIFEST_NAME)
    fresh = _fresh("bert")
    with pytest.raises(ValueError, match=f"{MANIFEST_NAME}: missing, but adapter_config.json says"):
        fresh.load_adapter(str(tmp_path), with_head=False)
    assert "task" not in fresh.adapters_config


def test_folder_of_an_older_version_without_manifest_or_weights_digest_still_loads(tmp_path):
    model = _saved_bert(tmp_path, "proadapter")
    os.remove(tmp_path / MANIFEST_NAME)
    saved = json.load(open(tmp_path / "adapter_config.json"))
    del saved["propetl_manifest"]
    json.dump(saved, open(tmp_path / "adapter_config.json", "w"))
    _rewrite_mask_header(tmp_path / MASK_FILE_NAME, lambda header: header.pop("weights"), version=1)
    assert read_mask_file(str(tmp_path / MASK_FILE_NAME)).weights_sha256 is None
    fresh = _fresh("bert")
    fresh.load_adapter(str(tmp_path), with_head=False, set_active=True)
    inputs = model_inputs("bert")
    model.set_active_adapters("task")
    with torch.no_grad():
        assert torch.equal(model.base_model(**inputs)[0], fresh.eval().base_model(**inputs)[0])


@pytest.mark.parametrize("field", ["kept", "shape", "offset"])
def test_crafted_mask_file_with_valid_checksum_missing_a_field_is_refused_by_name(tmp_path, field):
    _saved_bert(tmp_path, "proadapter")
    _rewrite_mask_header(tmp_path / MASK_FILE_NAME, lambda header: header["entries"][1].pop(field))
    with pytest.raises(MaskFileError, match=f"{MASK_FILE_NAME}: header entry 1 .* lacks field '{field}'"):
        read_mask_file(str(tmp_path / MASK_FILE_NAME))
    write_manifest(str(tmp_path))
    fresh = _fresh("bert")
    before = _fingerprint(fresh)
    with pytest.raises(MaskFileError, match=f"lacks field '{field}'"):
        fresh.load_adapter(str(tmp_path), with_head=False)
    _assert_same_model(fresh, before)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe{}", b"[1, 2]"])
def test_malformed_adapter_config_is_refused_naming_the_file(tmp_path, content):
    _saved_bert(tmp_path, "proadapter")
    (tmp_path / "adapter_config.json").write_bytes(content)
    fresh = _fresh("bert")
    before = _fingerprint(fresh)
    with pytest.raises(ValueError, match="adapter_config.json: (not valid JSON|expected a JSON object)"):
        fresh.load_adapter(str(tmp_path), with_head=False)
    _assert_same_model(fresh, before)


def _saved_with_head(folder, seed=0, use_safetensors=False):
    model = _trained("bert", "proadapter", seed=seed)
    model.save_adapter(str(folder), "task", with_head=True, use_safetensors=use_safetensors)
    return model


def _present_target():
    """A model that already has adapter 'task' and head 'task' (other values than the saved ones), active."""
    target = _trained("bert", "proadapter")  # the saved model's backbone
    with torch.no_grad():
        for param in target.parameters():
            if param.requires_grad:
                param.add_(1.0)
    target.set_active_adapters("task")
    return target


@pytest.mark.parametrize("present", [False, True], ids=["fresh_model", "adapter_present"])
@pytest.mark.parametrize("damage, message", [
    ("zero_bytes", r"pytorch_model_head.bin: (0 bytes|cannot read the head weights)"),
    ("garbage", r"pytorch_model_head.bin: (\d+ bytes|cannot read the head weights)"),
    ("no_head_config", r"head_config.json: missing"),
    ("wrong_shape", r"pytorch_model_head.bin|loading failed, the model is unchanged"),
    ("missing_tensor", r"pytorch_model_head.bin: lacks tensor 'heads.task."),
])
@pytest.mark.parametrize("reseal", [False, True], ids=["manifest", "resealed"])
def test_a_bad_head_leaves_the_model_byte_identical(tmp_path, present, damage, message, reseal):
    _saved_with_head(tmp_path)
    head = tmp_path / "pytorch_model_head.bin"
    if damage == "zero_bytes":
        head.write_bytes(b"")
    elif damage == "garbage":
        head.write_bytes(b"\x80\x02not a checkpoint")
    elif damage == "no_head_config":
        os.remove(tmp_path / "head_config.json")
    else:
        tensors = torch.load(head, weights_only=True)
        key = sorted(tensors)[-1]
        if damage == "wrong_shape":
            tensors[key] = torch.zeros(tensors[key].shape[0] + 1, *tensors[key].shape[1:])
        else:
            del tensors[key]
        torch.save(tensors, head)
    if reseal or damage in ("wrong_shape", "missing_tensor"):
        write_manifest(str(tmp_path))
    target = _present_target() if present else _fresh("bert")
    before = _fingerprint(target)
    heads_before = dict(target.heads)
    with pytest.raises(ValueError, match=message):
        target.load_adapter(str(tmp_path))
    _assert_same_model(target, before)
    assert all(target.heads[name] is module for name, module in heads_before.items())


def test_head_loads_with_the_adapter_as_one_unit(tmp_path):
    model = _saved_with_head(tmp_path, use_safetensors=True)
    target = _present_target()
    assert target.load_adapter(str(tmp_path), use_safetensors=True, set_active=True) == "task"
    inputs = model_inputs("bert")
    model.set_active_adapters("task")
    with torch.no_grad():
        assert torch.equal(model_output(model.eval(), inputs), model_output(target.eval(), inputs))


def test_head_saved_as_safetensors_loaded_without_is_refused_by_name(tmp_path):
    _saved_with_head(tmp_path, use_safetensors=True)
    fresh = _fresh("bert")
    before = _fingerprint(fresh)
    with pytest.raises(ValueError, match=r"pytorch_model_head.bin: missing, but head_config.json describes a head "
                                         r"\(it was saved with use_safetensors=True\)"):
        fresh.load_adapter(str(tmp_path))
    _assert_same_model(fresh, before)


def test_proprefix_export_over_the_live_adapter_is_refused_naming_the_field(tmp_path):
    model = _trained("bert", "proprefix")
    model.save_adapter(str(tmp_path), "task", with_head=False)
    before = _fingerprint(model)
    with pytest.raises(ValueError, match=r"adapter_config.json: adapter 'task' in the model has another config "
                                         r"\(flat=True in the folder, False in the model\)"):
        model.load_adapter(str(tmp_path), with_head=False)
    _assert_same_model(model, before)
    assert model.load_adapter(str(tmp_path), with_head=False, load_as="exported") == "exported"
