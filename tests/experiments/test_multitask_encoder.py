"""The multi-task encoder run (one head per task) on a tiny BERT and tiny GLUE TSVs: hybrid ProAdapter,
a shared plain adapter and full fine-tuning, with per-task scores and per-task storage."""

from __future__ import annotations

import json
import os

import pytest

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
    task_bits, shared = results["storage"]["task_bits"], results["storage"]["shared_bits"]
    assert set(task_bits) == {"rte", "stsb", "cola"}
    if method == "proadapter_hybrid":
        assert results["adapter_config_resolved"]["tasks"] == ["rte", "stsb", "cola"]
        assert 0 < task_bits["rte"] < shared
        assert shared + sum(task_bits.values()) == results["storage"]["bls_bits"]
        assert all((tmp_path / "heads" / t / "head_config.json").is_file() for t in ("rte", "stsb", "cola"))
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
