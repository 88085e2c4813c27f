"""scripts/collect_results.py: Table 1 from a tree of all_results.json files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from propetl_adapters.data.metrics import paper_average
from propetl_adapters.reports.table import aggregate, main, render_table

REPO_ROOT = Path(__file__).resolve().parents[2]


METRICS = {"cola": ["matthews_correlation"], "sst2": ["accuracy"], "mrpc": ["accuracy", "f1"],
           "qqp": ["accuracy", "f1"], "stsb": ["pearson", "spearmanr"], "mnli": ["accuracy"], "qnli": ["accuracy"],
           "rte": ["accuracy"]}


def write_run(root, method, task, seed, value, done=True, trainable=0.5, bls=0.1):
    folder = root / method / task / f"seed{seed}"
    folder.mkdir(parents=True)
    results = {"task": task, "method": method, "seed": seed,
               "test": {m: value + i for i, m in enumerate(METRICS[task])} | {"loss": 0.3},
               "storage": {"trainable_percent": trainable, "bls_percent": bls}}
    (folder / "all_results.json").write_text(json.dumps(results))
    if done:
        (folder / "DONE").write_text("x")


def test_table_means_stds_average_and_storage(tmp_path):
    for seed, value in ((42, 80.0), (43, 82.0), (44, 84.0)):
        for task in METRICS:
            write_run(tmp_path, "proadapter", task, seed, value, trainable=0.7, bls=0.11)
    write_run(tmp_path, "seq_bn", "rte", 42, 70.0, trainable=0.95, bls=0.95)
    write_run(tmp_path, "seq_bn", "rte", 43, 10.0, done=False)  # unfinished: ignored
    groups, notes = aggregate(str(tmp_path))
    table = render_table(groups, notes)
    lines = table.splitlines()
    assert lines[0].startswith("| Method | CoLA | SST-2 | MRPC acc/F1 | QQP acc/F1 | STS-B P/S | MNLI | QNLI | RTE |")
    pro = next(line for line in lines if line.startswith("| ProAdapter |"))
    cells = [c.strip() for c in pro.strip("|").split("|")]
    assert cells[1] == "82.00 ± 2.00"  # CoLA: mean and sample std of 80, 82, 84
    assert cells[3] == "82.00 ± 2.00 / 83.00 ± 2.00"  # MRPC accuracy / F1
    expected_avg = paper_average({t: {m: 82.0 + i for i, m in enumerate(ms)} for t, ms in METRICS.items()})
    assert cells[9] == f"{expected_avg:.2f}"  # 11 numbers, MRPC/QQP/STS-B twice
    assert cells[10:] == ["0.700", "0.110", "3"]
    adapter = next(line for line in lines if line.startswith("| Adapter |"))
    assert "70.00*" in adapter and adapter.count("–") == 7
    assert any("no DONE marker" in n for n in notes)


def test_command_line_writes_markdown_and_reports_empty_trees(tmp_path, capsys):
    write_run(tmp_path / "res", "prolora", "stsb", 42, 88.0)
    out = tmp_path / "table.md"
    assert main([str(tmp_path / "res"), "--output", str(out), "--paper"]) == 0
    printed = capsys.readouterr().out
    assert out.read_text() == printed and "| ProLoRA |" in printed and "ProLoRA (paper)" in printed
    assert main([str(tmp_path / "empty_missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2


def test_several_roots_are_read_as_one_tree_and_each_must_hold_a_run(tmp_path, capsys):
    write_run(tmp_path / "fixed" / "stsb", "proadapter", "stsb", 42, 84.0)
    write_run(tmp_path / "fixed" / "stsb", "prefix_tuning", "stsb", 42, 1.0)  # not among the roots given
    write_run(tmp_path / "fixed" / "sst2", "proadapter", "sst2", 42, 82.0)
    roots = [str(tmp_path / "fixed" / "stsb" / "proadapter"), str(tmp_path / "fixed" / "sst2" / "proadapter")]
    groups, _ = aggregate(roots)
    assert list(groups) == ["proadapter"] and sorted(groups["proadapter"]["tasks"]) == ["sst2", "stsb"]
    by_path, _ = aggregate(roots, group_by="path")  # paths relative to the folder that holds both roots
    assert sorted(by_path) == ["sst2/proadapter", "stsb/proadapter"]
    assert main([*roots, "--runs"]) == 0
    listing = capsys.readouterr().out
    assert "| sst2/proadapter/sst2/seed42 |" in listing and "| stsb/proadapter/stsb/seed42 |" in listing
    assert "prefix_tuning" not in listing
    assert main([roots[0], str(tmp_path / "fixed" / "cola")]) == 2  # a mistyped or empty root is named
    assert "cola" in capsys.readouterr().err


def test_group_by_path_and_script_wrapper(tmp_path):
    write_run(tmp_path / "ablation" / "k0.3", "proadapter", "rte", 42, 60.0)
    write_run(tmp_path / "ablation" / "k0.5", "proadapter", "rte", 42, 65.0)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "collect_results.py"),
                           str(tmp_path / "ablation"), "--group_by", "path"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| k0.3/proadapter |" in proc.stdout and "| k0.5/proadapter |" in proc.stdout


def test_runs_listing_gives_scores_storage_wall_time_and_runnable_commands(tmp_path, capsys):
    write_run(tmp_path, "proadapter", "mrpc", 42, 80.0, bls=0.13)
    results_path = tmp_path / "proadapter" / "mrpc" / "seed42" / "all_results.json"
    results = json.loads(results_path.read_text())
    results.update(model_name_or_path="/models/minilm", wall_time_seconds=448.4,
                   storage={"bls_percent": 0.13, "bytes_on_disk": 124026},
                   training={"resumed_from_checkpoint": "x/checkpoint-78"},
                   masks={"moved": 0.3125, "fresh_draw_level": 0.5},
                   command_line="/usr/bin/python3 run_glue.py --model_name_or_path /models/minilm "
                                "--adapter_config 'proadapter[reduction_factor=12]'")
    results_path.write_text(json.dumps(results))
    write_run(tmp_path, "seq_bn", "mrpc", 42, 70.0, done=False)  # unfinished: a note, not a row
    write_run(tmp_path, "proadapter", "mrpc", 43, 75.0)
    (tmp_path / "proadapter" / "mrpc" / "seed43" / "all_results.json").write_text(
        json.dumps({"task": "xsum", "method": "proadapter", "seed": 43, "test": {"rouge1": 30.0}}))
    numbers_path = tmp_path / "out" / "runs.json"
    assert main([str(tmp_path), "--runs", "--json", str(numbers_path)]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| mrpc |")]
    assert [[c.strip() for c in row.strip("|").split("|")] for row in rows] == [[
        "mrpc", "proadapter/mrpc/seed42", "42", "accuracy/f1 80.00 / 81.00", "0.130", "124026",
        "31.2 (fresh draw 50.0)", "448 (resumed: last process only)"]]
    assert "seq_bn/mrpc/seed42 (no DONE marker" in printed  # listed as skipped
    assert "seed43 (task 'xsum' is not a GLUE task)" in printed  # skipped, not a crash
    records = json.loads(numbers_path.read_text())
    assert [(r["run"], r["test"], r["bytes_on_disk"], r["resumed"]) for r in records] == [
        ("proadapter/mrpc/seed42", {"accuracy": 80.0, "f1": 81.0}, 124026, True)]
    assert ("python3 run_glue.py --model_name_or_path \"$MODEL\" --adapter_config "
            "'proadapter[reduction_factor=12]'") in printed
    assert "`$MODEL`: /models/minilm" in printed
