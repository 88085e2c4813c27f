"""Rows of every text-to-text task, from local files or from `datasets` (online).

Sources (the first one given is used):
1. ``data_dir``: ``<data_dir>/<task>/{train,validation,test}.jsonl``. Each line is either
   ``{"source": ..., "target": ...}`` or the task's raw fields (GLUE: sentence1, sentence2, label;
   XSum: document, summary; WMT16: ro, en or translation: {ro, en}). With no ``test.jsonl`` a GLUE
   task's validation file is split by the paper's rule (SPEC §3).
2. ``glue_dir`` (GLUE tasks only): the standard TSV layout, split by the paper's rule.
3. ``datasets.load_dataset`` (needs the hub): GLUE split by the paper's rule (MNLI selects on
   mismatched), XSum (``EdinburghNLP/xsum``) and WMT16 Ro-En (``wmt16``, config ``ro-en``) with their own
   train/validation/test splits, at the hub's current revision (none is pinned). A failure names
   ``--data_dir``, the offline way.
"""

import json
import os
from typing import Dict, List, Optional

import datasets

from .splits import paper_splits
from .glue import GlueDataError, load_glue_dir, load_glue_online
from .text_tasks import TextTask

SPLITS = ("train", "validation", "test")
ONLINE = {"xsum": ("EdinburghNLP/xsum",), "wmt16_ro_en": ("wmt16", "ro-en")}


def read_jsonl(path: str) -> List[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise GlueDataError(f"{path}, line {number}: not valid JSON ({err.msg})") from err
    if not rows:
        raise GlueDataError(f"{path}: no rows")
    return rows


def _to_text(task: TextTask, rows: List[dict], where: str) -> List[dict]:
    try:
        return [task.to_text(row) for row in rows]
    except (KeyError, IndexError, ValueError, TypeError) as err:
        raise GlueDataError(f"{where}: a row lacks the fields of task '{task.name}' ({err!r}); expected "
                            "'source' and 'target', or the task's raw fields") from err


def _from_data_dir(task: TextTask, data_dir: str, split_seed: int) -> Dict[str, List[dict]]:
    folder = os.path.join(data_dir, task.name)
    files = {split: os.path.join(folder, f"{split}.jsonl") for split in SPLITS}
    present = {split: path for split, path in files.items() if os.path.isfile(path)}
    if "train" not in present or "validation" not in present:
        raise GlueDataError(f"{folder}: expected train.jsonl and validation.jsonl (and test.jsonl), found "
                            f"{sorted(os.path.basename(p) for p in present.values()) or 'none'}")
    raw = {split: read_jsonl(path) for split, path in present.items()}
    if "test" not in raw:
        if task.glue is None:
            raise GlueDataError(f"{folder}: test.jsonl is missing (only GLUE tasks split their validation set)")
        raw = paper_splits(task.glue, raw, seed=split_seed)
    return {split: _to_text(task, rows, files[split]) for split, rows in raw.items()}


def load_text_task(task: TextTask, data_dir: Optional[str] = None, glue_dir: Optional[str] = None,
                   split_seed: int = 42) -> Dict[str, List[dict]]:
    """``{"train": [...], "validation": [...], "test": [...]}`` of source/target rows."""
    if data_dir:
        if not os.path.isdir(os.path.join(data_dir, task.name)):
            raise GlueDataError(f"--data_dir {data_dir}: no folder '{task.name}' with train/validation/test.jsonl")
        return _from_data_dir(task, data_dir, split_seed)
    if task.glue is not None:
        if glue_dir:
            raw, where = load_glue_dir(glue_dir, task.glue), os.path.join(glue_dir, task.glue.folder)
        else:
            raw, where = load_glue_online(task.glue), f"datasets glue/{task.glue.hf_config}"
        splits = paper_splits(task.glue, raw, seed=split_seed, mnli_mismatched_validation=task.name == "mnli")
        return {split: _to_text(task, rows, where) for split, rows in splits.items()}
    call = f"datasets.load_dataset{ONLINE[task.name]!r}"
    try:
        loaded = datasets.load_dataset(*ONLINE[task.name])
        missing = [split for split in SPLITS if split not in loaded]
        if missing:
            raise KeyError(f"no split {missing} among {sorted(loaded)}")
    except Exception as err:  # network, hub, cache and format failures have many exception types
        first_line = (str(err).strip().splitlines() or [""])[0]
        raise GlueDataError(f"could not load task '{task.name}' with {call}: {type(err).__name__}: {first_line}. "
                            f"Offline, pass --data_dir DIR with {task.name}/{{train,validation,test}}.jsonl "
                            "(see docs/run_seq2seq.md)") from err
    return {split: _to_text(task, list(loaded[split]), call) for split in SPLITS}
