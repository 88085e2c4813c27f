"""The multi-task encoder run (one head per task) on a tiny BERT and tiny GLUE TSVs: hybrid ProAdapter,
a shared plain adapter and full fine-tuning, with per-task scores and per-task storage."""

from __future__ import annotations

import json
import os

import pytest
from adapters import AdapterConfig

from propetl_adapters.experiments.run_folder import DONE_FILE, RESULTS_FILE
from propetl_adapters.experiments.multitask_encoder import main

from .conftest import assert_same_tensors, exported_tensors


def argv(model_dir, glue_dir, out, config):
    flags = ["--model_name_or_path", model_dir, "--glue_dir", glue_dir, "--tasks", "rte", "stsb", "cola",
             "--task_train_limits", "cola=16", "--max_steps", "3", "--eval_steps", "3",
             "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "16", "--learning_rate", "1e-2",
             "--max_seq_length", "32", "--output_dir", str(out), "--use_cpu", "--disable_tqdm", "true"]
    return flags + (["--adapter_config", config] if config else [])


@pytest.mark.slow
@pytest.mark.parametrize("config, method", [("proadapter[reduction_factor=4]", "proadapter_hybrid"),
                                            ("hyperformer++[reduction_factor=4]", "hyperformer++"),
                                            ("seq_bn[reduction_factor=4]", "seq_bn"),
                                            (None, "full_finetuning")])
def test_multi_task_encoder_reports_every_task_and_its_storage(tiny_bert_dir, glue_dir, tmp_path, config, method):
    assert main(argv(tiny_bert_dir, glue_dir, tmp_path, config)) == 0
    assert (tmp_path / DONE_FILE).is_file()
    results = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert results["method"] == method
    for key in ("test_rte_accuracy", "test_stsb_pearson", "test_cola_matthews_correlation", "test_average"):
        assert key in results["test"], key
    assert results["examples"]["cola"]["train"] == 16
    assert [point["step"] for point in results["training"]["validation_curve"]] == [3]  # the average, once
    task_bits, shared = results["storage"]["task_bits"], results["storage"]["shared_bits"]
    assert set(task_bits) == {"rte", "stsb", "cola"}
    if method == "proadapter_hybrid":
        assert results["adapter_config_resolved"]["tasks"] == ["rte", "stsb", "cola"]
        assert 0 < task_bits["rte"] < shared
        assert shared + sum(task_bits.values()) == results["storage"]["bls_bits"]
        assert all((tmp_path / "heads" / t / "head_config.json").is_file() for t in ("rte", "stsb", "cola"))
        # the layer and task masks, measured once at the evaluation of step 3 (not once per task)
        assert results["masks"]["masks"] > 0 and [h["step"] for h in results["masks"]["history"]] == [3]
    elif method == "hyperformer++":
        assert task_bits["rte"] == 32 * 64 and shared + sum(task_bits.values()) == results["storage"]["bls_bits"]
        assert results["exported_layer_norms"] == str(tmp_path / "adapter" / "base_layer_norms.safetensors")
        assert os.path.isfile(results["exported_layer_norms"])  # trained with the hypernetwork, so exported
    elif method == "seq_bn":
        assert task_bits["rte"] == 0 and shared == results["storage"]["bls_bits"]
    else:
        assert shared == 0 and task_bits["rte"] == results["storage"]["bls_bits"]


def test_bad_task_limits_are_rejected(tiny_bert_dir, glue_dir, tmp_path, capsys):
    flags = argv(tiny_bert_dir, glue_dir, tmp_path, "proadapter")
    flags[flags.index("cola=16")] = "sst2=10"
    assert main(flags) == 2
    assert "--task_train_limits" in capsys.readouterr().err


@pytest.mark.slow
def test_loss_and_update_do_not_depend_on_gradient_accumulation(tiny_roberta_no_dropout_dir, glue_dir, tmp_path):
    """One plain-SGD step on 8 RTE rows, whole and as 2 x 4 accumulated."""
    for name, batch_size, accumulation in (("whole", 8, 1), ("halves", 4, 2)):
        assert main(["--model_name_or_path", tiny_roberta_no_dropout_dir, "--glue_dir", glue_dir, "--tasks", "rte",
                     "--max_steps", "1", "--eval_steps", "1", "--per_device_train_batch_size", str(batch_size),
                     "--gradient_accumulation_steps", str(accumulation), "--optim", "sgd", "--learning_rate", "0.5",
                     "--weight_decay", "0", "--max_grad_norm", "0", "--max_seq_length", "32",
                     "--adapter_config", "proadapter[reduction_factor=4]", "--output_dir", str(tmp_path / name),
                     "--use_cpu", "--disable_tqdm", "true"]) == 0
    assert_same_tensors(exported_tensors(tmp_path / "whole"), exported_tensors(tmp_path / "halves"))
    losses = [json.loads((tmp_path / name / RESULTS_FILE).read_text())["training"]["train_loss"]
              for name in ("whole", "halves")]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


# ---------------------------------------------------------------------------
# --add_task_to: grow a finished hybrid run by a task (add_task, SPEC §1.3)
# ---------------------------------------------------------------------------

def add_argv(model_dir, glue_dir, out, base, tasks=("cola",), steps="3"):
    flags = argv(model_dir, glue_dir, out, None)
    flags[flags.index("--tasks") + 1:flags.index("--task_train_limits") + 2] = list(tasks)
    flags[flags.index("--max_steps") + 1] = flags[flags.index("--eval_steps") + 1] = steps
    return flags + ["--add_task_to", str(base)]


@pytest.fixture(scope="module")
def hybrid_two_tasks(tiny_bert_dir, glue_dir, tmp_path_factory):
    """A finished hybrid ProAdapter run on RTE and STS-B."""
    out = tmp_path_factory.mktemp("hybrid_rte_stsb")
    flags = argv(tiny_bert_dir, glue_dir, out, "proadapter[reduction_factor=4]")
    flags[flags.index("--tasks") + 1:flags.index("--task_train_limits") + 2] = ["rte", "stsb"]
    assert main(flags) == 0
    return out


def _masks(folder):
    from propetl_adapters.mask_io import MASK_FILE_NAME, read_mask_file
    return read_mask_file(str(folder / "adapter" / MASK_FILE_NAME)).masks


@pytest.mark.slow
def test_added_task_trains_its_mask_and_head_alone_and_old_tasks_score_exactly_as_before(
        tiny_bert_dir, glue_dir, tmp_path, hybrid_two_tasks):
    import torch
    from propetl_adapters.experiments.common import load_adapter_model
    from propetl_adapters.multitask import task_bank

    base, out = hybrid_two_tasks, tmp_path / "add_cola"
    flags = add_argv(tiny_bert_dir, glue_dir, out, base, steps="1")
    flags[flags.index("--max_steps") + 1] = "3"
    assert main(flags) == 0
    recorded = json.loads((base / RESULTS_FILE).read_text())
    results = json.loads((out / RESULTS_FILE).read_text())
    assert results["method"] == "proadapter_hybrid_add_task" and results["added_tasks"] == ["cola"]
    assert results["tasks"] == ["rte", "stsb", "cola"] and results["base_run"] == str(base)
    assert results["adapter_config_resolved"]["tasks"] == ["rte", "stsb", "cola"]
    assert set(results["examples"]) == {"rte", "stsb", "cola"} and set(results["examples"]["rte"]) == {"test"}
    # The old tasks score exactly as the base run recorded: nothing of theirs changed.
    old = results["old_tasks_test"]
    assert old["identical"] is True and old["max_abs_difference"] == 0.0
    for key in ("test_rte_accuracy", "test_stsb_pearson", "test_stsb_score"):
        assert results["test"][key] == recorded["test"][key] == old["recorded_by_base_run"][key]
    assert "test_cola_matthews_correlation" in results["test"]
    # The exported prototype and the base run's masks are bit-identical; the new task only adds its own masks.
    base_tensors, grown_tensors = exported_tensors(base / "adapter"), exported_tensors(out / "adapter")
    assert sorted(base_tensors) == sorted(grown_tensors)
    assert all(torch.equal(value, grown_tensors[name]) for name, value in base_tensors.items())
    base_masks, grown_masks = _masks(base), _masks(out)
    assert all(torch.equal(mask, grown_masks[name]) for name, mask in base_masks.items())
    added = sorted(set(grown_masks) - set(base_masks))
    assert added and all(".task_masks.masks.cola." in name for name in added)
    # Only the trained masks count in the movement: cola's task masks, one per masked prototype tensor.
    assert results["masks"]["masks"] == len(added)
    # Old heads unchanged; every task's head is in heads/, so the folder can be grown again.
    for task in ("rte", "stsb"):
        old_head, new_head = exported_tensors(base / "heads" / task), exported_tensors(out / "heads" / task)
        assert old_head and old_head.keys() == new_head.keys()
        assert all(torch.equal(value, new_head[name]) for name, value in old_head.items())
    assert (out / "heads" / "cola" / "head_config.json").is_file()
    # The new task costs one task mask: 1 bit per entry of each masked prototype tensor.
    model = load_adapter_model(tiny_bert_dir)
    model.load_adapter(str(out / "adapter"), with_head=False, set_active=True)
    bank = task_bank(model, "glue")
    assert bank.tasks == ["rte", "stsb", "cola"]
    one_mask = sum(int(torch.tensor(shape).prod()) for shape in bank.shapes.values())
    assert results["storage"]["task_bits"] == {"rte": one_mask, "stsb": one_mask, "cola": one_mask}
    assert results["trained_parameters"] == one_mask + 32 * 2 + 2  # cola's mask scores, its head (32 -> 2 labels)
    # The new mask learned: its scores moved between the first and the last checkpoint; nothing else did.
    first, last = exported_tensors(out / "checkpoint-1"), exported_tensors(out / "checkpoint-3")
    scores = [name for name in first if ".task_masks.masks.cola." in name and name.endswith(".scores")]
    assert scores and all(not torch.equal(first[name], last[name]) for name in scores)
    trained = [name for name in first if not torch.equal(first[name], last[name])]
    assert set(trained) - set(scores) <= {n for n in first if n.startswith("cola/")}, trained
    assert any(n.startswith("cola/") for n in trained)  # the new head trained too


@pytest.mark.slow
def test_an_interrupted_add_task_run_resumes_with_the_old_parts_still_frozen(tiny_bert_dir, glue_dir, tmp_path,
                                                                           hybrid_two_tasks):
    import torch

    out = tmp_path / "add_cola"
    assert main(add_argv(tiny_bert_dir, glue_dir, out, hybrid_two_tasks, steps="2")) == 0
    (out / DONE_FILE).unlink()
    flags = add_argv(tiny_bert_dir, glue_dir, out, hybrid_two_tasks, steps="2")
    flags[flags.index("--max_steps") + 1] = "4"
    assert main(flags) == 0
    results = json.loads((out / RESULTS_FILE).read_text())
    assert results["training"]["resumed_from_checkpoint"].endswith("checkpoint-2")
    assert results["old_tasks_test"]["identical"] is True
    first, last = exported_tensors(out / "checkpoint-2"), exported_tensors(out / "checkpoint-4")
    moved = {name for name in first if not torch.equal(first[name], last[name])}
    assert moved and all(".task_masks.masks.cola." in n or n.startswith("cola/") for n in moved), moved


@pytest.fixture(scope="module")
def shared_plain_run(tmp_path_factory):
    """A finished run folder of a shared plain adapter (only its record: nothing is trained)."""
    out = tmp_path_factory.mktemp("seq_bn_run")
    (out / RESULTS_FILE).write_text(json.dumps({
        "method": "seq_bn", "adapter_config_resolved": AdapterConfig.load("seq_bn[reduction_factor=4]").to_dict(),
        "arguments": {"MultiTaskArguments": {"split_seed": 42, "max_seq_length": 32}}}))
    (out / DONE_FILE).write_text("finished\n")
    return out


def test_add_task_to_rejects_what_it_cannot_grow(tiny_bert_dir, glue_dir, tmp_path, shared_plain_run, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    hybrid = tmp_path / "hybrid"
    hybrid.mkdir()
    (hybrid / RESULTS_FILE).write_text(json.dumps({
        "method": "proadapter_hybrid",
        "adapter_config_resolved": AdapterConfig.load("proadapter[reduction_factor=4]").replace(
            tasks=["rte", "stsb"]).to_dict(),
        "arguments": {"MultiTaskArguments": {"split_seed": 42, "max_seq_length": 32}}}))
    (hybrid / DONE_FILE).write_text("finished\n")
    cases = [(add_argv(tiny_bert_dir, glue_dir, tmp_path / "a", unfinished), "not a finished run"),
             (add_argv(tiny_bert_dir, glue_dir, tmp_path / "b", shared_plain_run), "expected a hybrid ProPETL"),
             (add_argv(tiny_bert_dir, glue_dir, tmp_path / "c", hybrid, tasks=("cola", "stsb")),
              "--tasks ['stsb']: already tasks of the run"),
             (add_argv(tiny_bert_dir, glue_dir, tmp_path / "d", hybrid) + ["--adapter_config", "proadapter"],
              "pass neither --adapter_config"),
             (add_argv(tiny_bert_dir, glue_dir, tmp_path / "e", hybrid) + ["--adapter_per_task"],
              "pass neither --adapter_config"),
             (add_argv(tiny_bert_dir, glue_dir, tmp_path / "f", hybrid) + ["--split_seed", "7"],
              "--split_seed 7: the run in"),
             (add_argv(tiny_bert_dir, glue_dir, tmp_path / "g", hybrid), "adapter not found")]
    for flags, message in cases:
        assert main(flags) == 2, message
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_growing_by_several_tasks_leaves_exactly_their_masks_and_heads_trainable(tiny_bert_dir, hybrid_two_tasks):
    from propetl_adapters.data.glue import get_task
    from propetl_adapters.experiments.common import load_adapter_model
    from propetl_adapters.experiments.multitask_encoder import MultiTaskArguments, base_run, grow_adapter

    args = MultiTaskArguments(model_name_or_path=tiny_bert_dir, tasks=["cola", "mrpc"], max_seq_length=32,
                              add_task_to=str(hybrid_two_tasks))
    model = load_adapter_model(tiny_bert_dir)
    config = grow_adapter(model, base_run(args), {t: get_task(t) for t in args.tasks}, head_layers=1)
    assert config.tasks == ["rte", "stsb", "cola", "mrpc"]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    new_parts = {name for name, _ in model.named_parameters()
                 if any(f".task_masks.masks.{t}." in name or name.startswith(f"heads.{t}.") for t in args.tasks)}
    assert trainable == new_parts and any(n.startswith("heads.cola.") for n in trainable)
    assert any(".task_masks.masks.cola." in n for n in trainable)
