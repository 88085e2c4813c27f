"""The multi-task comparison table of docs/results.md from result folders.

    python scripts/multitask_table.py --multitask outputs/evidence/multitask/proadapter_hybrid/seed42 \
        outputs/evidence/multitask/seq_bn_shared/seed42 \
        --single rte=outputs/evidence/rte/proadapter/seed42 mrpc=... --single_label "single-task ProAdapter"

A task's score is the mean of its metrics (the multi-task runs' ``<task>_score``); the averages are the mean
of the task scores, over all of a row's tasks and over the tasks every row has. Storage: total bits, and bits one more task adds. Single-task runs store one module
per task, so their total is the sum and a task adds its whole module.
"""

import argparse
import statistics
import sys

from ..experiments.run_folder import ResultsError, read_results


def multitask_row(results: dict):
    tasks = results["tasks"]
    scores = {t: results["test"][f"test_{t}_score"] for t in tasks}
    storage = results["storage"]
    added = storage.get("task_bits", {})
    return scores, storage["bls_bits"], (statistics.mean(added.values()) if added else 0)


def multitask_label(results: dict, every_task: list) -> str:
    """Name the run by its method, and say which tasks were added later or left out (a hold-out pair of rows)."""
    label = f"multi-task {results['method']}"
    added = results.get("added_tasks") or []
    if added:
        return f"{label}: {', '.join(added)} added to the {'/'.join(results['base_tasks'])} run (its mask and head alone)"
    missing = [t for t in every_task if t not in results["tasks"]]
    return f"{label} without {', '.join(missing)}" if missing else label


def single_rows(pairs):
    scores, total, per_task = {}, 0, []
    for pair in pairs:
        task, _, folder = pair.partition("=")
        results = read_results(folder)
        scores[task] = statistics.mean(results["test"][m] for m in results["metric_names"])
        total += results["storage"]["bls_bits"]
        per_task.append(results["storage"]["bls_bits"])
    return scores, total, statistics.mean(per_task)


def main(argv=None) -> int:
    try:
        return _print_table(argv)
    except ResultsError as err:
        print(f"multitask_table.py: error: {err}", file=sys.stderr)
        return 1


def _print_table(argv) -> int:
    parser = argparse.ArgumentParser(prog="multitask_table.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--multitask", nargs="+", default=[], help="multi-task run folders")
    parser.add_argument("--single", nargs="*", default=[], help="TASK=FOLDER of single-task runs")
    parser.add_argument("--single_label", default="single-task")
    args = parser.parse_args(argv)
    runs = [read_results(folder) for folder in args.multitask]
    every_task = list(dict.fromkeys(t for results in runs for t in results["tasks"]))
    rows = [(multitask_label(results, every_task), *multitask_row(results)) for results in runs]
    if args.single:
        rows.append((args.single_label, *single_rows(args.single)))
    tasks = list(dict.fromkeys(t for row in rows for t in row[1]))
    base = runs[-1]["storage"]["base_model_parameters"] if runs else None
    common = [t for t in tasks if all(t in row[1] for row in rows)]
    print("| method | " + " | ".join(tasks) + f" | average of all | average of {'/'.join(common)} | total BLS (bits) "
          "| % of model | bits a task adds |")
    print("|---|" + "---:|" * (len(tasks) + 5))
    for label, scores, total, added in rows:
        percent = f"{100 * total / (32 * base):.3f} %" if base else ""
        cells = " | ".join(f"{scores[t]:.2f}" if t in scores else "–" for t in tasks)
        average = statistics.mean(scores[t] for t in tasks if t in scores)
        shared_average = statistics.mean(scores[t] for t in common)
        print(f"| {label} | {cells} | {average:.2f} | {shared_average:.2f} | {total:,} | {percent} | {added:,.0f} |")
    return 0

