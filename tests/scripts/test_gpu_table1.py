"""scripts/gpu_table1.sh (benchmarks/parallel_grid.py): the job list, a tiny parallel run, resuming, the deadline."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from propetl_adapters.experiments.run_folder import ARGUMENTS_FILE, DONE_FILE, RESULTS_FILE
from propetl_adapters.reports.table import collect_runs

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ("PYTHON", "TASKS", "PAIRS", "SEEDS", "EPOCHS", "OUTPUT_DIR", "MODEL", "GLUE_DIR", "DEVICE", "BF16", "JOBS",
            "THREADS", "DEADLINE_S", "COPY_TO", "ARCHIVE", "EXTRA_ARGS", "DRY_RUN")


def grid(tmp_path, **env) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    glue = tmp_path / "glue"
    glue.mkdir(exist_ok=True)
    full_env.update({"OUTPUT_DIR": str(tmp_path / "out"), "MODEL": "/models/minilm", "GLUE_DIR": str(glue),
                     "DEVICE": "cpu", "OMP_NUM_THREADS": "1", **env})
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "gpu_table1.sh")], capture_output=True, text=True,
                          env=full_env)


def commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def label(cmd: list[str]) -> tuple:
    return flag(cmd, "--task_name"), flag(cmd, "--adapter_config").split("[")[0], flag(cmd, "--seed")


def test_dry_run_lists_the_issue_grid_in_priority_order_with_the_evidence_protocol(tmp_path):
    proc = grid(tmp_path, DRY_RUN="1")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "out").exists()  # a dry run creates nothing
    cmds = commands(proc.stdout)
    runs = [label(c) for c in cmds]
    # STS-B/MRPC adapter and LoRA pairs for all seeds, then CoLA, RTE, SST-2, and the prefix pairs last
    first = [(t, m, s) for s in ("42", "43", "44") for t in ("stsb", "mrpc")
             for m in ("proadapter", "seq_bn", "prolora", "lora")]
    assert runs[:24] == first
    assert [t for t, _, _ in runs[24:]] == ["cola"] * 6 + ["rte"] * 12 + ["sst2"] * 6 + \
        [t for _ in range(3) for t in ("stsb", "stsb", "mrpc", "mrpc", "rte", "rte")]
    assert {m for _, m, _ in runs[54:]} == {"proprefix", "prefix_tuning"} and len(runs) == 66
    assert {m for t, m, _ in runs if t in ("cola", "sst2")} == {"proadapter", "seq_bn"}
    assert len(set(runs)) == len(runs)
    for cmd in cmds:
        task, method, seed = label(cmd)
        assert cmd[1] == str(REPO_ROOT / "run_glue.py") and flag(cmd, "--model_name_or_path") == "/models/minilm"
        assert flag(cmd, "--output_dir") == str(tmp_path / "out" / task / method / f"seed{seed}")
        assert flag(cmd, "--num_train_epochs") == ("10" if task == "sst2" else "20")
        assert ("--max_train_samples" in cmd) == (task == "sst2")
        if task == "sst2":
            assert flag(cmd, "--max_train_samples") == "10000"
        assert flag(cmd, "--mask_learning_rate") == ("1e-2" if method.startswith("pro") else "1e-3")
        for name, value in (("--learning_rate", "1e-3"), ("--weight_decay", "0.1"), ("--warmup_ratio", "0.1"),
                            ("--per_device_train_batch_size", "32"), ("--per_device_eval_batch_size", "64"),
                            ("--max_seq_length", "128"), ("--eval_strategy", "epoch"), ("--save_strategy", "epoch"),
                            ("--head_layers", "1"), ("--glue_dir", str(tmp_path / "glue"))):
            assert flag(cmd, name) == value, name
        assert {"--train_adapter", "--delete_checkpoints", "--bf16", "--use_cpu"} <= set(cmd)
    configs = {label(c)[1]: flag(c, "--adapter_config") for c in cmds}
    assert configs == {"proadapter": "proadapter[reduction_factor=12]", "seq_bn": "seq_bn[reduction_factor=12]",
                       "prolora": "prolora[r=32,alpha=48]", "lora": "lora[r=32,alpha=48]",
                       "proprefix": "proprefix[prefix_length=64,bottleneck_size=512]",
                       "prefix_tuning": "prefix_tuning[prefix_length=64,bottleneck_size=512]"}


def test_dry_run_selects_tasks_pairs_seeds_epochs_and_skips_finished_runs(tmp_path):
    done = tmp_path / "out" / "mrpc" / "prolora" / "seed7"
    done.mkdir(parents=True)
    (done / DONE_FILE).write_text("finished\n")
    proc = grid(tmp_path, DRY_RUN="1", TASKS="mrpc sst2", PAIRS="lora adapter", SEEDS="7", EPOCHS="0.5",
                DEVICE="cuda", EXTRA_ARGS="--logging_steps 5")
    assert proc.returncode == 0, proc.stderr
    assert "[skip] mrpc/prolora/seed7 (DONE)" in proc.stdout and "6 job(s), 1 already DONE" in proc.stdout
    cmds = commands(proc.stdout)
    assert [label(c) for c in cmds] == [("mrpc", "proadapter", "7"), ("mrpc", "seq_bn", "7"), ("mrpc", "lora", "7"),
                                        ("sst2", "proadapter", "7"), ("sst2", "seq_bn", "7")]
    for cmd in cmds:
        assert flag(cmd, "--num_train_epochs") == "0.5" and "--bf16" in cmd and "--use_cpu" not in cmd
        assert cmd[-2:] == ["--logging_steps", "5"]
    assert "8 at a time" in proc.stdout  # a GPU's default number of workers


@pytest.mark.parametrize("env, message", [
    ({"TASKS": "stsb qqp"}, "TASKS: unknown value 'qqp'"),
    ({"PAIRS": ""}, "PAIRS is empty"),
    ({"SEEDS": "42 x"}, "SEEDS must be non-negative integers"),
    ({"EPOCHS": "-1"}, "EPOCHS must be a positive number, got '-1'"),
    ({"JOBS": "two"}, "JOBS must be a positive integer, got 'two'"),
    ({"DEADLINE_S": "0"}, "DEADLINE_S must be a positive number"),
    ({"GLUE_DIR": "/nonexistent/glue"}, "GLUE_DIR=/nonexistent/glue is not a folder"),
])
def test_bad_settings_stop_with_a_clear_message(env, message, tmp_path, monkeypatch, capsys):
    # In process (the script's own path is covered by the dry-run tests): each subprocess would import torch again.
    from benchmarks.parallel_grid import main

    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "glue").mkdir()
    settings = {"OUTPUT_DIR": str(tmp_path / "out"), "MODEL": "/models/minilm", "GLUE_DIR": str(tmp_path / "glue"),
                "DEVICE": "cpu", "DRY_RUN": "1", **env}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("gpu_table1: error:") and message in stderr


@pytest.mark.slow
def test_two_parallel_tiny_runs_write_records_copies_and_a_summary_then_are_skipped(tiny_bert_dir, glue_dir,
                                                                                    tmp_path):
    settings = dict(MODEL=tiny_bert_dir, GLUE_DIR=glue_dir, TASKS="stsb", PAIRS="adapter", SEEDS="42", EPOCHS="1",
                    JOBS="2", COPY_TO=str(tmp_path / "copy"), ARCHIVE=str(tmp_path / "back" / "runs.tar.gz"))
    proc = grid(tmp_path, **settings)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = ["stsb/proadapter/seed42", "stsb/seq_bn/seed42"]
    starts = [line for line in proc.stdout.splitlines() if "] start " in line]
    assert len(starts) == 2 and "running 2" in starts[1]  # both ran at once
    summary = json.loads((tmp_path / "out" / "gpu_table1_summary.json").read_text())
    assert summary["device"]["name"] == "cpu" and summary["counts"] == {"finished": 2}
    assert [j["run"] for j in summary["jobs"]] == runs
    for job in summary["jobs"]:
        assert job["returncode"] == 0 and job["wall_s"] > 0 and "pearson" in job["test"]
        assert "--use_cpu" in job["command"] and job["command"].endswith("--bf16 --use_cpu")
        assert (tmp_path / "out" / job["run"] / DONE_FILE).is_file()
        for name in (DONE_FILE, RESULTS_FILE, ARGUMENTS_FILE):
            assert (tmp_path / "copy" / job["run"] / name).is_file()
        assert not any(p.is_dir() for p in (tmp_path / "copy" / job["run"]).iterdir())  # no adapter, checkpoint
    assert (tmp_path / "copy" / "gpu_table1_summary.md").read_text().count("| finished |") == 2
    with tarfile.open(tmp_path / "back" / "runs.tar.gz") as tar:
        assert sorted(tar.getnames()) == sorted([f"{r}/{n}" for r in runs for n in (DONE_FILE, RESULTS_FILE,
                                                                                      ARGUMENTS_FILE)]
                                                + ["gpu_table1_summary.json", "gpu_table1_summary.md"])
    records, _ = collect_runs(str(tmp_path / "copy"))  # what propetl-table --runs reads
    assert sorted(r["run"] for r in records) == runs

    again = grid(tmp_path, **settings)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 job(s), 2 already DONE" in again.stdout and "] start " not in again.stdout
    assert json.loads((tmp_path / "out" / "gpu_table1_summary.json").read_text())["counts"] == {"skipped": 2}


def test_no_job_starts_after_the_deadline_and_the_summary_is_still_written(tmp_path):
    # An interpreter that runs the grid itself but makes every training job a 60 s sleep: with a 3 s deadline the
    # first job is stopped (SIGTERM to its process group) and the second never starts.
    python = tmp_path / "python"
    python.write_text(f'#!/usr/bin/env bash\n[[ "$1" == -m ]] && exec {shlex.quote(sys.executable)} "$@"\n'
                      'exec sleep 60\n')
    python.chmod(0o755)
    proc = grid(tmp_path, PYTHON=str(python), TASKS="rte", PAIRS="adapter", SEEDS="42", JOBS="1", DEADLINE_S="3",
                ARCHIVE=str(tmp_path / "back" / "runs.tar.gz"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stopping 1 running job(s)" in proc.stdout and "1 job(s) not started" in proc.stdout
    summary = json.loads((tmp_path / "out" / "gpu_table1_summary.json").read_text())
    assert [(j["run"], j["status"]) for j in summary["jobs"]] == [("rte/proadapter/seed42", "stopped"),
                                                                    ("rte/seq_bn/seed42", "not started")]
    assert summary["jobs"][0]["returncode"] == -signal.SIGTERM and summary["jobs"][1]["started_s"] is None
    with tarfile.open(tmp_path / "back" / "runs.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["gpu_table1_summary.json", "gpu_table1_summary.md"]
