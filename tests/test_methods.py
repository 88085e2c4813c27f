"""One suite for the three variants (and BERT, RoBERTa, T5): modules, sharing, masks, training signal."""

import adapters
import pytest
import torch
from transformers import BertForSequenceClassification, T5ForConditionalGeneration

from propetl_adapters import active_task
from propetl_adapters.masks import TensorMask
from propetl_adapters.serialization import adapter_masks
from tests.conftest import VARIANTS, build_adapter_model, model_inputs, model_output, tiny_config


def _learned_masks(model, name="task"):
    return list(adapter_masks(model, name).values())


def test_prototype_is_held_once_and_each_layer_has_its_own_scores(arch, variant):
    model = build_adapter_model(arch, VARIANTS[variant])
    prototype = model.base_model.shared_parameters["task"]
    proto_ids = {id(p) for p in prototype.values()}
    owners = [n for n, p in model.named_parameters(remove_duplicate=False) if id(p) in proto_ids]
    # Registered only under shared_parameters, never under a layer.
    assert owners and all(".shared_parameters.task." in "." + n for n in owners)
    masks = _learned_masks(model)
    n_layers = {"bert": 3, "roberta": 3, "t5": 4}[arch]
    per_layer = {"proadapter": 2, "prolora": 4, "proprefix": 1}[variant]  # ProPrefix: one joint [P_k | P_v] mask
    if arch == "t5" and variant != "proadapter":
        n_layers = 6  # encoder self, decoder self and decoder cross attention
    assert len(masks) == n_layers * per_layer
    assert len({id(m.scores) for m in masks}) == len(masks)


def test_adapter_summary_counts_the_prototype_once(variant):
    model = build_adapter_model("bert", VARIANTS[variant])
    row = model.adapter_summary(as_dict=True)[0]
    prototype = sum(p.numel() for p in model.base_model.shared_parameters["task"].values())
    scores = sum(m.scores.numel() for m in _learned_masks(model))
    assert row["#param"] == prototype + scores


def test_forward_backward_reaches_prototype_and_every_score(arch, variant):
    model = build_adapter_model(arch, VARIANTS[variant])
    with torch.no_grad():  # LoRA starts with B = 0, which makes every score gradient 0 at step one
        for param in model.base_model.shared_parameters["task"].values():
            param.normal_()
    inputs = model_inputs(arch)
    output = model_output(model, inputs)
    (output.float() ** 2).mean().backward()
    for name, param in model.base_model.shared_parameters["task"].items():
        assert param.grad is not None, name
    grads = [m.scores.grad for m in _learned_masks(model)]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def _score_gradients(model, arch):
    model.zero_grad()
    (model_output(model, model_inputs(arch)).float() ** 2).mean().backward()
    # Task b's masks are not in the graph when task a runs: their gradient stays None, counted as 0.
    return [torch.zeros_like(m.scores) if m.scores.grad is None else m.scores.grad.clone() for m in _learned_masks(model)]


@pytest.mark.parametrize("setting", ["", ",shared=False", ",tasks=a|b"])
def test_score_gradients_follow_the_sign_of_the_score(arch, variant, setting):
    # Masks rank |s|, so negating every score keeps every mask and must negate every score gradient
    # (dL/ds = sign(s) dL/dm). Covers layer masks, the only-mask ablation and hybrid layer/task masks.
    if setting.startswith(",tasks") and variant == "proprefix":
        pytest.skip("ProPrefix has no multi-task form")
    model = build_adapter_model(arch, VARIANTS[variant][:-1] + setting + "]")
    model.eval()  # no dropout: both passes must see the same network
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and "scores" not in name:
                param.normal_(std=0.5)  # LoRA's zero B would give every score a zero gradient
    with active_task("a"):
        before = _score_gradients(model, arch)
        with torch.no_grad():
            for mask in _learned_masks(model):
                mask.scores.neg_()
        after = _score_gradients(model, arch)
    assert sum(float(g.abs().sum()) for g in before) > 0
    for grad_before, grad_after in zip(before, after):
        assert torch.allclose(grad_after, -grad_before, atol=1e-6)


def test_changing_the_prototype_changes_every_layer(variant):
    model = build_adapter_model("bert", VARIANTS[variant])
    model.eval()
    captured = {}

    def record(name):
        return lambda module, args, output: captured.__setitem__(name, output[0].detach().clone())

    hooks = [layer.register_forward_hook(record(i)) for i, layer in enumerate(model.bert.encoder.layer)]
    inputs = model_inputs("bert")
    with torch.no_grad():
        for param in model.base_model.shared_parameters["task"].values():
            param.normal_()
        model(**inputs)
        before = dict(captured)
        for param in model.base_model.shared_parameters["task"].values():
            param.mul_(2.0).add_(0.5)
        model(**inputs)
    for hook in hooks:
        hook.remove()
    for i in before:
        assert not torch.allclose(before[i], captured[i]), f"layer {i} ignored the prototype change"


def test_layer_masks_differ_after_a_few_training_steps(variant):
    model = build_adapter_model("bert", VARIANTS[variant])
    masks = _learned_masks(model)
    optimizer = torch.optim.AdamW(
        [{"params": list(model.base_model.shared_parameters["task"].values()), "lr": 1e-2},
         {"params": [m.scores for m in masks], "lr": 5e-2}])
    inputs = model_inputs("bert", batch=8)
    labels = torch.tensor([0, 1] * 4)
    for _ in range(5):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(**inputs).logits, labels)
        loss.backward()
        optimizer.step()
    by_shape = {}
    for mask in masks:
        by_shape.setdefault(mask.shape, []).append(mask.binary())
    for same_shape in by_shape.values():
        for other in same_shape[1:]:
            assert not torch.equal(same_shape[0], other)


@pytest.mark.parametrize("hf_class, arch", [(BertForSequenceClassification, "bert"),
                                            (T5ForConditionalGeneration, "t5")])
def test_works_through_adapters_init(hf_class, arch, variant):
    torch.manual_seed(0)
    model = hf_class(tiny_config(arch))
    adapters.init(model)
    model.add_adapter("task", config=VARIANTS[variant])
    model.train_adapter("task")
    inputs = model_inputs(arch)
    model_output(model, inputs).sum().backward()
    assert all(p.grad is not None for p in model.base_model.shared_parameters["task"].values())


@pytest.mark.parametrize("flag, mode", [("masked=False", "off"), ("random_mask=True", "random")])
def test_ablation_switches(variant, flag, mode):
    config = VARIANTS[variant][:-1] + "," + flag + "]"
    model = build_adapter_model("bert", config)
    masks = [m for m in model.modules() if isinstance(m, TensorMask)]
    assert masks and all(m.mode == mode for m in masks)
    assert _learned_masks(model) == []
    model_output(model, model_inputs("bert")).sum().backward()


def test_only_mask_ablation_gives_every_layer_its_own_module(variant):
    model = build_adapter_model("bert", VARIANTS[variant][:-1] + ",shared=False]")
    assert "task" not in model.base_model.shared_parameters
    owned = [n for n, _ in model.named_parameters() if "unshared_prototype" in n]
    assert owned
    model_output(model, model_inputs("bert")).sum().backward()


def test_proprefix_ranks_key_and_value_prefixes_in_one_top_k():
    # The reference's [l, 2d] mask per layer: with the key half's scores largest, a k = 0.5 mask keeps every
    # key entry and no value entry (two separate top-k masks would keep half of each).
    model = build_adapter_model("bert", "proprefix[prefix_length=6,bottleneck_size=16,density=0.5]")
    group = next(iter(model.base_model.prefix_tuning.prefix_tunings.values()))
    location = next(iter(group.location_masks().values()))
    mask = location.kv_masks[0]
    with torch.no_grad():
        mask.scores.copy_(torch.cat([torch.full((6, 32), 2.0), torch.full((6, 32), -1.0)], dim=1))
    pairs = group.pairs()
    keys, values = group.masked_layer_prefixes(pairs, location, 0)
    assert torch.equal(keys, pairs[:, 0, 0]) and torch.count_nonzero(values) == 0
