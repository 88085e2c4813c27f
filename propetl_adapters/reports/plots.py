"""``propetl-plot``: figures and markdown tables from result folders (sparsity sweep, storage curve, ablation).

    propetl-plot sparsity outputs/glue/sparsity --out docs/figures
    propetl-plot storage  outputs/glue/storage  --out docs/figures
    propetl-plot ablation outputs/glue/ablation --out docs/figures

A result is any run folder below the folder that holds results (``experiments/run_folder.walk_results``). Its setting is read from the path: the first
folder named like ``<variant>_k<k>`` (sparsity), ``<method>_bn<size>`` (storage) or one of the four
ablation settings; the task and score come from the file (a GLUE run's test main metric, or a
``run_seq2seq.py`` run's test average). Seeds of one setting are averaged; error bars are their
standard deviation. Each command writes ``<kind>_<task>.png`` and ``<kind>.md``; the figure plots the main
metric, the table gives every test metric of the task (MRPC: accuracy / F1).
"""

import argparse
import os
import re
import statistics
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from ..atomic import atomic_write_text
from ..data.glue import get_task
from ..data.metrics import mean_and_std
from ..experiments.run_folder import RESULTS_FILE, ResultsError, read_results, walk_results

ABLATION_ORDER = ("proadapter", "only_share", "only_mask", "random_mask")
PATTERNS = {"sparsity": re.compile(r"^(?P<series>[a-z_]+)_k(?P<x>[0-9.]+)$"),
            "storage": re.compile(r"^(?P<series>[a-z_]+)_bn(?P<x>[0-9]+)$"),
            "ablation": re.compile(r"^(?P<series>" + "|".join(ABLATION_ORDER) + r")$")}
LABELS = {"proadapter": "ProAdapter", "prolora": "ProLoRA", "proprefix": "ProPrefix", "seq_bn": "Adapter",
          "adapter": "Adapter", "propetl_adapter": "ProAdapter", "only_share": "only share",
          "only_mask": "only mask", "random_mask": "random mask"}


def _scores(results: dict) -> Tuple[str, str, Dict[str, float]]:
    """(task, main metric, {metric: test score}) of one all_results.json; the main metric comes first."""
    if "task" in results and "main_metric" in results:
        metric, test = results["main_metric"], results["test"]
        try:
            others = [m for m in get_task(results["task"]).metrics if m != metric and m in test]
        except ValueError:  # not a GLUE task: its main metric only
            others = []
        return results["task"], metric, {m: float(test[m]) for m in (metric, *others)}
    if "tasks" in results:
        task = "+".join(results["tasks"])
        return task, "test average", {"test average": float(results.get("test_average",
                                                                         results["test"]["test_average"]))}
    raise ResultsError("neither a run_glue nor a run_seq2seq result")


def collect(kind: str, root: str) -> List[dict]:
    """One record per result file: series, x, task, metric (the main one), scores (every test metric),
    bls_percent, path."""
    folders, _ = walk_results(root, finished_only=False)
    records = []
    for folder in folders:
        path = os.path.join(folder, RESULTS_FILE)
        parts = os.path.relpath(folder, root).split(os.sep)
        match = next((PATTERNS[kind].match(p) for p in parts if PATTERNS[kind].match(p)), None)
        if match is None:
            continue
        results = read_results(folder)
        try:
            task, metric, scores = _scores(results)
        except (KeyError, ResultsError) as err:
            raise ResultsError(f"{path}: {err}") from err
        records.append({"series": match.group("series"), "x": float(match.groupdict().get("x") or 0), "task": task,
                        "metric": metric, "scores": scores, "path": path,
                        "bls_percent": (results.get("storage") or {}).get("bls_percent")})
    if not records:
        raise ResultsError(f"{root}: no {RESULTS_FILE} below a folder named like {PATTERNS[kind].pattern}")
    return records


def aggregate(records: List[dict]) -> Dict[str, Dict[str, Dict[float, dict]]]:
    """task -> series -> x -> {mean, std, n, bls_percent, metric, all}: mean and std of the main metric, and
    ``all``: {metric: (mean, std)} for every test metric."""
    grouped = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        grouped[r["task"]][r["series"]][r["x"]].append(r)
    table = {}
    for task, by_series in grouped.items():
        table[task] = {}
        for series, by_x in by_series.items():
            table[task][series] = {}
            for x, runs in sorted(by_x.items()):
                bls = [r["bls_percent"] for r in runs if r["bls_percent"] is not None]
                every = {m: mean_and_std([r["scores"][m] for r in runs if m in r["scores"]]) for m in runs[0]["scores"]}
                mean, std = every[runs[0]["metric"]]
                table[task][series][x] = {"mean": mean, "std": std, "n": len(runs), "all": every,
                                          "bls_percent": statistics.mean(bls) if bls else None,
                                          "metric": runs[0]["metric"]}
    return table


def _label(series: str) -> str:
    return LABELS.get(series, series)


def _cell(point: Optional[dict]) -> str:
    if point is None:
        return ""
    spread = point["n"] > 1
    return " / ".join(f"{mean:.2f}" + (f" ± {std:.2f}" if spread else "") for mean, std in point["all"].values()) \
        + f" (n={point['n']})"


def plot(kind: str, root: str, out: str) -> List[str]:
    """Write the figures and the markdown table; returns the written paths."""
    import matplotlib  # the optional `plots` extra: imported only when a figure is drawn
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # (plots extra)
    from matplotlib.ticker import FuncFormatter  # (plots extra)

    table = aggregate(collect(kind, root))
    os.makedirs(out, exist_ok=True)
    written, markdown = [], [f"# {kind} results from `{root}`", ""]
    for task, by_series in sorted(table.items()):
        first_point = next(iter(next(iter(by_series.values())).values()))
        metric, metrics = first_point["metric"], " / ".join(first_point["all"])  # main metric; every table metric
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        if kind == "ablation":
            names = [s for s in ABLATION_ORDER if s in by_series]
            points = [by_series[s][0.0] for s in names]
            axes.bar([_label(s) for s in names], [p["mean"] for p in points],
                     yerr=[p["std"] for p in points], capsize=4, color="#4C72B0")
            low = min(p["mean"] - p["std"] for p in points)
            axes.set_ylim(max(0.0, low - 5), None)
            axes.set_xlabel("setting (parameter-matched BLS)")
            markdown += [f"## {task}: test {metrics} (%)", "", "| setting | score |", "|---|---:|"]
            markdown += [f"| {_label(s)} | {_cell(p)} |" for s, p in zip(names, points)]
        else:
            for series, by_x in sorted(by_series.items()):
                xs = [x if kind == "sparsity" else by_x[x]["bls_percent"] for x in by_x]
                ys = [p["mean"] for p in by_x.values()]
                axes.errorbar(xs, ys, yerr=[p["std"] for p in by_x.values()], marker="o", capsize=3,
                              label=_label(series))
                if kind == "storage":  # name each point's bottleneck: the x axis only shows its storage
                    for size, x, y in zip(by_x, xs, ys):
                        axes.annotate(f"bn {size:g}", (x, y), textcoords="offset points", xytext=(4, -12),
                                      fontsize=8)
                if kind == "sparsity":
                    best = max(by_x, key=lambda x: by_x[x]["mean"])
                    axes.plot([best], [by_x[best]["mean"]], marker="*", markersize=16, color="black", zorder=5)
            if kind == "sparsity":
                axes.set_xlabel("kept fraction k of each mask (★ best k)")
                xs_all = sorted({x for by_x in by_series.values() for x in by_x})
                markdown += [f"## {task}: test {metrics} (%) by k", "",
                             "| variant | " + " | ".join(f"k={x:g}" for x in xs_all) + " | best k |",
                             "|---|" + "---:|" * (len(xs_all) + 1)]
                for series, by_x in sorted(by_series.items()):
                    best = max(by_x, key=lambda x: by_x[x]["mean"])
                    markdown.append(f"| {_label(series)} | " + " | ".join(_cell(by_x.get(x)) for x in xs_all)
                                    + f" | {best:g} |")
            else:
                axes.set_xscale("log")
                plain = FuncFormatter(lambda v, _: f"{v:g}")
                axes.xaxis.set_major_formatter(plain)
                axes.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}".lstrip("0.")[:1]
                                                             in ("2", "5") else ""))
                axes.set_xlabel("bit-level storage (% of the base model, log scale)")
                markdown += [f"## {task}: test {metrics} (%) against storage", "",
                             "| method | bottleneck | BLS % | score |", "|---|---:|---:|---:|"]
                for series, by_x in sorted(by_series.items()):
                    markdown += [f"| {_label(series)} | {x:g} | {p['bls_percent']:.4f} | {_cell(p)} |"
                                 for x, p in by_x.items() if p["bls_percent"] is not None]
            axes.legend()
        axes.set_ylabel(f"test {metric} (%)")
        axes.set_title(f"{task}: {kind}")
        axes.grid(alpha=0.3)
        figure.tight_layout()
        path = os.path.join(out, f"{kind}_{task}.png")
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
        markdown.append("")
    table_path = os.path.join(out, f"{kind}.md")
    atomic_write_text(table_path, "\n".join(markdown))
    return written + [table_path]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="propetl-plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(PATTERNS))
    parser.add_argument("results", help="folder holding the runs (e.g. outputs/glue/sparsity)")
    parser.add_argument("--out", default="docs/figures", help="where the PNGs and the markdown table go")
    args = parser.parse_args(argv)
    try:
        for path in plot(args.kind, args.results, args.out):
            print(path)
    except ResultsError as err:
        print(f"propetl-plot: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
