"""The run folder: the one place that names its files and knows its states (fresh, resumable, finished).

Every runner (``run_glue.py``, ``run_seq2seq.py``, ``run_multitask_encoder.py``) writes::

    output_dir/
        checkpoint-*/          Trainer checkpoints (resumed automatically while DONE is absent)
        run_arguments.json     run_glue.py: the arguments of the latest start, compared on resume
        adapter/               the exported adapter (ProPETL: prototype + 1-bit masks)
        model/                 full fine-tuning only: the fine-tuned model
        all_results.json       metrics, storage, wall time, command line
        DONE                   written last; a folder with DONE is finished and is not rerun

and every reader (``propetl-table``, ``propetl-plot``, the multi-task table) reads it through
``read_results`` / ``walk_results``. The shell grids (``scripts/common.sh``, ``scripts/seq2seq_common.sh``)
test for ``DONE`` themselves to skip finished runs; they name this module next to that test.
"""

import json
import logging
import os
import shutil
import time
from typing import List, Optional, Tuple

from ..atomic import atomic_write_json

logger = logging.getLogger(__name__)

DONE_FILE = "DONE"
RESULTS_FILE = "all_results.json"
ARGUMENTS_FILE = "run_arguments.json"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
CHECKPOINT_PREFIX = "checkpoint-"
RESUMED_TRAIN_LOSS_NOTE = ("resumed run: train_loss is the Trainer's sum of the losses of the steps run after "
                           "resuming divided by all steps, so it is lower than an uninterrupted run's; compare "
                           "the losses logged in the checkpoints' trainer_state.json instead")


class ResultsError(ValueError):
    """No usable results, or a results file that cannot be read; the message names the file or folder."""


# ---------------------------------------------------------------------------
# State of one folder
# ---------------------------------------------------------------------------


def checkpoint_folders(output_dir: str) -> List[str]:
    """The Trainer's ``checkpoint-<step>`` folders, oldest step first."""
    folders = [os.path.join(output_dir, name) for name in os.listdir(output_dir)
               if name.startswith(CHECKPOINT_PREFIX) and os.path.isdir(os.path.join(output_dir, name))] \
        if os.path.isdir(output_dir) else []
    return sorted(folders, key=lambda p: int(p.rsplit("-", 1)[-1]) if p.rsplit("-", 1)[-1].isdigit() else -1)


def resumable_checkpoint(output_dir: str) -> Optional[str]:
    """The last checkpoint that was written completely (its trainer_state.json is written last)."""
    complete = [c for c in checkpoint_folders(output_dir) if os.path.isfile(os.path.join(c, "trainer_state.json"))]
    return complete[-1] if complete else None


def is_done(output_dir: str) -> bool:
    return os.path.isfile(os.path.join(output_dir, DONE_FILE))


def finished_results(output_dir: str, overwrite: bool) -> Optional[dict]:
    """The recorded results of a finished run (``DONE`` marker), or None when the run is to be (re)done."""
    if overwrite or not is_done(output_dir):
        return None
    if not os.path.isfile(os.path.join(output_dir, RESULTS_FILE)):
        raise ResultsError(f"{output_dir} has a {DONE_FILE} marker but no {RESULTS_FILE}; remove the marker or pass "
                           "--overwrite_output_dir")
    logger.info("%s has a %s marker: the run is finished, nothing to do (use --overwrite_output_dir to rerun)",
                output_dir, DONE_FILE)
    return read_results(output_dir)


def clear_finished(output_dir: str):
    """Remove what a previous run left (results, marker, checkpoints, exports) before starting again."""
    if not os.path.isdir(output_dir):
        return
    for name in (DONE_FILE, RESULTS_FILE):
        if os.path.exists(os.path.join(output_dir, name)):
            os.remove(os.path.join(output_dir, name))
    for folder in checkpoint_folders(output_dir) + [os.path.join(output_dir, ADAPTER_DIR),
                                                    os.path.join(output_dir, MODEL_DIR)]:
        shutil.rmtree(folder, ignore_errors=True)


def export_folder(output_dir: str, adapter: bool) -> str:
    """Where a run exports its adapter (``adapter/``) or, for full fine-tuning, its model (``model/``)."""
    return os.path.join(output_dir, ADAPTER_DIR if adapter else MODEL_DIR)


def finish(output_dir: str, results: dict, delete_checkpoints: bool) -> dict:
    """Write ``all_results.json`` (atomically), drop the checkpoints if asked, then write ``DONE``; returns the
    results exactly as the file holds them (string keys)."""
    results = json.loads(json.dumps(results, default=str))
    atomic_write_json(os.path.join(output_dir, RESULTS_FILE), results)
    if delete_checkpoints:
        for folder in checkpoint_folders(output_dir):
            shutil.rmtree(folder, ignore_errors=True)
    with open(os.path.join(output_dir, DONE_FILE), "w", encoding="utf-8") as handle:
        handle.write(f"finished {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    logger.info("results written to %s", os.path.join(output_dir, RESULTS_FILE))
    return results


# ---------------------------------------------------------------------------
# Reading results
# ---------------------------------------------------------------------------


def read_results(folder: str) -> dict:
    """The ``all_results.json`` object of one run folder."""
    path = os.path.join(folder, RESULTS_FILE)
    if not os.path.isfile(path):
        raise ResultsError(f"{path} not found")
    try:
        with open(path, encoding="utf-8") as handle:
            results = json.load(handle)
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from err
    except OSError as err:
        raise ResultsError(f"{path}: cannot read ({err})") from err
    if not isinstance(results, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(results).__name__}")
    return results


def walk_results(root: str, finished_only: bool = True) -> Tuple[List[str], List[str]]:
    """``([run folders holding all_results.json], [skipped folders with a reason])`` below ``root``, in sorted
    order; checkpoint folders are not searched, and ``finished_only`` skips folders without ``DONE``."""
    if not os.path.isdir(root):
        raise ResultsError(f"{root}: not a folder; expected a results tree holding */{RESULTS_FILE}")
    found, skipped = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(CHECKPOINT_PREFIX))
        if RESULTS_FILE not in files:
            continue
        if finished_only and DONE_FILE not in files:
            skipped.append(f"{folder} (no {DONE_FILE} marker: unfinished)")
            continue
        found.append(folder)
    return found, skipped
