"""The multi-task comparison table of docs/results.md from result folders.

    python scripts/multitask_table.py --multitask docs/runs/fixed/multitask/proadapter_hybrid \
        docs/runs/fixed/multitask/seq_bn_shared \
        --single rte=docs/runs/fixed/rte/proadapter mrpc=... --single_label "single-task ProAdapter"

Each folder is one run, or a folder of runs (its seeds: every finished run below it). A task's score is the
mean of its metrics (the multi-task runs' ``<task>_score``); a cell is its mean ± std over the seeds. The
averages are the means of the task cells, over all of a row's tasks and over the tasks every row has; "seeds"
is the number of runs per task. Storage: total bits, and bits one more task adds. Single-task runs store one
module per task, so their total is the sum and a task adds its whole module.
"""

import argparse
import os
import statistics
import sys
from typing import Dict, List

from ..data.metrics import mean_std_text
from ..experiments.run_folder import ResultsError, read_results, walk_results
from .table import command_model, common_base, masks_moved, moved_cell, short_command


def finished_runs(folder: str, notes: List[str]) -> List[str]:
    """Every finished run folder at or below ``folder`` (one run, or a folder of seeds); each unfinished run
    found there is added to ``notes``, so that a row over fewer seeds than were started says so."""
    found, skipped = walk_results(folder)
    if not found:
        raise ResultsError(f"{folder}: no finished run (all_results.json with a DONE marker) in it or below it")
    notes += [f"skipped {reason}" for reason in skipped]
    return found


def seed_runs(folder: str, notes: List[str]) -> List[dict]:
    """The results of every finished run at or below ``folder`` (``finished_runs``)."""
    return [read_results(run) for run in finished_runs(folder, notes)]


def _same_storage(runs: List[dict], folder: str) -> dict:
    """The storage record the seeds share; seeds of one row that stored different sizes are not one row."""
    storage = runs[0]["storage"]
    if any(run["storage"].get("bls_bits") != storage.get("bls_bits") for run in runs):
        raise ResultsError(f"{folder}: its runs store different bls_bits; give each configuration its own folder")
    return storage


def multitask_row(runs: List[dict], folder: str):
    tasks = runs[0]["tasks"]
    if any(run["tasks"] != tasks for run in runs):
        raise ResultsError(f"{folder}: its runs train different tasks; give each task set its own folder")
    scores = {t: [run["test"][f"test_{t}_score"] for run in runs] for t in tasks}
    storage = _same_storage(runs, folder)
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


def single_row(pairs: List[str], notes: List[str]):
    scores: Dict[str, List[float]] = {}
    per_task = []
    for pair in pairs:
        task, _, folder = pair.partition("=")
        if not task or not folder:
            raise ResultsError(f"--single {pair!r}: expected TASK=FOLDER")
        runs = seed_runs(folder, notes)
        scores[task] = [statistics.mean(run["test"][m] for m in run["metric_names"]) for run in runs]
        per_task.append(_same_storage(runs, folder)["bls_bits"])
    return scores, sum(per_task), statistics.mean(per_task)


def _seed_counts(scores: Dict[str, List[float]]) -> str:
    counts = sorted({len(values) for values in scores.values()})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def render_runs(folders: List[str]) -> str:
    """One row per multi-task run below ``folders`` (seed, each task's test score, average, storage, mask
    movement, wall time), then each run's command line, as ``propetl-table --runs`` does for single-task runs."""
    notes: List[str] = []
    found = [run for folder in folders for run in finished_runs(folder, notes)]
    base = common_base(folders)
    rows, commands, models = [], [], set()
    for run in sorted(found):
        results = read_results(run)
        name = os.path.relpath(run, base)
        name = os.path.basename(os.path.abspath(run)) if name == "." else name
        scores = ", ".join(f"{task} {results['test'][f'test_{task}_score']:.2f}" for task in results["tasks"])
        storage = results.get("storage") or {}
        wall = results.get("wall_time_seconds")
        rows.append(f"| {name} | {results.get('seed', '–')} | {scores} | {results['test_average']:.2f} | "
                    f"{storage.get('bls_bits', 0):,} | {storage.get('bytes_on_disk', '–')} | "
                    f"{moved_cell(masks_moved(results))} | "
                    f"{'–' if wall is None else f'{wall:.0f}'} |")
        commands.append(f"# {name}\n{short_command(results)}")
        models.add(command_model(results))
    lines = ["| run | seed | test score per task | average | total BLS (bits) | bytes on disk | masks moved (%) "
             "| wall time (s) |", "|---|---:|---|---:|---:|---:|---:|---:|", *rows, "",
             "Commands (`$MODEL`: " + ", ".join(sorted(m for m in models if m)) + "):", "", "```", *commands, "```"]
    return "\n".join(lines + (["", *(f"- {n}" for n in notes)] if notes else [])) + "\n"


def main(argv=None) -> int:
    try:
        return _print_table(argv)
    except ResultsError as err:
        print(f"multitask_table.py: error: {err}", file=sys.stderr)
        return 1


def _print_table(argv) -> int:
    parser = argparse.ArgumentParser(prog="multitask_table.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--multitask", nargs="+", default=[], help="multi-task run folders, or folders of seeds")
    parser.add_argument("--single", nargs="*", default=[], help="TASK=FOLDER of single-task runs (or of seeds)")
    parser.add_argument("--single_label", default="single-task")
    parser.add_argument("--runs", action="store_true",
                        help="instead of the table, list every run below the --multitask folders and its command")
    args = parser.parse_args(argv)
    if args.runs:
        if not args.multitask or args.single:
            parser.error("--runs lists the --multitask folders' runs; give --multitask and no --single")
        print(render_runs(args.multitask), end="")
        return 0
    notes: List[str] = []
    runs = [seed_runs(folder, notes) for folder in args.multitask]
    every_task = list(dict.fromkeys(t for seeds in runs for results in seeds for t in results["tasks"]))
    rows = [(multitask_label(seeds[0], every_task), *multitask_row(seeds, folder))
            for seeds, folder in zip(runs, args.multitask)]
    if args.single:
        rows.append((args.single_label, *single_row(args.single, notes)))
    tasks = list(dict.fromkeys(t for row in rows for t in row[1]))
    base = runs[-1][0]["storage"]["base_model_parameters"] if runs else None
    common = [t for t in tasks if all(t in row[1] for row in rows)]
    print("| method | " + " | ".join(tasks) + f" | average of all | average of {'/'.join(common)} | total BLS (bits) "
          "| % of model | bits a task adds | seeds |")
    print("|---|" + "---:|" * (len(tasks) + 6))
    for label, scores, total, added in rows:
        percent = f"{100 * total / (32 * base):.3f} %" if base else ""
        cells = " | ".join(mean_std_text(scores[t]) if t in scores else "–" for t in tasks)
        average = statistics.mean(statistics.mean(scores[t]) for t in tasks if t in scores)
        shared_average = statistics.mean(statistics.mean(scores[t]) for t in common)
        print(f"| {label} | {cells} | {average:.2f} | {shared_average:.2f} | {total:,} | {percent} | {added:,.0f} "
              f"| {_seed_counts(scores)} |")
    if notes:
        print("\n" + "\n".join(f"- {note}" for note in notes))
    return 0
