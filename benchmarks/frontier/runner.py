"""One run of the frontier: its run_glue.py arguments, the training, the storage in the method's own format, and
its JSON record (written atomically; a run with a record is finished and is skipped)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

from benchmarks.compact_accuracy import evaluate_model, load_exported, load_test_split, write_compact_exports
from benchmarks.protocol import protocol_flags

from ._project import (MASK_FILE_NAME, atomic_write_json, folder_bytes, parse_arguments, read_mask_file, run,
                       storage_report)
from .plan import DEFAULT_POOLING, MASK_LR_RATIO, METHODS, Method, Run

logger = logging.getLogger(__name__)
# The compact exports measured for every ProPETL run: storage variant -> (prototype format, folder). The first
# is the format a ProPETL row counts; each other one becomes a row of its own (report.py).
COMPACT_VARIANTS = {"compact_bf16": ("bfloat16", "compact"), "compact_int8": ("int8", "compact_int8")}


@dataclass
class Settings:
    model: str
    glue_dir: str
    out_dir: str
    epochs: Optional[float] = None
    max_steps: Optional[int] = None
    bf16: bool = True
    train_batch_size: int = 32
    eval_batch_size: int = 64
    max_seq_length: int = 128
    max_train_samples: Optional[int] = None  # smoke checks only: the protocol uses every example
    max_eval_samples: Optional[int] = None
    pooling: str = DEFAULT_POOLING  # the task head of every method alike

    @property
    def records_dir(self) -> str:
        return os.path.join(self.out_dir, "records")


def run_dir(settings: Settings, r: Run) -> str:
    return os.path.join(settings.out_dir, "runs", r.task, r.method, f"lr{r.learning_rate:g}",
                        f"seed{r.seed}_{r.budget}")


def record_path(settings: Settings, r: Run) -> str:
    return os.path.join(settings.records_dir, f"{r.run_id}.json")


def sample_flags(settings: Settings) -> List[str]:
    return [a for flag, value in (("--max_train_samples", settings.max_train_samples),
                                  ("--max_eval_samples", settings.max_eval_samples)) if value
            for a in (flag, str(value))]


def pooling_flags(settings: Settings) -> List[str]:
    return [] if settings.pooling == DEFAULT_POOLING else ["--pooling", settings.pooling]


def protocol_argv(settings: Settings, r: Run) -> List[str]:
    """run_glue.py arguments of the protocol in docs/results.md, shared by every method."""
    from .plan import TASK_EPOCHS

    argv = protocol_flags(settings.model, r.task, settings.glue_dir, r.seed, run_dir(settings, r),
                          f"{r.learning_rate:g}", settings.train_batch_size, settings.eval_batch_size,
                          settings.max_seq_length) + ["--use_cpu"]
    argv += sample_flags(settings) + pooling_flags(settings)
    if settings.max_steps:
        argv += ["--max_steps", str(settings.max_steps)]
    else:
        argv += ["--num_train_epochs", f"{settings.epochs if settings.epochs is not None else TASK_EPOCHS[r.task]:g}"]
    return argv + (["--bf16"] if settings.bf16 else [])


def method_argv(method: Method, learning_rate: float) -> List[str]:
    """The AdapterHub / ProPETL flags of a method (none for PEFT methods, which are not run_glue.py configs)."""
    if method.family == "peft":
        return []
    argv = ["--train_adapter", "--adapter_config", method.config]
    if method.family == "propetl":
        argv += ["--mask_learning_rate", f"{MASK_LR_RATIO * learning_rate:g}"]
    return argv


def _compacts(results: dict, folder: str) -> Dict[str, dict]:
    """Per storage variant of COMPACT_VARIANTS, the compact export of a finished ProPETL run (written into
    ``folder``), its storage and its test score when loaded back from that export. Each export is also written
    with ``use_safetensors=True`` (PEFT's container), as storage variant ``VARIANT_safetensors``: the same values
    in a smaller container, so only its bytes are measured."""
    model_path = results["model_name_or_path"]
    folders = {variant: os.path.join(folder, name) for variant, (_, name) in COMPACT_VARIANTS.items()}
    containers = {variant: path + "_safetensors" for variant, path in folders.items()}
    name = write_compact_exports(model_path, results["exported_to"],
                                 {COMPACT_VARIANTS[variant][0]: path for variant, path in folders.items()},
                                 {COMPACT_VARIANTS[variant][0]: path for variant, path in containers.items()})
    task, tokenizer, test = load_test_split(results["arguments"])
    limit = results["arguments"]["DataArguments"]["max_eval_samples"]
    test = test.select(range(min(limit, len(test)))) if limit else test  # the rows run_glue.py tested on
    compacts = {}
    for variant, compact_dir in folders.items():
        model = load_exported(model_path, compact_dir)
        figures = storage_report(model, name, saved_folder=compact_dir).propetl
        compacts[variant] = {
            "storage": {"bytes_on_disk": figures.bytes_on_disk, "bits": figures.bls_bits,
                        "values_by_bits": figures.stored_parameters_by_bits,
                        "coded_mask_entries": figures.coded_mask_entries, "coded_mask_bits": figures.coded_mask_bits,
                        "prototype_dtype": COMPACT_VARIANTS[variant][0], "folder": compact_dir,
                        # the mask file's header shrank in version 4: bytes of two versions are not comparable
                        "mask_file_version": read_mask_file(os.path.join(compact_dir, MASK_FILE_NAME)).version},
            "test": evaluate_model(model, task, tokenizer, test)}
        compacts[variant]["safetensors"] = {
            **compacts[variant]["storage"], "bytes_on_disk": folder_bytes(containers[variant]),
            "folder": containers[variant], "weights_format": "safetensors"}
    return compacts


def _adapterhub_record(method: Method, argv: List[str]) -> dict:
    results = run(*parse_arguments(argv), command_line=shlex.join(["python", "run_glue.py", *argv]))
    storage = results["storage"]
    fp32 = {"bytes_on_disk": storage["bytes_on_disk"], "bits": storage["bls_bits"],
            "values_by_bits": storage["stored_parameters_by_bits"], "folder": results["exported_to"]}
    record = {"validation": results["validation"], "test": results["test"], "main_metric": results["main_metric"],
              "head": {"parameters": storage["head_parameters"], "bytes_on_disk": storage["head_bytes_on_disk"]},
              "trainable_parameters": results["trainable_parameters"], "training": results["training"],
              "examples": results["examples"], "command": results["command_line"], "versions": results["versions"],
              # run_glue.py's own time (training, evaluation, export): the same whether it trained now or a
              # finished run folder was picked up again, unlike the time this call took
              "run_wall_time_seconds": results["wall_time_seconds"]}
    if method.family == "propetl":
        compact = _compacts(results, os.path.dirname(results["exported_to"]))
        counted = next(iter(COMPACT_VARIANTS))
        record["storage"] = {"format": counted, "variants": {**{v: c["storage"] for v, c in compact.items()},
                                                             **{f"{v}_safetensors": c["safetensors"]
                                                                for v, c in compact.items()},
                                                             "fp32": fp32}}
        record["compact_tests"] = {variant: c["test"] for variant, c in compact.items()}
        record["compact_test"] = compact[counted]["test"]
    else:
        record["storage"] = {"format": "fp32", "variants": {"fp32": fp32}}
    return record


def _peft_record(method: Method, argv: List[str], command: str) -> dict:
    from .peft_runner import train_peft

    results = train_peft(argv, method, command_line=command)
    variants = results.pop("storage_variants")
    results["storage"] = {"format": method.storage_variants[0], "variants": variants}
    results["command"] = results.pop("command_line")
    return results


def reproduce_command(settings: Settings, r: Run) -> str:
    """The frontier command that makes exactly this run (into the same output folder)."""
    argv = ["python", "-m", "benchmarks.frontier", "--out_dir", settings.out_dir, "--model", settings.model,
            "--glue_dir", settings.glue_dir, "--tasks", r.task, "--methods", r.method, "--seeds", str(r.seed),
            "--lr_grid", f"{r.method}={r.learning_rate:g}"]
    argv += sample_flags(settings) + pooling_flags(settings)
    if settings.max_steps:
        argv += ["--max_steps", str(settings.max_steps)]
    elif settings.epochs is not None:
        argv += ["--epochs", f"{settings.epochs:g}"]
    return shlex.join(argv + ([] if settings.bf16 else ["--no_bf16"]))


def execute(settings: Settings, r: Run) -> dict:
    """Train and measure one run and write its record; returns the record."""
    method = METHODS[r.method]
    argv = protocol_argv(settings, r) + method_argv(method, r.learning_rate)
    command = reproduce_command(settings, r)
    started = time.time()
    if method.family == "peft":
        record = _peft_record(method, argv, command)
    else:
        record = _adapterhub_record(method, argv)
    record["wall_time_seconds"] = time.time() - started  # this call: training and measurement, or measurement only
    metric = record["main_metric"]
    chosen = record["storage"]["variants"][record["storage"]["format"]]
    record.update({
        "run_id": r.run_id, "task": r.task, "method": r.method, "family": method.family, "config": method.config,
        "peft_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in method.peft_kwargs},
        "seed": r.seed, "learning_rate": r.learning_rate, "budget": r.budget,
        "mask_learning_rate": MASK_LR_RATIO * r.learning_rate if method.family == "propetl" else None,
        "head_learning_rate": method.head_learning_rate if method.head_learning_rate is not None else r.learning_rate,
        "validation_score": record["validation"][metric], "test_score": record["test"][metric],
        "compact_test_score": record["compact_test"][metric] if "compact_test" in record else None,
        "compact_test_scores": {v: test[metric] for v, test in record.get("compact_tests", {}).items()},
        "run_glue_argv": argv, "reproduce": command, "run_dir": run_dir(settings, r),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    })
    record["storage"]["bytes_on_disk"] = chosen["bytes_on_disk"]
    record["storage"]["bits"] = chosen["bits"]
    record = json.loads(json.dumps(record, default=str))  # exactly what the file holds
    os.makedirs(settings.records_dir, exist_ok=True)
    atomic_write_json(record_path(settings, r), record)
    return record


def load_record(settings: Settings, r: Run) -> Optional[dict]:
    """The run's finished record, or None (no record; an unreadable one is reported and the run is redone)."""
    path = record_path(settings, r)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except json.JSONDecodeError as err:
        logger.warning("%s: unreadable record (%s); the run is made again", path, err)
        return None
    return record if record.get("run_id") == r.run_id else None


def load_all_records(settings: Settings) -> List[dict]:
    return read_records(settings.records_dir)


def read_records(records_dir: str) -> List[dict]:
    """Every ``*.json`` record of a folder, by file name; a missing folder has none."""
    records = []
    if os.path.isdir(records_dir):
        for name in sorted(os.listdir(records_dir)):
            if name.endswith(".json"):
                with open(os.path.join(records_dir, name), encoding="utf-8") as handle:
                    records.append(json.load(handle))
    return records

