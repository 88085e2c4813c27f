"""Hyperformer++ / Hyperformer: shapes and counts, per-task and per-layer weights, gradients, routing,
save/load, the frozen inference path and the storage formula on t5-base geometry."""

import json

import pytest
import torch
from adapters import AdapterConfig

from conftest import build_adapter_model, model_inputs, model_output
from propetl_adapters import active_task
from propetl_adapters.inference import freeze_hypernetwork
from propetl_adapters.methods.hyperformer import HyperAdapter
from propetl_adapters.multitask import TaskRoutingError
from propetl_adapters.serialization import base_layer_norm_parameters, load_base_layer_norms, save_base_layer_norms
from propetl_adapters.storage import build_base_model, storage_report

CONFIGS = {"hyperformer++": "hyperformer++[reduction_factor=4,tasks=a|b]",
           "hyperformer": "hyperformer[reduction_factor=4,tasks=a|b]"}


@pytest.fixture(params=list(CONFIGS))
def hyper(request):
    return request.param


def hyper_layers(model):
    return [m for m in model.modules() if isinstance(m, HyperAdapter)]


def test_config_defaults_and_errors():
    config = AdapterConfig.load("hyperformer++[tasks=rte|mrpc]")
    assert (config.reduction_factor, config.embedding_dim, config.projector_hidden_dim, config.projected_dim) == (
        32, 64, 128, 64)
    assert config.mh_adapter and config.output_adapter and config.ln_after and config.shared_generators
    assert not AdapterConfig.load("hyperformer[tasks=a]").shared_generators
    with pytest.raises(ValueError, match="needs tasks"):
        AdapterConfig.load("hyperformer++[tasks='']")


def test_shapes_and_parameter_count_follow_the_formula(hyper):
    model = build_adapter_model("bert", CONFIGS[hyper])  # d 32, bottleneck 8, 3 layers x 2 blocks
    d, b, layers, tasks = 32, 8, 3, 2
    generators = (64 + 1) * (2 * d * b + b + 3 * d)
    shared = tasks * 64 + layers * 64 + 2 * 64 + (192 * 128 + 128) + (128 * 64 + 64) + 2 * 64
    expected = shared + generators * (1 if hyper == "hyperformer++" else 2 * layers)
    adapter_params = sum(p.numel() for n, p in model.named_parameters() if ".task." in f".{n}." and "heads" not in n)
    assert adapter_params == expected
    weights = hyper_layers(model)[0].generated("a")
    assert weights["down_weight"].shape == (b, d) and weights["up_weight"].shape == (d, b)


def test_generated_weights_differ_per_task_and_per_layer(hyper):
    model = build_adapter_model("bert", CONFIGS[hyper])
    first, second = hyper_layers(model)[:2]
    assert not torch.allclose(first.generated("a")["ln_weight"], first.generated("b")["ln_weight"])
    assert not torch.allclose(first.generated("a")["ln_weight"], second.generated("a")["ln_weight"])


@pytest.mark.parametrize("arch", ["bert", "t5"])
def test_gradient_reaches_the_task_embeddings_and_mixed_batches_route(hyper, arch):
    model = build_adapter_model(arch, CONFIGS[hyper])
    inputs = model_inputs(arch)
    model_output(model, dict(inputs, task_ids=["a", "a", "a"])).pow(2).sum().backward()
    embedding = model.base_model.shared_parameters["task"]["task_embedding"]
    assert embedding.grad[0].abs().sum() > 0 and embedding.grad[1].abs().sum() == 0
    model.eval()
    with active_task("a"):
        a = model_output(model, inputs)
    with active_task("b"):
        b = model_output(model, inputs)
    mixed = model_output(model, dict(inputs, task_ids=torch.tensor([1, 0, 1])))
    assert torch.allclose(mixed[0], b[0], atol=1e-5) and torch.allclose(mixed[1], a[1], atol=1e-5)
    with pytest.raises(TaskRoutingError, match="no task 'c'"), active_task("c"):
        model_output(model, inputs)


def test_save_load_and_frozen_inference_give_the_same_outputs(hyper, tmp_path):
    model = build_adapter_model("bert", CONFIGS[hyper])
    model.eval()
    inputs = model_inputs("bert")
    with active_task("b"):
        expected = model_output(model, inputs)
    model.save_adapter(str(tmp_path), "task")
    fresh = build_adapter_model("bert", CONFIGS[hyper].replace("a|b", "x|y"), name="other")
    fresh.load_adapter(str(tmp_path), set_active=True)
    fresh.eval()
    with active_task("b"):
        assert torch.equal(model_output(fresh, inputs), expected)
    freeze_hypernetwork(model, "task", "b")
    assert not hyper_layers(model) and "task" not in model.base_model.shared_parameters
    assert torch.allclose(model_output(model, inputs), expected, atol=1e-6)


def test_trained_base_layer_norms_are_saved_beside_the_adapter_and_restore_the_outputs(tmp_path):
    model = build_adapter_model("bert", CONFIGS["hyperformer++"])
    model.eval()
    layer_norms = base_layer_norm_parameters(model)
    assert layer_norms and not any("shared_parameters" in name or "adapters" in name for name in layer_norms)
    with torch.no_grad():  # what training them (Hyperformer's reference setup) does
        for param in layer_norms.values():
            param.add_(0.5 * torch.randn_like(param))
    inputs = model_inputs("bert")
    with active_task("a"):
        expected = model_output(model, inputs)
    model.save_adapter(str(tmp_path), "task")
    save_base_layer_norms(model, str(tmp_path))
    fresh = build_adapter_model("bert", CONFIGS["hyperformer++"], name="other")
    fresh.load_adapter(str(tmp_path), set_active=True)
    fresh.eval()
    with active_task("a"):
        assert not torch.allclose(model_output(fresh, inputs), expected)  # the adapter alone misses them
        load_base_layer_norms(fresh, str(tmp_path))
        assert torch.equal(model_output(fresh, inputs), expected)
    with pytest.raises(ValueError, match="base_layer_norms.safetensors.*another architecture"):
        load_base_layer_norms(build_adapter_model("t5", "seq_bn"), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no saved layer norms"):
        load_base_layer_norms(fresh, str(tmp_path / "nowhere"))


def test_loading_a_checkpoint_with_another_embedding_size_fails_clearly(tmp_path):
    model = build_adapter_model("bert", CONFIGS["hyperformer++"])
    model.save_adapter(str(tmp_path), "task")
    config_path = tmp_path / "adapter_config.json"
    saved = json.loads(config_path.read_text())
    saved["config"]["embedding_dim"] = 32
    config_path.write_text(json.dumps(saved))
    other = build_adapter_model("bert", "seq_bn", name="x")
    with pytest.raises(RuntimeError, match="size mismatch"):
        other.load_adapter(str(tmp_path))


def test_per_task_storage_on_t5_base_is_near_the_reference_0_29_percent():
    """Hyperformer++ on t5-base, 8 GLUE tasks, reduction 32 (bottleneck 24), one hypernetwork per side:
    per side 6 generators (64 + 1) x (2·768·24 + 24 + 3·768); projector (192·128 + 128) + (128·64 + 64) + 2·64;
    embeddings 8·64 (tasks) + 24·64 (layers) + 2·64 (blocks). Total / 8 tasks / 222,903,552."""
    model = build_base_model("t5-base")
    model.add_adapter("h", config="hyperformer++[tasks=rte|sst2|mrpc|stsb|qqp|mnli|qnli|cola]")
    report = storage_report(model, "h")
    d, b = 768, 24
    expected = 2 * 65 * (2 * d * b + b + 3 * d) + (192 * 128 + 128) + (128 * 64 + 64) + 128 + 8 * 64 + 24 * 64 + 128
    assert report.propetl.trainable_parameters == expected == 5_130_224
    assert report.base_model_parameters == 222_903_552
    assert report.amortized_task_percent == pytest.approx(100 * expected / 8 / 222_903_552)
    assert 0.27 < report.amortized_task_percent < 0.31
    assert report.task_bits["rte"] == 32 * 64
