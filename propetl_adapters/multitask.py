"""Multi-task ProPETL: hybrid layer/task masks (SPEC §1.3) and routing of examples to tasks.

A multi-task adapter keeps ONE prototype for all layers and tasks, a layer mask per layer
(shared by the tasks, owned by the layer module as in single-task ProPETL) and a task mask
per task (shared by the layers). Layer l runs task t with ``W ⊙ (m_l OR m_t)``; the OR is
``1 - (1 - m_l)(1 - m_t)`` on straight-through masks, so both score tensors get a gradient.

The task masks live in a ``TaskMasks`` module registered below the prototype dict
(``shared_parameters[name].task_masks``): they are saved, moved and replicated with it.

Which task an example belongs to comes, in this order, from
1. AdapterHub's ``task_ids`` forward argument (``model(**batch, task_ids=...)``): a tensor of
   indices into the config's task list, or a list of task names, one per example. A batch
   may mix tasks; each example is run with its own task mask;
2. the ``active_task(...)`` context manager: one task name for all examples, or one task per example
   (names or indices). This is the way to route ``model.generate``, which refuses unknown kwargs;
   rows expanded by beam search are matched to their example.
"""

import contextlib
import contextvars
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from adapters.context import ForwardContext
from torch import nn

from .configuration import parse_task_list, replace_adapter_config
from .masks import TensorMask, or_masks

TASK_MASKS_ATTRIBUTE = "task_masks"

_active_task: contextvars.ContextVar = contextvars.ContextVar("propetl_active_task", default=None)
_routed_task: contextvars.ContextVar = contextvars.ContextVar("propetl_routed_task", default=None)


class TaskRoutingError(ValueError):
    """A multi-task adapter ran without a task, or with a task it does not know."""


@contextlib.contextmanager
def active_task(task) -> Iterator[None]:
    """Run the forward passes inside this block with ``task``'s mask: a task name for every example, or a
    list of names / a tensor of task indices with one entry per example (``task_ids`` given to forward win)."""
    token = _active_task.set(task)
    try:
        yield
    finally:
        _active_task.reset(token)


@contextlib.contextmanager
def _routing(task: str) -> Iterator[None]:
    token = _routed_task.set(task)
    try:
        yield
    finally:
        _routed_task.reset(token)


def task_position(adapter_name: str, tasks: Sequence[str], task: str) -> int:
    """Index of ``task`` in an adapter's task list (TaskRoutingError naming the adapter's tasks otherwise)."""
    if task not in tasks:
        raise TaskRoutingError(f"adapter '{adapter_name}' has no task '{task}' (tasks: {list(tasks)}).")
    return list(tasks).index(task)


class TaskMasks(nn.Module):
    """One ``TensorMask`` per (task, masked prototype tensor), shared by every layer."""

    def __init__(self, adapter_name: str, tasks: Sequence[str], density: float, mode: str):
        super().__init__()
        self.adapter_name = adapter_name
        self.density = density
        self.mode = mode
        self.shapes: Dict[str, Tuple[int, ...]] = {}
        self.masks = nn.ModuleDict({task: nn.ModuleDict() for task in tasks})

    @property
    def tasks(self) -> List[str]:
        return list(self.masks.keys())

    def register_tensor(self, key: str, shape: Tuple[int, ...]):
        """Give every task a mask for the prototype tensor ``key`` (idempotent)."""
        if key in self.shapes:
            return
        self.shapes[key] = tuple(shape)
        for task, per_key in self.masks.items():
            per_key[key] = self._new_mask(task, key)

    def add_task(self, task: str) -> nn.ModuleDict:
        (task,) = parse_task_list([task], where="add_task")
        if task in self.masks:
            raise ValueError(f"adapter '{self.adapter_name}' already has a task named '{task}'.")
        self.masks[task] = nn.ModuleDict({key: self._new_mask(task, key) for key in self.shapes})
        return self.masks[task]

    def _new_mask(self, task: str, key: str) -> TensorMask:
        where = f"task mask '{task}' of {key} in adapter '{self.adapter_name}'"
        mask = TensorMask(self.shapes[key], self.density, self.mode, where)
        reference = next((p for p in self.parameters()), None)
        if reference is not None:  # follow the bank's device when a task is added after .to(device)
            mask.to(reference.device)
        return mask

    def task_index(self, task: str) -> int:
        return task_position(self.adapter_name, self.tasks, task)

    def mask(self, task: str, key: str) -> TensorMask:
        self.task_index(task)
        return self.masks[task][key]


def task_masks_of(prototype: nn.Module) -> Optional[TaskMasks]:
    return getattr(prototype, TASK_MASKS_ATTRIBUTE, None)


def attach_task_masks(prototype: nn.Module, bank: TaskMasks):
    prototype.add_module(TASK_MASKS_ATTRIBUTE, bank)


def current_task(bank: TaskMasks) -> str:
    """The task of the rows being computed (inside ``route_by_task``) or of the ``active_task`` block."""
    task = _routed_task.get() or _active_task.get()
    if task is not None and not isinstance(task, str):
        raise TaskRoutingError(f"adapter '{bank.adapter_name}': a per-example task list is routed only inside a "
                               "forward pass; name one task here.")
    if task is None:
        raise TaskRoutingError(
            f"adapter '{bank.adapter_name}' is multi-task (tasks {bank.tasks}) and no task is set: pass "
            "task_ids=... to the model's forward, or run inside `with propetl_adapters.active_task(name):`.")
    bank.task_index(task)
    return task


def hybrid_masked(weight: torch.Tensor, layer_mask: TensorMask, bank: Optional[TaskMasks], key: str) -> torch.Tensor:
    """``weight ⊙ m_l`` (single task) or ``weight ⊙ (m_l OR m_t)`` for the current task t."""
    if bank is None:
        return layer_mask.apply_to(weight)
    mask = or_masks(layer_mask(weight), _task_mask(bank, current_task(bank), key, weight))
    return weight * mask.to(weight.dtype)


def _task_mask(bank: TaskMasks, task: str, key: str, weight: torch.Tensor) -> torch.Tensor:
    """The task's mask of ``key``, computed once per forward pass: every layer shares it, and the
    straight-through gradients of all layers add up on the one output."""
    context = ForwardContext.get_context()
    if context is None:
        return bank.mask(task, key)(weight)
    cache = context.__dict__.setdefault("propetl_task_masks", {})
    cache_key = (id(bank), task, key, torch.is_grad_enabled())
    if cache_key not in cache:
        cache[cache_key] = bank.mask(task, key)(weight)
    return cache[cache_key]


def _context_task_ids() -> Optional[object]:
    context = ForwardContext.get_context()
    return getattr(context, "task_ids", None) if context is not None else None


def _task_indices(bank: TaskMasks, task_ids, batch_size: int, device) -> torch.Tensor:
    """One task index per row; ids given per example are repeated when rows were expanded (e.g. beams)."""
    if isinstance(task_ids, (list, tuple)) and task_ids and isinstance(task_ids[0], str):
        indices = torch.tensor([bank.task_index(t) for t in task_ids], device=device)
    else:
        indices = torch.as_tensor(task_ids, device=device).long().flatten()
        if indices.numel() and (indices.min() < 0 or indices.max() >= len(bank.tasks)):
            raise TaskRoutingError(f"task_ids must index the tasks {bank.tasks} of adapter "
                                   f"'{bank.adapter_name}'; got values in [{int(indices.min())}, "
                                   f"{int(indices.max())}].")
    if indices.numel() != batch_size:
        if indices.numel() == 0 or batch_size % indices.numel():
            raise TaskRoutingError(f"task_ids has {indices.numel()} entries but the batch has {batch_size} rows.")
        indices = indices.repeat_interleave(batch_size // indices.numel())
    return indices


def route_by_task(bank: Optional[TaskMasks], batch_size: int, device,
                  compute: Callable[[Optional[torch.Tensor]], torch.Tensor]) -> torch.Tensor:
    """Run ``compute(rows)`` once per task present in the batch and reassemble the rows in order.

    ``rows`` is None when the whole batch belongs to one task; otherwise a tensor of row indices.
    """
    if bank is None:
        return compute(None)
    task_ids = _context_task_ids()
    if task_ids is None:
        active = _active_task.get()
        if active is None or isinstance(active, str):
            return compute(None)
        task_ids = active
    indices = _task_indices(bank, task_ids, batch_size, device)
    present = torch.unique(indices).tolist()
    if len(present) == 1:
        with _routing(bank.tasks[present[0]]):
            return compute(None)
    output = None
    for index in present:
        rows = (indices == index).nonzero().squeeze(1)
        with _routing(bank.tasks[index]):
            part = compute(rows)
        if output is None:
            output = part.new_zeros((batch_size,) + tuple(part.shape[1:]))
        output = output.index_copy(0, rows, part)
    return output


def task_bank(model, adapter_name: str) -> TaskMasks:
    """The task masks of a multi-task ProPETL adapter (ValueError if it has none)."""
    prototype = model.base_model.shared_parameters[adapter_name] \
        if adapter_name in model.base_model.shared_parameters else None
    bank = task_masks_of(prototype) if prototype is not None else None
    if bank is None:
        raise ValueError(f"Adapter '{adapter_name}' is not a multi-task ProPETL adapter (its config has no tasks).")
    return bank


def add_task(model, adapter_name: str, task: str, trainable_modules: Sequence[nn.Module] = ()):
    """Add ``task`` to a trained multi-task adapter and train only its task mask (SPEC §1.3).

    The prototype, every layer mask and every other task's mask are frozen, so the old tasks' outputs
    do not change. ``trainable_modules`` (e.g. the new task's prediction head) stay trainable too.
    The adapter's config gains the task, so ``save_adapter`` / ``load_adapter`` round-trip it.
    """
    bank = task_bank(model, adapter_name)
    masks = bank.add_task(task)
    config = model.adapters_config.get(adapter_name)
    replace_adapter_config(model, adapter_name, config.replace(tasks=list(config.tasks) + [task]))
    for parameter in model.parameters():
        parameter.requires_grad = False
    for module in [masks, *trainable_modules]:
        for parameter in module.parameters():
            parameter.requires_grad = True
    return masks
