"""Bit-level storage equals the SPEC formulas on roberta-base and t5-base geometry (uninitialised weights)."""

import pytest
from adapters import AutoAdapterModel

from propetl_adapters.storage import build_base_model, folder_bytes, format_report, main, storage_report

D, BN, R, PREFIX = 768, 64, 32, 64


def _formula(method: str, n_layers: int) -> int:
    if method == "proadapter":
        return 32 * (2 * BN * D + BN + D) + 2 * BN * D * n_layers
    if method == "prolora":
        return 32 * 4 * R * D + 4 * R * D * n_layers
    return 32 * 2 * PREFIX * D + 2 * PREFIX * D * n_layers


# adapters after every FFN; LoRA and prefixes in every attention block (T5: encoder self, decoder self and cross).
LAYERS = {"roberta-base": {"proadapter": 12, "prolora": 12, "proprefix": 12},
          "t5-base": {"proadapter": 24, "prolora": 36, "proprefix": 36}}


@pytest.fixture(scope="module", params=sorted(LAYERS))
def geometry_model(request):
    model = build_base_model(request.param)
    for method in ("proadapter", "prolora", "proprefix"):
        model.add_adapter(method, config=method)
    return request.param, model


@pytest.mark.parametrize("method", ["proadapter", "prolora", "proprefix"])
def test_counted_bls_equals_spec_formula(geometry_model, method):
    geometry, model = geometry_model
    report = storage_report(model, method)
    assert report.propetl.bls_bits == _formula(method, LAYERS[geometry][method])
    if geometry == "roberta-base":
        assert abs(report.base_model_parameters - 124_645_632) < 1000
        assert report.propetl.bls_percent == pytest.approx(100 * report.propetl.bls_bits
                                                           / (32 * report.base_model_parameters))
    # The plain, unshared module stores one float32 prototype-sized module per layer.
    per_layer = {"proadapter": 2 * BN * D + BN + D, "prolora": 4 * R * D, "proprefix": 2 * PREFIX * D}[method]
    assert report.plain.stored_parameters_by_bits == {32: per_layer * LAYERS[geometry][method]}
    assert report.plain.bls_bits > 8 * report.propetl.bls_bits


def test_worked_example_of_the_spec(geometry_model):
    geometry, model = geometry_model
    if geometry != "roberta-base":
        pytest.skip("the worked example is on roberta-base")
    report = storage_report(model, "proadapter")
    assert report.plain.stored_parameters_by_bits[32] == 12 * 99_136 == 1_189_632
    assert report.propetl.stored_parameters_by_bits == {32: 99_136, 1: 1_179_648}
    assert report.propetl.bls_percent == pytest.approx(0.109, abs=0.001)
    assert report.plain.bls_percent == pytest.approx(0.954, abs=0.001)


def test_adapter_summary_counts_prototype_once_on_real_geometry(geometry_model):
    geometry, model = geometry_model
    rows = {r["name"]: r["#param"] for r in model.adapter_summary(as_dict=True)}
    report = storage_report(model, "proadapter")
    assert rows["proadapter"] == report.propetl.trainable_parameters


def test_proadapter_folder_on_disk_is_close_to_bls(geometry_model, tmp_path):
    geometry, model = geometry_model
    if geometry != "roberta-base":
        pytest.skip("the disk-size target is stated for roberta-base")
    for use_safetensors in (True, False):
        folder = tmp_path / str(use_safetensors)
        model.save_adapter(str(folder), "proadapter", use_safetensors=use_safetensors, with_head=False)
        bls = storage_report(model, "proadapter", saved_folder=str(folder)).propetl.bls_bits
        assert folder_bytes(str(folder)) <= 1.02 * bls / 8 + 16 * 1024


@pytest.mark.parametrize("density", [0.5, 0.1])
def test_compact_folder_on_disk_is_close_to_its_bls_and_masks_cost_their_floor(geometry_model, tmp_path, density):
    # Compact export: 16-bit prototype and range-coded masks. BLS counts the real bits; the folder is within
    # 2 % plus a fixed header of it, and the masks cost about numel * H(k) (SPEC §1.4's floor).
    from propetl_adapters.mask_coding import information_floor_bits
    from propetl_adapters.serialization import adapter_masks, save_compact
    geometry, model = geometry_model
    if geometry != "roberta-base":
        pytest.skip("one geometry is enough for the disk check")
    name = f"compact{int(density * 10)}"
    model.add_adapter(name, config=f"proadapter[density={density}]")
    folder = tmp_path / name
    save_compact(model, str(folder), name, with_head=False)
    report = storage_report(model, name, saved_folder=str(folder)).propetl
    assert report.stored_parameters_by_bits == {16: 2 * BN * D + BN + D}
    floor = sum(information_floor_bits(m.scores.numel(), m.kept) for m in adapter_masks(model, name).values())
    assert floor <= report.coded_mask_bits <= floor + 40 * 24
    assert report.bls_bits == 16 * (2 * BN * D + BN + D) + report.coded_mask_bits
    assert report.bls_bits / 8 <= folder_bytes(str(folder)) <= 1.02 * report.bls_bits / 8 + 16 * 1024
    # Reporting the same adapter as compact without a folder gives the same bits.
    assert storage_report(model, name, prototype_dtype="bfloat16").propetl.bls_bits == report.bls_bits
    # int8: the two matrices as 8-bit codes, one bfloat16 scale per row (BN rows of D, D rows of BN), biases
    # in bfloat16; the folder is held to the same bound.
    int8_folder = tmp_path / f"{name}_int8"
    save_compact(model, str(int8_folder), name, prototype_dtype="int8", with_head=False)
    int8 = storage_report(model, name, saved_folder=str(int8_folder)).propetl
    assert int8.stored_parameters_by_bits == {16: (BN + D) + (BN + D), 8: 2 * BN * D}
    assert int8.coded_mask_bits == report.coded_mask_bits
    assert int8.bls_bits / 8 <= folder_bytes(str(int8_folder)) <= 1.02 * int8.bls_bits / 8 + 16 * 1024


def test_cli_on_a_saved_folder_and_on_a_config_string(tmp_path, capsys):
    from tests.conftest import build_adapter_model, tiny_config
    model = build_adapter_model("bert", "proadapter[reduction_factor=8]")
    tiny = tmp_path / "tiny-bert"
    tiny_config("bert").save_pretrained(str(tiny))
    model.save_adapter(str(tmp_path / "saved"), "task", with_head=False)
    assert main([str(tmp_path / "saved"), "--model", str(tiny)]) == 0
    text = capsys.readouterr().out
    assert "bit-level storage (bits)" in text and "plain seq_bn" in text
    assert main([str(tiny), "--config", "prolora[r=4]", "--json"]) == 0
    assert '"method": "prolora"' in capsys.readouterr().out


@pytest.mark.parametrize("config", ["proadapter[reduction_factor=8]", "prolora[r=4]", "proprefix[prefix_length=4]",
                                    "proadapter[tasks=a|b]", "hyperformer++[tasks=a|b]"])
def test_a_model_built_without_initialisation_counts_like_an_initialised_one(config, tmp_path):
    """build_base_model skips the base weights' initialisation (meta device, then empty CPU memory)."""
    from tests.conftest import tiny_config
    tiny_config("bert").save_pretrained(str(tmp_path))
    from transformers import AutoConfig
    # The same config object (with its recorded path, which adapter_config.json stores) for both models.
    fast, reference = build_base_model(str(tmp_path)), AutoAdapterModel.from_config(AutoConfig.from_pretrained(str(tmp_path)))
    assert {p.device.type for p in fast.parameters()} == {"cpu"}
    for model in (fast, reference):
        model.add_adapter("a", config=config)
    assert storage_report(fast, "a").to_dict() == storage_report(reference, "a").to_dict()


def test_cli_rejects_a_model_without_config(tmp_path, capsys):
    from tests.conftest import tiny_config
    tiny = tmp_path / "tiny-bert"
    tiny_config("bert").save_pretrained(str(tiny))
    with pytest.raises(SystemExit):
        main([str(tiny)])
    assert "pass --config" in capsys.readouterr().err


def test_format_report_mentions_the_head_separately():
    from tests.conftest import build_adapter_model
    model = build_adapter_model("bert", "proadapter[reduction_factor=8]")
    text = format_report(storage_report(model, "task"))
    assert "prediction head (not included above)" in text
