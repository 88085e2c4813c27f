"""scripts/multitask_table.py on synthetic multi-task and single-task result folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def write(folder, results):
    folder.mkdir(parents=True)
    (folder / "all_results.json").write_text(json.dumps(results))


def test_table_rows_scores_averages_and_storage(tmp_path):
    write(tmp_path / "mt", {"tasks": ["rte", "stsb"], "method": "proadapter_hybrid",
                            "test": {"test_rte_score": 60.0, "test_stsb_score": 80.0},
                            "storage": {"bls_bits": 3200, "task_bits": {"rte": 64, "stsb": 64},
                                        "base_model_parameters": 1000}})
    write(tmp_path / "rte", {"metric_names": ["accuracy"], "test": {"accuracy": 50.0}, "storage": {"bls_bits": 1600}})
    out = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "multitask_table.py"), "--multitask",
                          str(tmp_path / "mt"), "--single", f"rte={tmp_path / 'rte'}"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("| method | rte | stsb | average of all | average of rte |")
    assert out[2] == "| multi-task proadapter_hybrid | 60.00 | 80.00 | 70.00 | 60.00 | 3,200 | 10.000 % | 64 |"
    assert out[3] == "| single-task | 50.00 | – | 50.00 | 50.00 | 1,600 | 5.000 % | 1,600 |"


def test_a_hold_out_pair_is_labelled_by_the_task_left_out_and_the_task_added(tmp_path):
    storage = {"bls_bits": 3200, "task_bits": {"rte": 64}, "base_model_parameters": 1000}
    write(tmp_path / "without", {"tasks": ["rte"], "method": "proadapter_hybrid",
                                 "test": {"test_rte_score": 55.0}, "storage": storage})
    write(tmp_path / "added", {"tasks": ["rte", "stsb"], "method": "proadapter_hybrid_add_task",
                               "added_tasks": ["stsb"], "base_tasks": ["rte"],
                               "test": {"test_rte_score": 55.0, "test_stsb_score": 81.0}, "storage": storage})
    out = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "multitask_table.py"), "--multitask",
                          str(tmp_path / "without"), str(tmp_path / "added")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("| method | rte | stsb | average of all | average of rte |")  # every row's tasks
    assert out[2].startswith("| multi-task proadapter_hybrid without stsb | 55.00 | – | 55.00 | 55.00 |")
    assert out[3].startswith("| multi-task proadapter_hybrid_add_task: stsb added to the rte run (its mask and head "
                             "alone) | 55.00 | 81.00 | 68.00 | 55.00 |")
