"""Test scores of trained run_glue.py adapters with the prototype stored in fp32, bfloat16, float16 and int8.

For each run folder (``run_arguments.json`` and the exported ``adapter/``), the adapter is loaded as saved
(fp32 prototype, 1-bit masks), then written with ``save_compact`` for each compact format (16-bit floats, or
int8 per row with a bfloat16 scale) and loaded back from that folder, exactly as a user would ship it. Every
variant is evaluated in fp32 on the run's test half, so the only difference between the rows is the stored
prototype.

    python -m benchmarks.compact_accuracy outputs/evidence/fixed/stsb/proadapter/seed42 [RUN ...] [--json FILE]
        [--dtypes float32 int8]
"""

import argparse
import json
import os
import tempfile
from typing import Dict, List, Optional

import numpy as np
import torch

DTYPES = ("float32", "bfloat16", "float16", "int8")


def load_test_split(run_arguments: dict):
    """The task, tokenizer and tokenized test half of a run, from its run_arguments.json contents."""
    from transformers import AutoTokenizer

    from propetl_adapters.data.glue import tokenize_split
    from propetl_adapters.experiments.glue import DataArguments, load_task_data

    data_args = DataArguments(**run_arguments["DataArguments"])
    task = load_task_data(data_args)
    model_path = run_arguments["ModelArguments"]["model_name_or_path"]
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    test = tokenize_split(task.splits["test"], tokenizer, data_args.max_seq_length, False, task.is_regression)
    return task, tokenizer, test


@torch.no_grad()
def evaluate_model(model, task, tokenizer, test, batch_size: int = 64) -> Dict[str, float]:
    """The task metrics of ``model`` on the tokenized rows ``test`` (the model is put in eval mode)."""
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer)
    model.eval()
    predictions, labels = [], []
    for start in range(0, len(test), batch_size):
        batch = collate([test[i] for i in range(start, min(start + batch_size, len(test)))])
        labels.append(batch.pop("labels").numpy())
        logits = model(**batch).logits.float().numpy()
        predictions.append(logits.reshape(-1) if task.is_regression else logits.argmax(axis=-1))
    return task.compute_metrics(np.concatenate(predictions), np.concatenate(labels))


def write_compact_exports(model_path: str, exported: str, folders: Dict[str, str],
                          safetensors_folders: Optional[Dict[str, str]] = None) -> str:
    """Load the adapter folder ``exported`` once and write it with ``save_compact`` (head included) in each
    prototype format of ``folders`` (format -> folder), and with ``use_safetensors=True`` in each of
    ``safetensors_folders``; returns the adapter's name."""
    from propetl_adapters.experiments.common import load_adapter_model
    from propetl_adapters.serialization import save_compact

    source = load_adapter_model(model_path)
    name = source.load_adapter(exported, set_active=True)
    for use_safetensors, targets in ((False, folders), (True, safetensors_folders or {})):
        for prototype_dtype, folder in targets.items():
            save_compact(source, folder, name, prototype_dtype=prototype_dtype, with_head=True,
                         use_safetensors=use_safetensors)
    return name


def load_exported(model_path: str, folder: str):
    """A fresh model with the adapter (and head) of ``folder`` loaded and active, exactly as a user would."""
    from propetl_adapters.experiments.common import load_adapter_model

    model = load_adapter_model(model_path)
    model.load_adapter(folder, set_active=True)
    return model


def measure(run_dir: str, dtypes=DTYPES) -> List[dict]:
    import propetl_adapters  # noqa: F401  (registers the configs)
    from propetl_adapters.storage import folder_bytes

    with open(os.path.join(run_dir, "run_arguments.json"), encoding="utf-8") as handle:
        run_arguments = json.load(handle)
    model_path = run_arguments["ModelArguments"]["model_name_or_path"]
    task, tokenizer, test = load_test_split(run_arguments)
    exported = os.path.join(run_dir, "adapter")
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = {dtype: os.path.join(tmp, dtype) for dtype in dtypes if dtype != "float32"}
        if folders:
            write_compact_exports(model_path, exported, folders)
        for dtype in dtypes:
            folder = folders.get(dtype, exported)
            model = load_exported(model_path, folder)
            records.append({"run": run_dir, "task": task.name, "prototype_dtype": dtype,
                            "adapter_bytes": folder_bytes(folder), "test": evaluate_model(model, task, tokenizer, test)})
            print(json.dumps(records[-1]), flush=True)
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run_glue.py output folders of ProPETL runs")
    parser.add_argument("--json", help="also write every record to this file")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES),
                        help="the prototype formats to measure (default: all; float32 is the export as saved)")
    args = parser.parse_args(argv)
    records = [record for run in args.runs for record in measure(run, args.dtypes)]
    if args.json:
        from propetl_adapters.atomic import atomic_write_json
        atomic_write_json(args.json, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
