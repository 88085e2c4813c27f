"""``propetl-table``: Table 1 of the ProPETL paper from a tree of run folders (``scripts/collect_results.py``).

Every finished run folder below the given roots is read (``experiments/run_folder.walk_results``). Runs are grouped by method (the ``method`` field, or the folder path with ``--group_by path``)
and task; each cell is the mean ± sample standard deviation over seeds of the test score. The
average is the paper's: the mean of the 11 numbers (MRPC, QQP and STS-B count twice), taken over
the per-task means. "% params" is the trainable PETL module without the prediction head and "% BLS"
its bit-level storage, both relative to the pre-trained model.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..atomic import atomic_write_text
from ..data.glue import GlueTask, get_task
from ..data.metrics import mean_and_std, mean_std_text, paper_average
from ..experiments.run_folder import DONE_FILE, RESULTS_FILE, ResultsError, read_results, walk_results

RootsArg = Union[str, Sequence[str]]  # one results folder, or several read as one

# Column order of the paper's Table 1.
TABLE_TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")
TASK_HEADERS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC acc/F1", "qqp": "QQP acc/F1",
                "stsb": "STS-B P/S", "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE"}
METHOD_LABELS = {"full_finetuning": "Fine-tuning", "seq_bn": "Adapter", "proadapter": "ProAdapter",
                 "lora": "LoRA", "prolora": "ProLoRA", "prefix_tuning": "Prefix", "proprefix": "ProPrefix"}

# Published ProPETL rows (roberta-base, mean of 3 seeds), for --paper.
PAPER_ROWS = {
    "ProAdapter (paper)": {"cola": [65.43], "sst2": [94.15], "mrpc": [88.24, 91.41], "qqp": [89.40, 86.04],
                           "stsb": [91.34, 90.95], "mnli": [86.53], "qnli": [92.58], "rte": [76.50], "avg": 86.60},
    "ProLoRA (paper)": {"cola": [61.81], "sst2": [94.00], "mrpc": [87.42, 91.00], "qqp": [88.85, 85.22],
                        "stsb": [90.48, 90.47], "mnli": [85.73], "qnli": [91.05], "rte": [63.79], "avg": 84.53},
    "ProPrefix (paper)": {"cola": [62.16], "sst2": [93.62], "mrpc": [88.73, 91.80], "qqp": [87.59, 83.71],
                          "stsb": [90.92, 90.83], "mnli": [85.30], "qnli": [91.75], "rte": [72.66], "avg": 85.37},
}


def find_results(root: str) -> Tuple[List[Tuple[str, dict]], List[str]]:
    """``([(run folder, results), ...], [skipped folders with a reason])`` for every finished run below ``root``."""
    folders, skipped = walk_results(root)
    found = []
    for folder in folders:
        results = read_results(folder)
        if "test" not in results or "task" not in results:
            raise ResultsError(f"{os.path.join(folder, RESULTS_FILE)}: expected a run_glue.py results object with "
                               "'task' and 'test'")
        found.append((folder, results))
    return found, skipped


def find_glue_runs(roots: RootsArg) -> Tuple[List[Tuple[str, dict, GlueTask]], List[str]]:
    """``([(run folder, results, GLUE task spec), ...], [notes on skipped folders])`` below each root (one
    folder or several); both the table and the run list read only these, so a non-GLUE or unfinished run is
    skipped the same way in each. A root without a finished GLUE run is an error (a mistyped folder)."""
    runs, notes = [], []
    for root in _as_list(roots):
        found, skipped = find_results(root)
        notes += [f"skipped {n}" for n in skipped]
        before = len(runs)
        for folder, results in found:
            try:
                runs.append((folder, results, get_task(results["task"])))
            except ValueError:
                notes.append(f"skipped {folder} (task {results['task']!r} is not a GLUE task)")
        if len(runs) == before:
            raise ResultsError(f"{root}: no finished GLUE runs (folders with {RESULTS_FILE} and {DONE_FILE})")
    return runs, notes


def _as_list(roots: RootsArg) -> List[str]:
    return [roots] if isinstance(roots, str) else list(roots)


def common_base(roots: RootsArg) -> str:
    """The folder that run paths are relative to: the root, or the deepest folder holding all the roots."""
    return os.path.commonpath([os.path.abspath(r) for r in _as_list(roots)])


def _group_key(root: str, folder: str, results: dict, group_by: str) -> str:
    if group_by == "method":
        return str(results.get("method", "unknown"))
    relative = os.path.relpath(folder, root).split(os.sep)
    # <group...>/<task>/<seed folder>: drop the last two parts when the layout matches.
    parts = relative[:-2] if len(relative) > 2 else relative[:1]
    return "/".join(parts) or "."


def aggregate(roots: RootsArg, group_by: str = "method") -> Tuple[Dict[str, dict], List[str]]:
    """``{group: {"tasks": {task: {metric: [values]}}, "seeds": {task: [seeds]}, "trainable_percent": [...],
    "bls_percent": [...]}}`` and a list of notes (skipped runs, duplicates). With several roots, paths (for
    ``group_by="path"``) are relative to the deepest folder holding them all."""
    runs, notes = find_glue_runs(roots)
    root = common_base(roots)
    groups: Dict[str, dict] = {}
    seen = {}
    for folder, results, spec in runs:
        key = _group_key(root, folder, results, group_by)
        identity = (key, spec.name, results.get("seed"))
        if identity in seen:
            notes.append(f"skipped {folder}: same {group_by} / task / seed as {seen[identity]}")
            continue
        seen[identity] = folder
        missing = [m for m in spec.metrics if m not in results["test"]]
        if missing:
            raise ResultsError(f"{os.path.join(folder, RESULTS_FILE)}: test metrics lack {missing}")
        group = groups.setdefault(key, {"tasks": {}, "seeds": {}, "trainable_percent": [], "bls_percent": []})
        metrics = group["tasks"].setdefault(spec.name, {m: [] for m in spec.metrics})
        for metric in spec.metrics:
            metrics[metric].append(float(results["test"][metric]))
        group["seeds"].setdefault(spec.name, []).append(results.get("seed"))
        storage = results.get("storage") or {}
        for field in ("trainable_percent", "bls_percent"):
            if storage.get(field) is not None:
                group[field].append(float(storage[field]))
    return groups, notes


def _sort_key(group: str):
    order = list(METHOD_LABELS)
    base = group.split("/")[0]
    return (order.index(base) if base in order else len(order), group)


def render_table(groups: Dict[str, dict], notes: Sequence[str] = (), paper: bool = False) -> str:
    """Markdown table: one row per group, Table 1 columns, mean ± std over seeds."""
    header = ["Method", *(TASK_HEADERS[t] for t in TABLE_TASKS), "Avg", "% params", "% BLS", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnotes = list(notes)
    for group in sorted(groups, key=_sort_key):
        data = groups[group]
        cells, means = [], {}
        for task in TABLE_TASKS:
            if task not in data["tasks"]:
                cells.append("–")
                continue
            metrics = data["tasks"][task]
            cells.append(" / ".join(mean_std_text(values) for values in metrics.values()))
            means[task] = {m: mean_and_std(values)[0] for m, values in metrics.items()}
        average = paper_average(means) if means else float("nan")
        avg_cell = f"{average:.2f}"
        if len(means) < len(TABLE_TASKS):
            avg_cell += "*"
        seed_counts = sorted({len(s) for s in data["seeds"].values()})
        seeds = "/".join(str(n) for n in seed_counts)
        params = f"{mean_and_std(data['trainable_percent'])[0]:.3f}" if data["trainable_percent"] else "–"
        bls = f"{mean_and_std(data['bls_percent'])[0]:.3f}" if data["bls_percent"] else "–"
        label = METHOD_LABELS.get(group, group)
        lines.append("| " + " | ".join([label, *cells, avg_cell, params, bls, seeds]) + " |")
    if paper:
        for label, row in PAPER_ROWS.items():
            cells = [" / ".join(f"{v:.2f}" for v in row[t]) for t in TABLE_TASKS]
            lines.append("| " + " | ".join([label, *cells, f"{row['avg']:.2f}", "–", "–", "3"]) + " |")
    text = "\n".join(lines)
    text += ("\n\nCells: test score, mean ± sample standard deviation over seeds (the seeds column gives the "
             "number of seeds per task). Avg: mean of the 11 numbers of the paper (MRPC, QQP, STS-B count "
             "twice) over the per-task means; * = not all 8 tasks present. % params: trainable PETL module "
             "(prediction head excluded) / pre-trained model; % BLS: bit-level storage / (32 x model "
             "parameters).")
    if footnotes:
        text += "\n\n" + "\n".join(f"- {n}" for n in footnotes)
    return text + "\n"


def short_command(results: dict) -> str:
    """The recorded command line with the interpreter's folder dropped and the model path (the recorded
    ``model_name_or_path``, or the value of ``--model_name_or_path``) written ``$MODEL``."""
    parts = shlex.split(results.get("command_line") or "")
    if not parts:
        return "(not recorded)"
    model = results.get("model_name_or_path") or _model_flag(parts)
    parts[0] = os.path.basename(parts[0])
    return " ".join('"$MODEL"' if model and part == model else shlex.quote(part) for part in parts)


def command_model(results: dict) -> Optional[str]:
    """The value of ``--model_name_or_path`` in the recorded command line (runs that do not record the model
    as a field of their results, like the multi-task runners'), else None."""
    return _model_flag(shlex.split(results.get("command_line") or ""))


def _model_flag(parts: Sequence[str]) -> Optional[str]:
    for flag, value in zip(parts, parts[1:]):
        if flag == "--model_name_or_path":
            return value
    return None


def collect_runs(roots: RootsArg) -> Tuple[List[dict], List[str]]:
    """One record per finished GLUE run, sorted by task then folder (what ``--runs`` prints and ``--json``
    writes with it), and the notes on skipped folders. Run paths are relative to the root (with several, to
    the deepest folder holding them all)."""
    runs, notes = find_glue_runs(roots)
    root = common_base(roots)
    records = []
    for folder, results, spec in sorted(runs, key=lambda item: (item[2].name, item[0])):
        storage = results.get("storage") or {}
        records.append({
            "task": spec.name, "run": os.path.relpath(folder, root), "seed": results.get("seed"),
            "test": {m: float(results["test"][m]) for m in spec.metrics if m in results["test"]},
            "bls_percent": storage.get("bls_percent"), "bytes_on_disk": storage.get("bytes_on_disk"),
            "masks_moved": masks_moved(results),
            "wall_time_seconds": results.get("wall_time_seconds"),
            "resumed": bool((results.get("training") or {}).get("resumed_from_checkpoint")),
            "model_name_or_path": results.get("model_name_or_path"), "command": short_command(results)})
    return records, notes


def moved_cell(moved: Optional[List[float]]) -> str:
    """The "masks moved (%)" cell of a run list, from ``masks_moved``."""
    return "–" if moved is None else f"{moved[0]:.1f} (fresh draw {moved[1]:.1f})"


def masks_moved(results: dict) -> Optional[List[float]]:
    """[moved, fresh-draw level] in % (``mask_movement.py``); None for runs without trained masks or made before
    the movement was recorded."""
    masks = results.get("masks")
    return [100 * masks["moved"], 100 * masks["fresh_draw_level"]] if masks else None


def render_runs(records: Sequence[dict], notes: Sequence[str] = ()) -> str:
    """One row per run (task, folder, seed, test scores, % BLS, bytes on disk, mask movement, wall time), then
    the command line of each run, so every number in the table can be traced to the command that made it."""
    rows, commands = [], []
    for record in records:
        wall = record["wall_time_seconds"]
        wall_cell = "–" if wall is None else f"{wall:.0f}"
        if record["resumed"]:
            wall_cell += " (resumed: last process only)"
        bls = record["bls_percent"]
        scores = " / ".join(f"{value:.2f}" for value in record["test"].values())
        rows.append(f"| {record['task']} | {record['run']} | {'–' if record['seed'] is None else record['seed']} | "
                    f"{'/'.join(record['test'])} {scores} | {'–' if bls is None else f'{bls:.3f}'} | "
                    f"{'–' if record['bytes_on_disk'] is None else record['bytes_on_disk']} | {moved_cell(record['masks_moved'])} | {wall_cell} |")
        commands.append(f"# {record['run']}\n{record['command']}")
    models = sorted({r["model_name_or_path"] for r in records if r["model_name_or_path"]})
    lines = ["| task | run | seed | test | % BLS | bytes on disk | masks moved (%) | wall time (s) |",
             "|---|---|---:|---|---:|---:|---:|---:|",
             *rows, "", "Commands (`$MODEL`: " + ", ".join(models) + "):", "", "```", *commands, "```"]
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="propetl-table",
        description=f"Collect run_glue.py results ({RESULTS_FILE}) into the markdown Table 1 of the paper.")
    parser.add_argument("roots", nargs="+", metavar="root",
                        help="results folder, e.g. outputs/glue (searched recursively); several folders are read "
                             "as one, e.g. the two run folders of a pair")
    parser.add_argument("--group_by", choices=("method", "path"), default="method",
                        help="rows by the recorded method (default) or by the folder path above <task>/<seed>, "
                             "e.g. for ablations of one method")
    parser.add_argument("--output", help="also write the markdown table to this file")
    parser.add_argument("--json", help="also write the numbers to this JSON file: per group and task (all seeds), "
                                       "or with --runs one record per run")
    parser.add_argument("--paper", action="store_true", help="add the published ProPETL rows for comparison")
    parser.add_argument("--runs", action="store_true",
                        help="instead of Table 1, list every run (score, %% BLS, bytes, wall time) and its command")
    args = parser.parse_args(argv)
    try:
        if args.runs:
            numbers, notes = collect_runs(args.roots)
            table = render_runs(numbers, notes)
        else:
            numbers, notes = aggregate(args.roots, args.group_by)
            table = render_table(numbers, notes, paper=args.paper)
    except ResultsError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print(table, end="")
    for path, content in ((args.output, table), (args.json, json.dumps(numbers, indent=2) + "\n")):
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            atomic_write_text(path, content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
