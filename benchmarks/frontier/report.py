"""Selection on validation, the Pareto frontier, the summary table and the figure."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from ._project import atomic_write_text, get_task, mean_and_std
from .plan import METHODS


def compared_rates(records: Sequence[dict], task: str, method: str,
                   seeds: Optional[Sequence[int]] = None) -> Dict[float, float]:
    """The learning rates that compete for the choice, with their mean validation main metric over ``seeds``
    (all seeds when None): only rates run on every one of those seeds."""
    by_lr: Dict[float, Dict[int, float]] = defaultdict(dict)
    for r in records:
        if r["task"] == task and r["method"] == method and (seeds is None or r["seed"] in seeds):
            by_lr[r["learning_rate"]][r["seed"]] = r["validation_score"]
    wanted = set(seeds) if seeds is not None else {seed for by_seed in by_lr.values() for seed in by_seed}
    return {lr: sum(s.values()) / len(s) for lr, s in by_lr.items() if s and set(s) >= wanted}


def best_rate(compared: Dict[float, float]) -> Optional[float]:
    """The rate of ``compared_rates`` with the best mean validation; ties go to the smaller rate. None: none."""
    if not compared:
        return None
    return min(compared, key=lambda lr: (-compared[lr], lr))


def select_lr(records: Sequence[dict], task: str, method: str,
              seeds: Optional[Sequence[int]] = None) -> Optional[float]:
    """The learning rate with the best mean validation main metric among ``compared_rates``; ties go to the
    smaller rate. None: nothing to choose."""
    return best_rate(compared_rates(records, task, method, seeds))


def pareto_frontier(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the points (bytes, score) no other point dominates, by increasing bytes.

    q dominates p when q needs no more bytes and scores at least as much, and is better in one of the two.
    Identical points do not dominate each other: both stay on the frontier."""
    front = []
    for i, (b, s) in enumerate(points):
        dominated = any(qb <= b and qs >= s and (qb < b or qs > s) for j, (qb, qs) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def summarise(records: Sequence[dict], search_seeds: Optional[Sequence[int]] = None) -> Dict[str, List[dict]]:
    """Per task, one row per method: the lr chosen on validation and its test mean ± std over seeds."""
    rows: Dict[str, List[dict]] = defaultdict(list)
    order = list(METHODS)
    for task, method in sorted({(r["task"], r["method"]) for r in records},
                               key=lambda tm: (tm[0], order.index(tm[1]) if tm[1] in order else len(order))):
        compared = compared_rates(records, task, method, search_seeds)
        lr = best_rate(compared)
        if lr is None:
            continue
        chosen = sorted((r for r in records if r["task"] == task and r["method"] == method
                         and r["learning_rate"] == lr), key=lambda r: r["seed"])
        test_mean, test_std = mean_and_std([r["test_score"] for r in chosen])
        val_mean, _ = mean_and_std([r["validation_score"] for r in chosen])
        first = chosen[0]
        rows[task].append({"task": task, "method": method, "family": first["family"], "learning_rate": lr,
                           "rates_compared": sorted(compared),
                           "seeds": [r["seed"] for r in chosen], "validation_mean": val_mean,
                           "test_mean": test_mean, "test_std": test_std, "main_metric": first["main_metric"],
                           "bytes": first["storage"]["bytes_on_disk"], "format": first["storage"]["format"],
                           "mask_file_version": _mask_file_version(first, first["storage"]["format"]),
                           "other_formats": {k: v["bytes_on_disk"] for k, v in first["storage"]["variants"].items()
                                             if k != first["storage"]["format"]},
                           "head_bytes": first["head"]["bytes_on_disk"],
                           "other_metrics": _other_metrics(task, [r["test"] for r in chosen]),
                           "compact_test": [r.get("compact_test_score") for r in chosen]})
        rows[task] += _other_compact_rows(rows[task][-1], chosen)
    for task_rows in rows.values():
        front = set(pareto_frontier([(r["bytes"], r["test_mean"]) for r in task_rows]))
        for i, row in enumerate(task_rows):
            row["on_frontier"] = i in front
    return dict(rows)


# Issue 16's goal: a ProPETL point scoring at least the best peer of no more bytes, measured on this many seeds.
GOAL_SEEDS = 3


def goal_check(rows: Sequence[dict]) -> List[dict]:
    """For each ProPETL row of one task: the best peer (any other family) of no more bytes, and the margin.

    ``margin`` is the ProPETL mean minus that peer's mean (None when no peer is that small). ``beats``: the
    peers of at least as many bytes that score no more than it. ``reached``: the point is on or above the
    peers' frontier with something to show for it, on at least GOAL_SEEDS seeds on both sides: margin >= 0,
    or, when no peer is that small, it beats a larger peer (one with GOAL_SEEDS seeds, where it beats any);
    ``shown``: the same without the seed count. ``noise``: the largest seed std involved. ``clear``: shown, and
    the lead over a compared peer exceeds the larger seed std of the two (else the point only ties)."""
    peers = [r for r in rows if r["family"] != "propetl"]
    checks = []
    for row in sorted((r for r in rows if r["family"] == "propetl"), key=lambda r: r["bytes"]):
        best = max((p for p in peers if p["bytes"] <= row["bytes"]), key=lambda p: p["test_mean"], default=None)
        beats = sorted((p for p in peers if p["bytes"] >= row["bytes"] and p["test_mean"] <= row["test_mean"]),
                       key=lambda p: p["bytes"])
        # smaller than every peer: a beaten peer with enough seeds is the evidence, and one-seed peers it also
        # beats must not hold the point back
        compared = [best] if best else [p for p in beats if len(p["seeds"]) >= GOAL_SEEDS] or beats
        seeds = min([len(row["seeds"])] + [len(p["seeds"]) for p in compared])
        margin = None if best is None else row["test_mean"] - best["test_mean"]
        shown = margin >= 0 if best is not None else bool(beats)
        checks.append({"method": row["method"], "bytes": row["bytes"], "test_mean": row["test_mean"],
                       "peer": best["method"] if best else None, "peer_bytes": best["bytes"] if best else None,
                       "peer_test_mean": best["test_mean"] if best else None, "margin": margin,
                       "beats": [p["method"] for p in beats], "seeds": seeds,
                       "noise": max([row["test_std"]] + [p["test_std"] for p in compared]),
                       "shown": shown, "reached": shown and seeds >= GOAL_SEEDS,
                       "clear": shown and any(_clear_lead(row, p) for p in compared)})
    return checks


def _clear_lead(row: dict, peer: dict) -> bool:
    """Whether ``row`` leads ``peer`` by more than the larger of their two seed stds."""
    return row["test_mean"] - peer["test_mean"] > max(row["test_std"], peer["test_std"])


def _goal_lines(rows: Sequence[dict]) -> List[str]:
    checks = goal_check(rows)
    if not checks:
        return []
    lines = [f"Goal (issue 16): a ProPETL point scoring at least the best peer of no more bytes (or, smaller than "
             f"every peer, beating a larger one), both sides on {GOAL_SEEDS} or more seeds; 'within noise': the "
             f"lead is no more than the larger seed std of the two, a tie.", "",
             "| ProPETL point | bytes | test | best peer of no more bytes | its test | margin | peers it beats "
             "with fewer bytes | seeds | largest seed std | goal |", "|---|---:|---:|---|---:|---:|---|---:|---:|---|"]
    for c in checks:
        verdict = (("reached" if c["clear"] else "reached, within noise") if c["reached"]
                   else f"open (fewer than {GOAL_SEEDS} seeds)" if c["shown"] else "not reached")
        peer = (f"{_label(c['peer'])} ({c['peer_bytes']:,} B) | {c['peer_test_mean']:.2f} | {c['margin']:+.2f}"
                if c["peer"] else "none this small | – | –")
        lines.append(f"| {_label(c['method'])} | {c['bytes']:,} | {c['test_mean']:.2f} | {peer} | "
                     f"{', '.join(_label(m) for m in c['beats']) or '–'} | {c['seeds']} | {c['noise']:.2f} | "
                     f"{verdict} |")
    return lines + [""]


def _label(method: str) -> str:
    """The method's label; ``METHOD@compact_int8`` (another compact export of it) reads 'LABEL, int8'."""
    name, _, variant = method.partition("@")
    label = METHODS[name].label if name in METHODS else name
    return f"{label}, {variant.removeprefix('compact_')}" if variant else label


def _other_compact_rows(row: dict, chosen: Sequence[dict]) -> List[dict]:
    """A row of its own for each further compact export of a ProPETL method (e.g. an int8 prototype), scored
    by that export loaded back, when every chosen seed measured it. Its method is ``METHOD@VARIANT``."""
    counted = chosen[0]["storage"]["format"]
    variants = [v for v in chosen[0].get("compact_test_scores", {}) if v != counted]
    extra = []
    for variant in variants:
        if not all(variant in r.get("compact_test_scores", {}) for r in chosen):
            continue
        scores = [r["compact_test_scores"][variant] for r in chosen]
        tests = [r.get("compact_tests", {}).get(variant, {}) for r in chosen]
        mean, std = mean_and_std(scores)
        extra.append({**row, "method": f"{row['method']}@{variant}", "test_mean": mean, "test_std": std,
                      "bytes": chosen[0]["storage"]["variants"][variant]["bytes_on_disk"], "format": variant,
                      "mask_file_version": _mask_file_version(chosen[0], variant),
                      # the same export in another container (VARIANT_safetensors): its bytes only
                      "other_formats": {k: v["bytes_on_disk"] for k, v in chosen[0]["storage"]["variants"].items()
                                        if k.startswith(f"{variant}_")},
                      "compact_test": scores, "other_metrics": _other_metrics(row["task"], tests)})
    return extra


def _other_metrics(task: str, tests: Sequence[dict]) -> Dict[str, Tuple[float, float]]:
    """Test mean and std over seeds of each metric of the task besides its main one (MRPC: accuracy beside F1,
    which a constant 'equivalent' answer already puts at about 81), where every seed measured it."""
    spec = get_task(task)
    return {m: mean_and_std([t[m] for t in tests]) for m in spec.metrics
            if m != spec.main_metric and all(m in t for t in tests)}


def grid_edge(row: dict) -> Optional[str]:
    """'top' or 'bottom' when the chosen rate is an end of a grid of several rates (a wider grid could move
    the point), else None."""
    rates = row["rates_compared"]
    if len(rates) < 2:
        return None
    return "top" if row["learning_rate"] == rates[-1] else "bottom" if row["learning_rate"] == rates[0] else None


def _lr_cell(row: dict) -> str:
    edge = grid_edge(row)
    return f"{row['learning_rate']:g}" + (f" ({edge} of the grid)" if edge else "")


def _mask_file_version(record: dict, variant: str) -> Optional[int]:
    """The mask-file version a compact export was written in; None where the record predates the field (those
    exports wrote version 3, whose plain header made a MiniLM export 1.7 to 3.4 KB larger; docs/mask_format.md)."""
    return record["storage"]["variants"][variant].get("mask_file_version")


def _format_cell(row: dict) -> str:
    version = row.get("mask_file_version")
    return f"{row['format']}, mask file v{version}" if version else row["format"]


def format_score(mean: float, std: float, seeds: int) -> str:
    """``mean ± std`` over several seeds; one seed has no spread to show, so its mean stands alone."""
    return f"{mean:.2f} ± {std:.2f}" if seeds > 1 else f"{mean:.2f}"


def markdown(summary: Dict[str, List[dict]], command: str) -> str:
    lines = ["# Score per stored byte: the frontier", "", f"Command: `{command}`", "",
             "Learning rate chosen on validation (mean over the search seeds) among the rates compared (those "
             "run on every search seed; one rate compared means no choice was made), test mean ± sample std over "
             "seeds (no ± for one seed); '(top of the grid)' or '(bottom of the grid)': the chosen rate is an end of "
             "the rates compared, so a wider grid could move the point. "
             "Bytes: the adapter as its method saves it (ProPETL: compact export, bf16 prototype and range-coded "
             "masks), head excluded (its bytes are the last column). ★: on the Pareto frontier of test score "
             "against bytes.", ""]
    for task, rows in summary.items():
        metric = rows[0]["main_metric"]
        lines += [f"## {task} (test {metric})", "",
                  "| method | lr | rates compared | seeds | validation | test | other test metrics "
                  "| bytes on disk (format) | other formats | head bytes | |",
                  "|---|---:|---|---|---:|---:|---|---:|---|---:|---|"]
        for r in sorted(rows, key=lambda r: r["bytes"]):
            others = ", ".join(f"{k} {v:,}" for k, v in r["other_formats"].items()) or "–"
            metrics = ", ".join(f"{m} {format_score(mean, std, len(r['seeds']))}"
                                for m, (mean, std) in r["other_metrics"].items()) or "–"
            lines.append(f"| {_label(r['method'])} | "
                         f"{_lr_cell(r)} | {'/'.join(f'{lr:g}' for lr in r['rates_compared'])} | "
                         f"{'/'.join(map(str, r['seeds']))} | {r['validation_mean']:.2f} | "
                         f"{format_score(r['test_mean'], r['test_std'], len(r['seeds']))} | {metrics} | "
                         f"{r['bytes']:,} ({_format_cell(r)}) | {others} | "
                         f"{r['head_bytes']:,} | {'★' if r['on_frontier'] else ''} |")
        lines.append("")
        lines += _goal_lines(rows)
    return "\n".join(lines)


LABEL_FONT_SIZE = 7
# Where a point's label may go, in order of preference: (dx, dy) offset in points and the text's alignment.
_LABEL_SIDES = ((5, 6, "left"), (5, -11, "left"), (-5, 6, "right"), (-5, -11, "right"))


Box = Tuple[float, float, float, float]  # x0, y0, x1, y1


def label_offsets(anchors: Sequence[Tuple[float, float]], texts: Sequence[str], font_size: float,
                  bounds: Optional[Box] = None, obstacles: Sequence[Box] = ()) -> List[Tuple[int, int, str]]:
    """For each point (its position in points) and its label, the first side of _LABEL_SIDES where the label's
    box (width estimated from its length) stays inside ``bounds`` (the axes) and overlaps neither a label placed
    before it nor one of ``obstacles`` (the drawn markers and error bars); failing that, the first side clear of
    labels, then the first side."""
    placed: List[Box] = []
    chosen = []
    for (x, y), text in zip(anchors, texts):
        width, height = 0.6 * font_size * len(text), 1.2 * font_size
        boxes = [((x + dx, y + dy, x + dx + width, y + dy + height) if align == "left" else
                  (x + dx - width, y + dy, x + dx, y + dy + height), (dx, dy, align)) for dx, dy, align in _LABEL_SIDES]
        clear_of_labels = [(b, side) for b, side in boxes
                           if not any(_overlap(b, p) for p in placed) and (bounds is None or _inside(b, bounds))]
        free = [(b, side) for b, side in clear_of_labels if not any(_overlap(b, o) for o in obstacles)]
        box, side = (free or clear_of_labels or boxes)[0]
        placed.append(box)
        chosen.append(side)
    return chosen


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(box: Box, bounds: Box) -> bool:
    return bounds[0] <= box[0] and box[2] <= bounds[2] and bounds[1] <= box[1] and box[3] <= bounds[3]


# Half the width, in points, of a marker and of an error bar's caps (capsize=3), as obstacles for labels.
_MARKER_HALF_WIDTH = 3.5


def _drawn_boxes(rows: Sequence[dict], axes, to_points: float) -> List[Box]:
    """The box, in points, of every drawn point with its error bar (the further exports' squares have none)."""
    boxes = []
    for r in rows:
        std = 0.0 if "@" in r["method"] else r["test_std"]
        (x, low), (_, high) = (to_points * axes.transData.transform((r["bytes"], r["test_mean"] + sign * std))
                               for sign in (-1, 1))
        boxes.append((x - _MARKER_HALF_WIDTH, min(low, high) - _MARKER_HALF_WIDTH,
                      x + _MARKER_HALF_WIDTH, max(low, high) + _MARKER_HALF_WIDTH))
    return boxes


def _bytes_tick(value: float) -> str:
    return f"{value / 1e6:g} MB" if value >= 1e6 else f"{value / 1e3:g} KB" if value >= 1e3 else f"{value:g} B"


def plot(summary: Dict[str, List[dict]], out_dir: str) -> List[str]:
    """One figure per task: test score against bytes on disk (log x), the Pareto frontier drawn; needs matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the frontier figure needs matplotlib: pip install 'propetl-adapters[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    colours = {"propetl": "#C44E52", "adapterhub": "#4C72B0", "peft": "#55A868"}
    written = []
    for task, rows in summary.items():
        figure, axes = plt.subplots(figsize=(8.0, 5.2))
        by_method = {r["method"]: r for r in rows}
        for family, colour in colours.items():
            members = [r for r in rows if r["family"] == family and "@" not in r["method"]]
            if members:
                axes.errorbar([r["bytes"] for r in members], [r["test_mean"] for r in members],
                              yerr=[r["test_std"] for r in members], fmt="o", color=colour, capsize=3, label=family)
        # A further compact export of a method (METHOD@VARIANT): an open square joined to the method's point.
        others = [r for r in rows if "@" in r["method"]]
        for r in others:
            base = by_method.get(r["method"].partition("@")[0])
            if base is not None:
                axes.plot([base["bytes"], r["bytes"]], [base["test_mean"], r["test_mean"]], color="grey",
                          linewidth=0.8, linestyle=":")
        if others:
            axes.scatter([r["bytes"] for r in others], [r["test_mean"] for r in others], marker="s",
                         facecolors="none", edgecolors=colours["propetl"], label="propetl, int8 export")
        front = sorted((r for r in rows if r["on_frontier"]), key=lambda r: r["bytes"])
        axes.step([r["bytes"] for r in front], [r["test_mean"] for r in front], where="post", color="black",
                  linewidth=1, linestyle="--", label="Pareto frontier")
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _bytes_tick(value)))
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("adapter bytes on disk (head excluded, log scale)")
        axes.set_ylabel(f"test {rows[0]['main_metric']}")
        axes.set_title(f"{task}: score against stored bytes")
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.canvas.draw()  # the limits and layout are final now, so points can be placed in the figure's points
        # Labels of the methods' own points only, each on the first side where it overlaps no earlier label.
        labelled = sorted((r for r in rows if "@" not in r["method"]), key=lambda r: r["bytes"])
        to_points = 72.0 / figure.dpi
        anchors = [tuple(to_points * axes.transData.transform((r["bytes"], r["test_mean"]))) for r in labelled]
        texts = [_label(r["method"]) for r in labelled]
        extent = axes.get_window_extent()
        bounds = (to_points * extent.x0, to_points * extent.y0, to_points * extent.x1, to_points * extent.y1)
        sides = label_offsets(anchors, texts, LABEL_FONT_SIZE, bounds, _drawn_boxes(rows, axes, to_points))
        for r, text, (dx, dy, align) in zip(labelled, texts, sides):
            axes.annotate(text, (r["bytes"], r["test_mean"]), fontsize=LABEL_FONT_SIZE, ha=align,
                          xytext=(dx, dy), textcoords="offset points")
        path = os.path.join(out_dir, f"frontier_{task}.png")
        figure.savefig(path, dpi=150)
        plt.close(figure)
        written.append(path)
    return written


def write_report(records: Sequence[dict], out_dir: str, command: str,
                 search_seeds: Optional[Sequence[int]] = None) -> Dict[str, List[dict]]:
    summary = summarise(records, search_seeds)
    atomic_write_text(os.path.join(out_dir, "summary.md"), markdown(summary, command))
    return summary
