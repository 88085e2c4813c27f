"""ProLoRA and hybrid multi-task ProLoRA on decoder language models (Llama, Mistral, GPT-2 with its fused c_attn)."""

import contextlib
import copy

import adapters
import pytest
import torch
from adapters import AutoAdapterModel
from transformers import AutoModelForCausalLM

from conftest import DECODER_CONFIGS, tiny_config
from propetl_adapters import active_task, freeze_masks
from propetl_adapters.multitask import TaskRoutingError

# 'bert' init gives B != 0, so the masks matter from the first step; densities are explicit (defaults may change).
QV = "prolora[r=4,alpha=6,density=0.5,init_weights='bert']"
ALL = ("prolora[r=4,alpha=6,density=0.5,init_weights='bert',attn_matrices=['q','k','v'],intermediate_lora=True,"
       "output_lora=True]")
HYBRID = "prolora[r=4,alpha=6,density=0.3,task_density=0.3,init_weights='bert',tasks=a|b|c]"
TASKS = ["a", "b", "c"]
ADAPTED_LEAVES = {
    ("llama", QV): {"q_proj", "v_proj"},
    ("llama", ALL): {"q_proj", "k_proj", "v_proj", "up_proj", "down_proj"},
    ("gpt2", QV): {"c_attn"},
    ("gpt2", ALL): {"c_attn", "c_fc", "c_proj"},
}
ADAPTED_LEAVES.update({("mistral", c): ADAPTED_LEAVES[("llama", c)] for c in (QV, ALL)})


@pytest.fixture(params=list(DECODER_CONFIGS))
def decoder(request):
    return request.param


def adapter_model(arch: str, config: str, seed: int = 0):
    torch.manual_seed(seed)
    model = AutoAdapterModel.from_config(tiny_config(arch))
    model.add_adapter("lm", config=config)
    model.add_causal_lm_head("lm")
    model.train_adapter("lm")
    return model


def init_model(arch: str, config: str, seed: int = 0):
    """A transformers causal LM made adaptable with adapters.init."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch))
    adapters.init(model)
    model.add_adapter("lm", config=config)
    model.train_adapter("lm")
    return model


def is_adapter_tensor(name: str) -> bool:
    return ".loras." in name or ".shared_parameters." in f".{name}"


@torch.no_grad()
def perturb_adapter(model, scale: float = 0.3):
    for name, param in model.named_parameters():
        if is_adapter_tensor(name):
            param.add_(torch.randn_like(param) * scale)


def tokens(batch: int = 2, length: int = 6, seed: int = 7) -> torch.Tensor:
    return torch.randint(2, 99, (batch, length), generator=torch.Generator().manual_seed(seed))


def task_context(task):
    return active_task(task) if task else contextlib.nullcontext()


def logits(model, input_ids):
    with torch.no_grad():
        return model(input_ids=input_ids).logits


@pytest.mark.parametrize("config", [QV, ALL], ids=["q_v", "all"])
def test_target_modules_follow_the_config(decoder, config):
    model = adapter_model(decoder, config)
    adapted = {path.rsplit(".", 1)[-1] for path, module in model.named_modules()
               if "lm" in getattr(module, "loras", {})}
    assert adapted == ADAPTED_LEAVES[(decoder, config)]
    # One prototype pair per adapted matrix kind, shared by all layers.
    prototype = model.base_model.shared_parameters["lm"]
    assert len([k for k in prototype.keys() if k.endswith("_lora_A")]) == len(ADAPTED_LEAVES[(decoder, config)])
    if decoder == "gpt2":
        c_attn = model.base_model.h[0].attn.c_attn.loras["lm"]
        assert c_attn.enable_lora == ([True, False, True] if config == QV else [True, True, True])


@pytest.mark.parametrize("build", [adapter_model, init_model], ids=["AutoAdapterModel", "adapters.init"])
@pytest.mark.parametrize("config", [ALL, HYBRID], ids=["all", "hybrid"])
def test_training_steps_lower_the_loss_and_touch_only_the_adapter(decoder, build, config):
    model = build(decoder, config)
    trainable = {n: p for n, p in model.named_parameters() if is_adapter_tensor(n)}
    assert trainable and all(p.requires_grad for p in trainable.values())
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    optimizer = torch.optim.Adam(trainable.values(), lr=1e-2)
    input_ids = tokens(batch=4)
    task_ids = torch.tensor([0, 1, 2, 0])
    extra = {"task_ids": task_ids} if config == HYBRID else {}
    losses = []
    for _ in range(8):
        loss = model(input_ids=input_ids, labels=input_ids, **extra).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(not torch.equal(before[n], p) for n, p in trainable.items() if n.endswith(("lora_A", "lora_B")))
    assert any(not torch.equal(before[n], p) for n, p in trainable.items() if n.endswith("scores"))
    assert all(torch.equal(frozen[n], p) for n, p in model.named_parameters() if n in frozen)


@pytest.mark.parametrize("config", [QV, ALL, HYBRID], ids=["q_v", "all", "hybrid"])
def test_save_and_load_into_a_fresh_model_is_exact(decoder, config, tmp_path):
    model = adapter_model(decoder, config)
    perturb_adapter(model)
    model.eval()
    input_ids = tokens()
    runs = TASKS if config == HYBRID else [None]

    def outputs(m):
        result = {}
        for task in runs:
            with task_context(task):
                result[task] = logits(m, input_ids)
        return result

    expected = outputs(model)
    model.save_adapter(str(tmp_path), "lm")
    torch.manual_seed(0)
    fresh = AutoAdapterModel.from_config(tiny_config(decoder))
    name = fresh.load_adapter(str(tmp_path))
    fresh.set_active_adapters(name)
    fresh.eval()
    got = outputs(fresh)
    assert all(torch.equal(got[t], expected[t]) for t in runs)


@pytest.mark.parametrize("config", [ALL, HYBRID], ids=["all", "hybrid"])
def test_freeze_masks_is_exact_and_merge_matches(decoder, config):
    model = adapter_model(decoder, config)
    perturb_adapter(model)
    model.eval()
    input_ids = tokens()
    for task in TASKS if config == HYBRID else [None]:
        with task_context(task):
            expected = logits(model, input_ids)
        frozen = freeze_masks(copy.deepcopy(model), "lm", task=task)
        assert torch.equal(logits(frozen, input_ids), expected)
        frozen.merge_adapter("lm")
        assert torch.allclose(logits(frozen, input_ids), expected, atol=1e-5)


def generate(model, input_ids):
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=4,
                             do_sample=False, output_scores=True, return_dict_in_generate=True, pad_token_id=0)
    return out.sequences, torch.stack(out.scores, dim=1)


def test_generation_is_routed_by_active_task(decoder):
    model = adapter_model(decoder, HYBRID)
    perturb_adapter(model, scale=1.0)
    model.eval()
    input_ids = tokens(batch=3)
    per_task = {}
    for task in TASKS:
        with active_task(task):
            per_task[task] = generate(model, input_ids)
        sequences, scores = generate(freeze_masks(copy.deepcopy(model), "lm", task=task), input_ids)
        assert torch.equal(per_task[task][0], sequences)
        assert torch.allclose(per_task[task][1], scores, atol=1e-5)
    assert not torch.allclose(per_task["a"][1], per_task["b"][1]), "tasks should generate with different masks"
    order = ["c", "a", "b"]
    with active_task(order):  # one task per example, kept through generation's cache steps
        mixed_sequences, mixed_scores = generate(model, input_ids)
    for row, task in enumerate(order):
        assert torch.equal(mixed_sequences[row], per_task[task][0][row])
        assert torch.allclose(mixed_scores[row], per_task[task][1][row], atol=1e-5)
    with pytest.raises(TaskRoutingError, match="no task is set"):
        generate(model, input_ids)
