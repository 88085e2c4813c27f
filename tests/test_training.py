"""Optimizer groups for masks, exact resumption through AdapterTrainer checkpoints, and the temperature sampling
of one-task batches (SPEC §3)."""

import os

import numpy as np
import pytest
import torch
from adapters import AdapterTrainer
from safetensors.torch import load_file
from transformers import TrainingArguments

from propetl_adapters.serialization import adapter_masks, adapter_tensors
from propetl_adapters.training import (MultiTaskTrainer, ProPETLTrainer, TaskBatchSampler, mask_score_parameters,
                                       propetl_parameter_groups, temperature_probabilities)
from tests.conftest import VARIANTS, build_adapter_model


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, n=48, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(2, 99, (n, 9), generator=generator)
        self.labels = (self.input_ids[:, 0] > 50).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.input_ids[i], "attention_mask": torch.ones(9, dtype=torch.long),
                "labels": self.labels[i]}


def _args(out, **kwargs):
    defaults = dict(output_dir=str(out), per_device_train_batch_size=8, learning_rate=1e-2, weight_decay=0.1,
                    report_to=[], use_cpu=True, seed=7, logging_steps=100, save_strategy="steps", save_steps=3,
                    disable_tqdm=True, dataloader_num_workers=0, lr_scheduler_type="constant")
    defaults.update(kwargs)
    return TrainingArguments(**defaults)


def test_parameter_groups_give_masks_their_own_rate_and_decay():
    model = build_adapter_model("bert", VARIANTS["proadapter"])
    groups = propetl_parameter_groups(model, weight_decay=0.1, mask_learning_rate=3e-3, mask_weight_decay=0.0)
    mask_ids = {id(p) for p in mask_score_parameters(model)}
    mask_groups = [g for g in groups if any(id(p) in mask_ids for p in g["params"])]
    assert mask_groups and all(g["lr"] == 3e-3 and g["weight_decay"] == 0.0 for g in mask_groups)
    assert all(id(p) in mask_ids for g in mask_groups for p in g["params"])
    other = [g for g in groups if g not in mask_groups]
    decayed = [g for g in other if g["weight_decay"] == 0.1]
    assert decayed and all("lr" not in g for g in other)
    counted = sum(len(g["params"]) for g in groups)
    assert counted == len({id(p) for p in model.parameters() if p.requires_grad})


def test_trainer_builds_the_mask_groups(tmp_path):
    model = build_adapter_model("bert", VARIANTS["prolora"])
    trainer = ProPETLTrainer(model=model, args=_args(tmp_path), train_dataset=ToyDataset(),
                             mask_learning_rate=3e-2)
    optimizer = trainer.create_optimizer()
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [1e-2, 3e-2]


@pytest.mark.parametrize("variant, ratio", [("proadapter", 30), ("prolora", 300), ("proprefix", 1)])
def test_trainer_defaults_are_the_reference_mask_rate_and_score_decay(tmp_path, variant, ratio):
    # The reference trains scores at its scripts' mask/prototype lr ratio and in the weight-decay group.
    model = build_adapter_model("bert", VARIANTS[variant])
    trainer = ProPETLTrainer(model=model, args=_args(tmp_path, learning_rate=1e-4), train_dataset=ToyDataset())
    optimizer = trainer.create_optimizer()
    mask_ids = {id(p) for p in mask_score_parameters(model)}
    mask_groups = [g for g in optimizer.param_groups if any(id(p) in mask_ids for p in g["params"])]
    assert mask_groups and all(g["lr"] == pytest.approx(1e-4 * ratio) and g["weight_decay"] == 0.1
                               for g in mask_groups)


def test_adapters_with_different_reference_mask_rates_need_an_explicit_rate(tmp_path):
    model = build_adapter_model("bert", VARIANTS["proadapter"])
    model.add_adapter("other", config=VARIANTS["prolora"])
    model.train_adapter(["task", "other"])
    trainer = ProPETLTrainer(model=model, args=_args(tmp_path), train_dataset=ToyDataset())
    with pytest.raises(ValueError, match="pass mask_learning_rate explicitly"):
        trainer.create_optimizer()


@pytest.mark.parametrize("trainer_class", [AdapterTrainer, ProPETLTrainer])
def test_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path, variant, trainer_class):
    def final_state(out, max_steps, resume=None):
        model = build_adapter_model("bert", VARIANTS[variant], seed=3)
        trainer = trainer_class(model=model, args=_args(out, max_steps=max_steps), train_dataset=ToyDataset())
        trainer.train(resume_from_checkpoint=resume)
        return {k: v.detach().clone() for k, v in adapter_tensors(model, "task").items()}

    straight = final_state(tmp_path / "straight", 6)
    final_state(tmp_path / "interrupted", 3)
    checkpoint = tmp_path / "interrupted" / "checkpoint-3"
    saved = load_file(str(checkpoint / "task" / "adapter.safetensors")) \
        if os.path.exists(checkpoint / "task" / "adapter.safetensors") else torch.load(checkpoint / "task" / "pytorch_adapter.bin")
    assert any(k.endswith(".scores") for k in saved), "checkpoints must keep float scores"
    resumed = final_state(tmp_path / "interrupted", 6, resume=str(checkpoint))
    assert set(resumed) == set(straight)
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key


def test_load_best_model_at_end_restores_the_best_checkpoint(tmp_path):
    model = build_adapter_model("bert", VARIANTS["proadapter"], seed=5)
    args = _args(tmp_path, max_steps=6, eval_strategy="steps", eval_steps=3, load_best_model_at_end=True,
                 metric_for_best_model="loss", greater_is_better=False, save_total_limit=5)
    trainer = ProPETLTrainer(model=model, args=args, train_dataset=ToyDataset(), eval_dataset=ToyDataset(16, seed=1),
                             mask_learning_rate=5e-2)
    trainer.train()
    best = trainer.state.best_model_checkpoint
    assert best is not None
    reference = build_adapter_model("bert", VARIANTS["proadapter"], seed=11)
    reference.load_adapter(os.path.join(best, "task"))
    ours, theirs = adapter_tensors(model, "task"), adapter_tensors(reference, "task")
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert all(torch.equal(m.binary(), adapter_masks(reference, "task")[p].binary())
               for p, m in adapter_masks(model, "task").items())


class ToyTaskDataset(ToyDataset):
    def __init__(self, task_id, n=16, seed=0):
        super().__init__(n, seed)
        self.task_id = task_id

    def __getitem__(self, i):
        return {**super().__getitem__(i), "task_ids": self.task_id}


def _two_head_trainer(tmp_path, train_tasks):
    model = build_adapter_model("bert", "proadapter[reduction_factor=8,tasks=a|b]", head=False)
    for task in ("a", "b"):
        model.add_classification_head(task, num_labels=2)
    data = {t: ToyTaskDataset(i, seed=i) for i, t in enumerate(("a", "b"))}
    return MultiTaskTrainer(model=model, args=_args(tmp_path, remove_unused_columns=False), task_names=["a", "b"],
                            train_datasets={t: data[t] for t in train_tasks}, eval_datasets=data, task_metrics={},
                            heads_per_task=True)


def test_multi_task_trainer_trains_a_subset_of_its_tasks_and_refuses_unknown_ones(tmp_path):
    trainer = _two_head_trainer(tmp_path, ["b"])
    assert list(trainer.train_datasets) == ["b"] and len(trainer.train_dataset) == 16
    assert {batch["task_ids"].unique().item() for batch in trainer.get_train_dataloader()} == {1}
    with pytest.raises(ValueError, match="one or more of the tasks"):
        MultiTaskTrainer(model=trainer.model, args=trainer.args, task_names=["a", "b"],
                         train_datasets={"c": ToyTaskDataset(0)}, eval_datasets={}, task_metrics={})


def test_best_model_brings_back_the_per_task_heads_keeping_their_trainability(tmp_path):
    trainer = _two_head_trainer(tmp_path, ["a", "b"])
    heads = trainer.model.heads
    heads["a"].requires_grad_(False)
    best = str(tmp_path / "checkpoint-1")
    trainer._save(best)
    saved = {name: p.detach().clone() for name, p in heads.named_parameters()}
    with torch.no_grad():
        for parameter in heads.parameters():
            parameter.add_(1.0)
    trainer.state.best_model_checkpoint = best
    trainer._load_best_model()
    assert all(torch.equal(p, saved[name]) for name, p in trainer.model.heads.named_parameters())
    assert not any(p.requires_grad for p in trainer.model.heads["a"].parameters())
    assert all(p.requires_grad for p in trainer.model.heads["b"].parameters())


def test_temperature_probabilities_follow_the_formula():
    sizes = [100, 900]
    assert np.allclose(temperature_probabilities(sizes, 1.0), [0.1, 0.9])
    expected = np.array([0.1, 0.9]) ** 0.1
    assert np.allclose(temperature_probabilities(sizes, 10.0), expected / expected.sum())
    with pytest.raises(ValueError, match="at least one"):
        temperature_probabilities([5, 0], 10.0)


def test_every_batch_holds_one_task_and_tasks_are_drawn_by_probability():
    sizes = [30, 270]
    sampler = TaskBatchSampler(sizes, batch_size=4, temperature=1.0, seed=0)
    offsets = [0, 30]
    counts = [0, 0]
    seen = set()
    for _ in range(40):
        for batch in sampler:
            tasks = {0 if i < 30 else 1 for i in batch}
            assert len(batch) == 4 and len(tasks) == 1
            counts[tasks.pop()] += 1
            seen.update(batch)
    assert len(sampler) == 75
    share = counts[0] / sum(counts)
    assert abs(share - 0.1) < 0.02, share
    assert seen == set(range(300)), "every example is visited"
    assert offsets == sampler.offsets.tolist()


def test_sampler_streams_are_reproducible_and_differ_between_ranks_and_epochs():
    def batches(**kwargs):
        sampler = TaskBatchSampler([10, 10], batch_size=2, seed=3, **kwargs)
        return list(sampler), list(sampler)
    first, second = batches()
    assert first == batches()[0] and first != second
    assert batches(rank=1, world_size=2)[0] != batches(rank=0, world_size=2)[0]
