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
    (folder / "DONE").write_text("")


def table(*args, check=True):
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "multitask_table.py"), *map(str, args)],
                          capture_output=True, text=True, check=check)


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
    assert out[2] == "| multi-task proadapter_hybrid | 60.00 | 80.00 | 70.00 | 60.00 | 3,200 | 10.000 % | 64 | 1 |"
    assert out[3] == "| single-task | 50.00 | – | 50.00 | 50.00 | 1,600 | 5.000 % | 1,600 | 1 |"


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


def test_a_folder_of_seeds_is_one_row_with_mean_and_std_per_task(tmp_path):
    storage = {"bls_bits": 3200, "task_bits": {"rte": 64, "stsb": 64}, "base_model_parameters": 1000}
    for seed, (rte, stsb) in {42: (60.0, 80.0), 43: (62.0, 84.0)}.items():
        write(tmp_path / "hybrid" / f"seed{seed}", {"tasks": ["rte", "stsb"], "method": "proadapter_hybrid",
                                                   "test": {"test_rte_score": rte, "test_stsb_score": stsb},
                                                   "storage": storage})
    (tmp_path / "hybrid" / "seed44").mkdir()  # a started seed (no all_results.json, no DONE) is left out
    (tmp_path / "hybrid" / "seed45").mkdir()  # an unfinished seed (results but no DONE) is left out, with a note
    (tmp_path / "hybrid" / "seed45" / "all_results.json").write_text("{}")
    for seed, accuracy in {42: 50.0, 43: 54.0, 44: 52.0}.items():
        write(tmp_path / "rte" / f"seed{seed}", {"metric_names": ["accuracy"], "test": {"accuracy": accuracy},
                                                 "storage": {"bls_bits": 1600}})
    write(tmp_path / "stsb" / "seed42", {"metric_names": ["pearson", "spearmanr"],
                                         "test": {"pearson": 80.0, "spearmanr": 82.0}, "storage": {"bls_bits": 1600}})
    out = table("--multitask", tmp_path / "hybrid", "--single", f"rte={tmp_path / 'rte'}",
                f"stsb={tmp_path / 'stsb'}").stdout.splitlines()
    assert out[2] == ("| multi-task proadapter_hybrid | 61.00 ± 1.41 | 82.00 ± 2.83 | 71.50 | 71.50 | 3,200 | 10.000 % "
                      "| 64 | 2 |")
    assert out[3] == "| single-task | 52.00 ± 2.00 | 81.00 | 66.50 | 66.50 | 3,200 | 10.000 % | 1,600 | 1–3 |"
    assert out[4:] == ["", f"- skipped {tmp_path / 'hybrid' / 'seed45'} (no DONE marker: unfinished)"]


def test_seeds_that_differ_in_tasks_or_storage_and_empty_folders_are_refused(tmp_path):
    storage = {"bls_bits": 3200, "task_bits": {"rte": 64}, "base_model_parameters": 1000}
    write(tmp_path / "mixed" / "seed42", {"tasks": ["rte"], "method": "m", "test": {"test_rte_score": 1.0},
                                          "storage": storage})
    write(tmp_path / "mixed" / "seed43", {"tasks": ["rte", "stsb"], "method": "m", "storage": storage,
                                          "test": {"test_rte_score": 1.0, "test_stsb_score": 1.0}})
    for seed, bits in {42: 1600, 43: 3200}.items():
        write(tmp_path / "sizes" / f"seed{seed}", {"metric_names": ["accuracy"], "test": {"accuracy": 1.0},
                                                   "storage": {"bls_bits": bits}})
    (tmp_path / "empty").mkdir()
    for args, message in ((("--multitask", tmp_path / "mixed"), "train different tasks"),
                          (("--single", f"rte={tmp_path / 'sizes'}"), "store different bls_bits"),
                          (("--multitask", tmp_path / "empty"), "no finished run"),
                          (("--single", "rte"), "expected TASK=FOLDER")):
        result = table(*args, check=False)
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_runs_lists_every_multi_task_run_with_its_scores_storage_and_command(tmp_path):
    for seed, rte in ((42, 60.0), (43, 62.5)):
        write(tmp_path / "hybrid" / f"seed{seed}", {
            "tasks": ["rte", "stsb"], "method": "proadapter_hybrid", "seed": seed,
            "test": {"test_rte_score": rte, "test_stsb_score": 80.0}, "test_average": (rte + 80.0) / 2,
            "storage": {"bls_bits": 3200, "bytes_on_disk": 512}, "wall_time_seconds": 12.4,
            "masks": {"moved": 0.25, "fresh_draw_level": 0.5},
            "command_line": f"run_multitask_encoder.py --model_name_or_path /models/minilm --seed {seed}"})
    (tmp_path / "hybrid" / "seed44").mkdir()  # results written, no DONE: unfinished, named under the list
    (tmp_path / "hybrid" / "seed44" / "all_results.json").write_text("{}")
    out = table("--multitask", tmp_path / "hybrid", "--runs").stdout.splitlines()
    assert out[0].startswith("| run | seed | test score per task | average | total BLS (bits) |")
    assert out[2] == "| seed42 | 42 | rte 60.00, stsb 80.00 | 70.00 | 3,200 | 512 | 25.0 (fresh draw 50.0) | 12 |"
    assert out[3] == "| seed43 | 43 | rte 62.50, stsb 80.00 | 71.25 | 3,200 | 512 | 25.0 (fresh draw 50.0) | 12 |"
    assert "Commands (`$MODEL`: /models/minilm):" in out
    assert 'run_multitask_encoder.py --model_name_or_path "$MODEL" --seed 43' in out
    assert any("seed44" in line for line in out if line.startswith("- skipped"))


def test_runs_takes_the_multi_task_folders_only(tmp_path):
    result = table("--multitask", tmp_path, "--single", f"rte={tmp_path}", "--runs", check=False)
    assert result.returncode == 2 and "give --multitask and no --single" in result.stderr
