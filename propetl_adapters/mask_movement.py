"""How far training moved the learned masks from their initial random draw.

For each trained mask (its scores require a gradient): the share of its kept entries that were not kept at
initialisation. 0 means training left the initial random mask as it was; ``1 − k`` is what a fresh random
mask of the same density would give, so a value near it means the mask was chosen anew. The figure answers
"did my masks learn anything?", which a score alone cannot: a prototype can score well on its initial masks.

``MaskMovementCallback`` records it during training: it keeps the initial masks in the run folder (so that a
resumed run measures from the same draw) and the value at every evaluation; the trainers of
``training.py`` carry one and put its summary in the results.
"""

import io
import json
import logging
import os
from typing import Dict, List, Optional

import numpy as np
import torch
from transformers import TrainerCallback

from .atomic import atomic_write_bytes, atomic_write_json
from .mask_io import pack_mask, unpack_mask
from .masks import TensorMask

logger = logging.getLogger(__name__)

INITIAL_MASKS_FILE = "initial_masks.npz"  # the packed 0/1 masks at step 0, one array per trained mask
MASK_MOVEMENT_FILE = "mask_movement.json"  # the movement at every evaluation so far


def trained_masks(model: torch.nn.Module) -> Dict[str, TensorMask]:
    """Every learned mask whose scores train, by module name (a mask shared by several layers appears once)."""
    return {name: module for name, module in model.named_modules()
            if isinstance(module, TensorMask) and module.learned and module.scores.requires_grad}


def mask_snapshot(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The current 0/1 mask of every trained mask, as bool tensors on the CPU."""
    with torch.no_grad():
        return {name: mask.binary().detach().to("cpu", torch.bool) for name, mask in trained_masks(model).items()}


def save_snapshot(path: str, snapshot: Dict[str, torch.Tensor]):
    """Write a snapshot as bit-packed arrays (an eighth of a bool tensor's bytes), atomically."""
    arrays = {}
    for index, (name, mask) in enumerate(snapshot.items()):
        arrays[f"name_{index}"] = np.array(name)
        arrays[f"shape_{index}"] = np.array(mask.shape, dtype=np.int64)
        arrays[f"bits_{index}"] = np.frombuffer(pack_mask(mask), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, count=np.array(len(snapshot)), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_snapshot(path: str) -> Dict[str, torch.Tensor]:
    with np.load(path) as data:
        snapshot = {}
        for index in range(int(data["count"])):
            shape = tuple(int(n) for n in data[f"shape_{index}"])
            snapshot[str(data[f"name_{index}"])] = unpack_mask(data[f"bits_{index}"].tobytes(), shape)
    return snapshot


def movement(initial: Dict[str, torch.Tensor], model: torch.nn.Module) -> Optional[dict]:
    """The movement of ``model``'s trained masks since ``initial``, or None when it has none.

    ``moved``: the share of all kept entries that were not kept at the start (every mask weighted by its kept
    count); ``least_moved`` / ``most_moved``: the extremes over the masks; ``fresh_draw_level``: the same share
    for masks drawn afresh at random, ``1 − k`` of each mask, weighted alike.

    Raises:
        ValueError: the model's trained masks are not the snapshot's (another configuration).
    """
    current = mask_snapshot(model)
    if not current:
        return None
    if set(current) != set(initial) or any(current[n].shape != initial[n].shape for n in current):
        raise ValueError(f"the model's {len(current)} trained masks do not match the {len(initial)} masks of the "
                         "initial snapshot (names or shapes differ)")
    kept = {name: int(mask.sum()) for name, mask in current.items()}
    moved = {name: int((mask & ~initial[name]).sum()) / max(kept[name], 1) for name, mask in current.items()}
    fresh = {name: 1.0 - kept[name] / mask.numel() if mask.numel() else 0.0 for name, mask in current.items()}
    total_kept = max(sum(kept.values()), 1)

    def weighted(values: Dict[str, float]) -> float:  # masks of another density (hybrid task masks) count apart
        return sum(values[name] * kept[name] for name in values) / total_kept

    return {"moved": weighted(moved), "least_moved": min(moved.values()), "most_moved": max(moved.values()),
            "fresh_draw_level": weighted(fresh), "masks": len(current)}


class MaskMovementCallback(TrainerCallback):
    """Measures ``movement`` at every evaluation and once training ends (after the best checkpoint is loaded).

    The initial masks are saved to ``output_dir/initial_masks.npz`` at step 0; a run resumed from a checkpoint
    reads them back, so its figures are measured from the same draw. The history is kept in
    ``output_dir/mask_movement.json``. A model without trained masks records nothing.
    """

    def __init__(self):
        self.initial: Optional[Dict[str, torch.Tensor]] = None
        self.history: List[dict] = []
        self.final: Optional[dict] = None
        self.training = False  # the evaluations of the finished model (validation, test) are not history

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.initial, self.history, self.final, self.training = None, [], None, True
        if model is None or not trained_masks(model):
            return
        folder = args.output_dir
        initial_path = os.path.join(folder, INITIAL_MASKS_FILE)
        if state.global_step == 0:
            self.initial = mask_snapshot(model)
            if state.is_world_process_zero:
                os.makedirs(folder, exist_ok=True)
                save_snapshot(initial_path, self.initial)
            return
        if not os.path.isfile(initial_path):
            logger.warning("resumed at step %d without %s: the mask movement is not measured", state.global_step,
                           initial_path)
            return
        self.initial = load_snapshot(initial_path)
        history_path = os.path.join(folder, MASK_MOVEMENT_FILE)
        if os.path.isfile(history_path):
            with open(history_path, encoding="utf-8") as handle:
                self.history = [h for h in json.load(handle)["history"] if h["step"] <= state.global_step]

    def _measure(self, model) -> Optional[dict]:
        if self.initial is None or model is None:
            return None
        try:
            return movement(self.initial, model)
        except ValueError as err:
            logger.warning("mask movement not measured: %s", err)
            self.initial = None
            return None

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not self.training or (self.history and self.history[-1]["step"] == state.global_step):
            return  # a multi-task evaluation fires once per task; the masks are those of the same step
        measured = self._measure(model) if state.is_world_process_zero else None  # the process that records
        if measured is None:
            return
        self.history.append({"step": state.global_step, "moved": measured["moved"]})
        atomic_write_json(os.path.join(args.output_dir, MASK_MOVEMENT_FILE), {"history": self.history})

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.final = self._measure(model) if state.is_world_process_zero else None
        self.training = False

    def summary(self) -> Optional[dict]:
        """The final movement (of the model as training left it) with the history, or None without masks."""
        if self.final is None:
            return None
        return {**self.final, "history": list(self.history)}
