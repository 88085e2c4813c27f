"""run_glue.py under torchrun: two CPU processes with the gloo backend."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from propetl_adapters.experiments.run_folder import DONE_FILE, RESULTS_FILE

from .conftest import REPO_ROOT, assert_same_tensors, exported_tensors
from .test_glue import one_exact_step_argv, run_argv


@pytest.mark.slow
@pytest.mark.parametrize("config, unused", [("proadapter[random_mask=True,reduction_factor=4]", False),
                                            (None, True)])
def test_torchrun_two_processes_gloo(config, unused, tiny_bert_dir, glue_dir, tmp_path):
    out = tmp_path / "run"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(REPO_ROOT / "run_glue.py"), "--model_name_or_path", tiny_bert_dir, "--task_name", "rte",
           "--glue_dir", glue_dir, "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
           "--eval_strategy", "steps", "--eval_steps", "1", "--max_seq_length", "32", "--use_cpu",
           "--ddp_backend", "gloo", "--report_to", "none", "--disable_tqdm", "true"]
    if config:
        cmd += ["--train_adapter", "--adapter_config", config]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # The probe decides find_unused_parameters: full fine-tuning leaves the pooler without gradient.
    assert f"ddp_find_unused_parameters={unused}" in proc.stderr
    assert (out / DONE_FILE).is_file()
    results = json.loads((out / RESULTS_FILE).read_text(encoding="utf-8"))
    assert results["training"]["world_size"] == 2 and results["training"]["global_step"] == 2
    assert results["training"]["effective_batch_size"] == 8
    assert results["examples"]["test"] == 8 and "accuracy" in results["test"]
    assert results["command_line"] and "run_glue.py" in results["command_line"]


@pytest.mark.slow
def test_two_processes_take_the_same_step_as_one(tiny_roberta_no_dropout_dir, glue_dir, tmp_path):
    """Batch 8 in one process and 2 x 4 in two gloo processes: the same loss and the same weights after the step."""
    one = run_argv(one_exact_step_argv(tiny_roberta_no_dropout_dir, glue_dir, tmp_path / "one", 8, 1))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(REPO_ROOT / "run_glue.py"), "--ddp_backend", "gloo",
           *one_exact_step_argv(tiny_roberta_no_dropout_dir, glue_dir, tmp_path / "two", 4, 1)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    two = json.loads((tmp_path / "two" / RESULTS_FILE).read_text(encoding="utf-8"))
    assert two["training"]["world_size"] == 2 and two["training"]["effective_batch_size"] == 8
    assert_same_tensors(exported_tensors(tmp_path / "one"), exported_tensors(tmp_path / "two"))
    assert two["training"]["train_loss"] == pytest.approx(one["training"]["train_loss"], rel=1e-5)


@pytest.mark.slow
def test_run_seq2seq_multi_task_under_torchrun(tiny_t5_dir, seq2seq_data_dir, tmp_path):
    """Each process draws its own stream of one-task batches; the hybrid masks train under DDP."""
    out = tmp_path / "run"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(REPO_ROOT / "run_seq2seq.py"), "--model_name_or_path", tiny_t5_dir, "--data_dir", seq2seq_data_dir,
           "--tasks", "rte", "stsb", "--adapter_config", "proadapter[reduction_factor=4]", "--output_dir", str(out),
           "--max_steps", "2", "--eval_steps", "2", "--per_device_train_batch_size", "4",
           "--per_device_eval_batch_size", "6", "--max_target_length", "6", "--use_cpu", "--ddp_backend", "gloo",
           "--report_to", "none", "--disable_tqdm", "true"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / RESULTS_FILE).read_text(encoding="utf-8"))
    assert results["training"]["global_step"] == 2 and "test_average" in results["test"]
