"""Hybrid layer/task masks (SPEC §1.3): config, OR rule, routing, storage, save/load, adding a task, freezing."""

import pytest
import torch
from adapters import AdapterConfig

from conftest import build_adapter_model, model_inputs, model_output
from propetl_adapters import active_task, add_task, freeze_masks
from propetl_adapters.masks import TensorMask, kept_count, or_masks
from propetl_adapters.multitask import TaskRoutingError, task_bank
from propetl_adapters.serialization import adapter_masks
from propetl_adapters.storage import storage_report

TASKS = ["a", "b", "c"]
# LoRA's default init has B = 0, which gives the mask scores no gradient at step 0; bert init avoids that.
MULTI_TASK_VARIANTS = {
    "proadapter": "proadapter[reduction_factor=8,tasks=a|b|c]",
    "prolora": "prolora[r=4,alpha=6,init_weights='bert',tasks=a|b|c]",
}


@pytest.fixture(params=list(MULTI_TASK_VARIANTS))
def mt_variant(request):
    return request.param


def per_task_outputs(model, inputs):
    outputs = {}
    for task in TASKS:
        with active_task(task):
            outputs[task] = model_output(model, inputs)
    return outputs


def test_bracket_syntax_gives_the_task_list_and_the_paper_densities():
    config = AdapterConfig.load("proadapter[tasks=rte|mrpc|stsb]")
    assert config.tasks == ["rte", "mrpc", "stsb"]
    assert (config.layer_density, config.task_density) == (0.3, 0.3)
    assert AdapterConfig.load("proadapter").layer_density == 0.5
    assert AdapterConfig.load("prolora[tasks=['x', 'y'],density=0.4]").tasks == ["x", "y"]
    assert AdapterConfig.load(config.to_dict()).tasks == config.tasks  # the JSON round trip of save_adapter
    # '|' still separates the members of a ConfigUnion outside brackets.
    union = AdapterConfig.load("prefix_tuning|seq_bn")
    assert len(union.configs) == 2


@pytest.mark.parametrize("config, message", [
    ("proadapter[tasks=a|a]", "repeated"),
    ("proadapter[tasks='a.b']", "invalid task name"),
    ("proadapter[tasks=a|b,shared=False]", "shared=True"),
    ("proadapter[tasks=a|b,task_density=0]", "task_density"),
    ("proprefix[tasks=a|b]", "does not support tasks"),
])
def test_bad_task_configs_are_rejected(config, message):
    with pytest.raises(ValueError, match=message):
        AdapterConfig.load(config)


def test_or_rule_passes_the_straight_through_gradient_to_both_score_tensors():
    torch.manual_seed(0)
    layer, task = TensorMask((6, 5), 0.3, "learned"), TensorMask((6, 5), 0.3, "learned")
    weight = torch.randn(6, 5)
    m_l, m_t = layer(weight), task(weight)
    combined = or_masks(m_l, m_t)
    assert torch.equal(combined, torch.maximum(layer.binary(), task.binary()))
    (weight * combined).sum().backward()
    # d(1-(1-a)(1-b))/da = 1-b: a layer score gets the weight where the task mask is off, and vice versa,
    # times sign(s) because each mask ranks |s|.
    assert torch.allclose(layer.scores.grad, layer.scores.sign() * weight * (1 - task.binary()))
    assert torch.allclose(task.scores.grad, task.scores.sign() * weight * (1 - layer.binary()))


def test_hybrid_layer_and_task_masks_recover_known_sub_networks():
    # 3 layers x 2 tasks share one fixed weight; layer l runs task t with m_l OR m_t. Training only the scores
    # to reproduce x (W * (m*_l OR m*_t))^T for random targets must recover every (layer, task) sub-network.
    torch.manual_seed(0)  # the scores' initialisation
    generator = torch.Generator().manual_seed(0)
    shape, density = (24, 48), 0.3
    weight = torch.randn(shape, generator=generator)
    kept = kept_count(density, weight.numel())

    def random_target():
        chosen = torch.randperm(weight.numel(), generator=generator)[:kept]
        return torch.zeros(weight.numel()).index_fill_(0, chosen, 1.0).view(shape)

    targets = {name: random_target() for name in ("l0", "l1", "l2", "t0", "t1")}
    masks = torch.nn.ModuleDict({name: TensorMask(shape, density, "learned") for name in targets})
    optimizer = torch.optim.Adam(masks.parameters(), lr=1e-2)
    pairs = [(f"l{layer}", f"t{task}") for layer in range(3) for task in range(2)]
    for _ in range(800):
        x = torch.randn(16, shape[1], generator=generator)
        loss = sum(((x @ (weight * or_masks(masks[l](weight), masks[t](weight))).T
                     - x @ (weight * or_masks(targets[l], targets[t])).T) ** 2).mean() for l, t in pairs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for l, t in pairs:
        learned = torch.maximum(masks[l].binary(), masks[t].binary())
        assert (learned == or_masks(targets[l], targets[t])).float().mean() >= 0.95, (l, t)


@pytest.mark.parametrize("arch", ["bert", "t5"])
def test_a_mixed_task_batch_matches_running_each_task_separately(mt_variant, arch):
    model = build_adapter_model(arch, MULTI_TASK_VARIANTS[mt_variant])
    model.eval()
    inputs = model_inputs(arch, batch=4)
    separate = per_task_outputs(model, inputs)
    assert not torch.allclose(separate["a"], separate["b"]), "task masks should select different sub-networks"
    order = ["c", "a", "c", "b"]
    expected = torch.stack([separate[task][row] for row, task in enumerate(order)])
    by_index = model_output(model, dict(inputs, task_ids=torch.tensor([TASKS.index(t) for t in order])))
    by_name = model_output(model, dict(inputs, task_ids=order))
    assert torch.equal(by_index, expected)
    assert torch.equal(by_name, expected)


def test_gradients_reach_the_layer_masks_and_only_the_tasks_in_the_batch(mt_variant):
    model = build_adapter_model("bert", MULTI_TASK_VARIANTS[mt_variant])
    model_output(model, dict(model_inputs("bert", batch=3), task_ids=["a", "c", "a"])).sum().backward()
    bank = task_bank(model, "task")
    has_grad = {task: all(m.scores.grad is not None and m.scores.grad.abs().sum() > 0
                          for m in bank.masks[task].values()) for task in TASKS}
    assert has_grad == {"a": True, "b": False, "c": True}
    layer_masks = [m for path, m in adapter_masks(model, "task").items() if "task_masks" not in path]
    assert layer_masks and all(m.scores.grad is not None and m.scores.grad.abs().sum() > 0 for m in layer_masks)


def test_no_layer_mask_aliases_a_task_mask(mt_variant):
    """The reference code's defect (SPEC §4): the first layer mask was the last task mask's parameter."""
    model = build_adapter_model("bert", MULTI_TASK_VARIANTS[mt_variant])
    masks = adapter_masks(model, "task")
    scores = [m.scores for m in masks.values()]
    assert len({id(s) for s in scores}) == len(scores)
    assert len({s.data_ptr() for s in scores}) == len(scores)
    assert sum("task_masks" in path for path in masks) == len(TASKS) * len(task_bank(model, "task").shapes)
    assert all(s.requires_grad for s in scores), "train_adapter must unfreeze the task masks"


def test_a_missing_or_unknown_task_gives_a_clear_error():
    model = build_adapter_model("bert", MULTI_TASK_VARIANTS["proadapter"])
    inputs = model_inputs("bert")
    with pytest.raises(TaskRoutingError, match="no task is set"):
        model_output(model, inputs)
    with pytest.raises(TaskRoutingError, match="has no task 'zzz'"):
        model_output(model, dict(inputs, task_ids=["a", "zzz", "a"]))
    with pytest.raises(TaskRoutingError, match="must index the tasks"):
        model_output(model, dict(inputs, task_ids=torch.tensor([0, 3, 1])))
    with pytest.raises(TaskRoutingError, match="has no task 'q'"), active_task("q"):
        model_output(model, inputs)


def test_storage_report_gives_each_tasks_bits(mt_variant):
    model = build_adapter_model("bert", MULTI_TASK_VARIANTS[mt_variant])
    report = storage_report(model, "task")
    bank = task_bank(model, "task")
    n_task_bits = sum(torch.Size(shape).numel() for shape in bank.shapes.values())
    assert report.task_bits == {task: n_task_bits for task in TASKS}
    layer_bits = sum(m.scores.numel() for path, m in adapter_masks(model, "task").items() if "task_masks" not in path)
    prototype_floats = sum(p.numel() for name, p in model.base_model.shared_parameters["task"].named_parameters()
                           if "task_masks" not in name)
    assert report.propetl.bls_bits == 32 * prototype_floats + layer_bits + len(TASKS) * n_task_bits
    assert report.shared_bits == 32 * prototype_floats + layer_bits


def test_save_and_load_keep_every_task_bit_exact(mt_variant, tmp_path):
    model = build_adapter_model("bert", MULTI_TASK_VARIANTS[mt_variant])
    model.eval()
    inputs = model_inputs("bert")
    expected = per_task_outputs(model, inputs)
    model.save_adapter(str(tmp_path), "task")
    fresh = build_adapter_model("bert", MULTI_TASK_VARIANTS[mt_variant], seed=0)
    with torch.no_grad():  # make sure every adapter tensor really comes from the folder
        for parameter in fresh.base_model.shared_parameters["task"].parameters():
            parameter.add_(1.0)
    fresh.load_adapter(str(tmp_path), load_as="task", set_active=True)
    fresh.eval()
    for task, output in per_task_outputs(fresh, inputs).items():
        assert torch.equal(output, expected[task]), task


def test_adding_a_task_trains_only_its_mask_and_keeps_old_tasks_bit_exact(mt_variant, tmp_path):
    model = build_adapter_model("bert", MULTI_TASK_VARIANTS[mt_variant])
    inputs = model_inputs("bert")
    model.eval()
    before = per_task_outputs(model, inputs)
    new_masks = add_task(model, "task", "d")
    assert model.adapters_config.get("task").tasks == TASKS + ["d"]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {name for name, p in model.named_parameters() if ".task_masks.masks.d." in name}
    start = {key: mask.scores.detach().clone() for key, mask in new_masks.items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        with active_task("d"):
            model_output(model, inputs).pow(2).sum().backward()
        optimizer.step()
    model.eval()
    assert all(not torch.equal(start[key], mask.scores) for key, mask in new_masks.items()), "d did not train"
    after = per_task_outputs(model, inputs)
    for task in TASKS:
        assert torch.equal(after[task], before[task]), task
    model.save_adapter(str(tmp_path), "task")
    with active_task("d"):
        new_output = model_output(model, inputs)
    fresh = build_adapter_model("bert", MULTI_TASK_VARIANTS[mt_variant].replace("a|b|c", "x"), name="other")
    fresh.load_adapter(str(tmp_path), set_active=True)
    fresh.eval()
    with active_task("d"):
        assert torch.equal(model_output(fresh, inputs), new_output)
    with pytest.raises(ValueError, match="already has a task named 'd'"):
        add_task(model, "task", "d")


def test_freezing_a_multi_task_adapter_for_one_task_keeps_its_outputs(mt_variant):
    model = build_adapter_model("bert", MULTI_TASK_VARIANTS[mt_variant])
    model.eval()
    inputs = model_inputs("bert")
    with active_task("b"):
        expected = model_output(model, inputs)
    with pytest.raises(ValueError, match="pass task="):
        freeze_masks(model, "task")
    freeze_masks(model, "task", task="b")
    assert torch.equal(model_output(model, inputs), expected)


def test_generate_routes_each_example_through_active_task():
    """``generate`` refuses unknown kwargs such as task_ids; a per-example ``active_task`` routes it instead."""
    model = build_adapter_model("t5", MULTI_TASK_VARIANTS["proadapter"])
    model.eval()
    inputs = model_inputs("t5", batch=2)
    inputs.pop("decoder_input_ids")

    def scores(task):
        with active_task(task):
            out = model.generate(**inputs, max_new_tokens=3, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True)
        return torch.stack(out.scores, dim=1)

    separate = {task: scores(task) for task in ("a", "b")}
    assert not torch.allclose(separate["a"], separate["b"])
    mixed = scores(["b", "a"])
    assert torch.allclose(mixed[0], separate["b"][0], atol=1e-6)
    assert torch.allclose(mixed[1], separate["a"][1], atol=1e-6)
    # Outside a forward pass (e.g. reading one layer's weight) a per-example list names no single task.
    from propetl_adapters.methods.adapter import MaskedLinear
    linear = next(m for m in model.modules() if isinstance(m, MaskedLinear))
    with pytest.raises(TaskRoutingError, match="name one task"), active_task(["a", "b"]):
        linear.effective_weight_and_bias()
