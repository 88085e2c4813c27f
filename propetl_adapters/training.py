"""Trainers: AdamW parameter groups that give masks their own learning rate and weight decay, and training
several tasks at once.

Multi-task training (``run_seq2seq.py``: T5, one seq2seq head, text-to-text tasks; ``run_multitask_encoder.py``:
one classification head per task): every batch holds ONE task, drawn with probability
``p_t ∝ (n_t / N) ** (1 / T)`` (SPEC §3, T = 10). The batch carries a ``task_ids`` column; the trainer
turns it into ``active_task(name)`` (and ``head=name`` for per-task heads), so the hybrid masks
(``multitask.py``) see the task. Evaluation runs each task's split and reports ``<task>_<metric>``,
``<task>_score`` (mean of the task's metrics) and ``average`` (mean of the task scores), the
metric the best checkpoint is chosen by.
"""

import contextlib
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from adapters import AdapterTrainer, Seq2SeqAdapterTrainer
from torch.utils.data import ConcatDataset, DataLoader, Sampler
from transformers import Seq2SeqTrainer, Trainer
from transformers.trainer_pt_utils import get_parameter_names

from .configuration import is_propetl_config
from .mask_movement import MaskMovementCallback
from .masks import TensorMask
from .multitask import active_task

NO_DECAY_TYPES = (torch.nn.LayerNorm,)


def mask_score_parameters(model: torch.nn.Module) -> List[torch.nn.Parameter]:
    """Score tensors of every learned mask in the model (each once)."""
    seen, scores = set(), []
    for module in model.modules():
        if isinstance(module, TensorMask) and module.learned and id(module.scores) not in seen:
            seen.add(id(module.scores))
            scores.append(module.scores)
    return scores


def reference_mask_learning_rate(model: torch.nn.Module, learning_rate: float) -> float:
    """``learning_rate`` times the reference scripts' mask/prototype ratio of the model's ProPETL adapters
    (ProAdapter 30, ProLoRA 300, ProPrefix 1); ValueError when adapters with different ratios train together."""
    configs = getattr(model, "adapters_config", None)
    ratios = {}
    for name in configs.adapters if configs is not None else ():
        config = configs.get(name)
        if is_propetl_config(config):
            ratios[type(config).__name__] = config.reference_mask_lr_ratio
    if len(set(ratios.values())) > 1:
        raise ValueError(f"adapters {sorted(ratios)} have different reference mask learning rates "
                         f"({ratios} x the learning rate); pass mask_learning_rate explicitly.")
    return learning_rate * next(iter(ratios.values()), 1.0)


def propetl_parameter_groups(model: torch.nn.Module, weight_decay: float, mask_learning_rate: Optional[float] = None,
                             mask_weight_decay: Optional[float] = None,
                             learning_rate: Optional[float] = None) -> List[Dict]:
    """Up to four AdamW groups: (non-mask | mask) x (decay | no decay). Biases and layer norms never decay.

    ``mask_learning_rate=None`` keeps the masks at the main learning rate; ``mask_weight_decay=None`` decays the
    scores like every other weight (``weight_decay``), as the reference does.
    """
    if mask_weight_decay is None:
        mask_weight_decay = weight_decay
    decay_names = set(get_parameter_names(model, list(NO_DECAY_TYPES)))
    decay_names = {n for n in decay_names if not n.endswith("bias")}
    mask_ids = {id(p) for p in mask_score_parameters(model)}
    buckets: Dict[tuple, list] = {}
    seen = set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        is_mask = id(param) in mask_ids
        decays = name in decay_names
        buckets.setdefault((is_mask, decays), []).append(param)
    groups = []
    for (is_mask, decays), params in sorted(buckets.items()):
        group = {"params": params, "weight_decay": (mask_weight_decay if is_mask else weight_decay) if decays else 0.0}
        lr = mask_learning_rate if is_mask else learning_rate
        if lr is not None:
            group["lr"] = lr
        groups.append(group)
    return groups


class _MaskLearningRateMixin:
    """``mask_learning_rate=None``: the reference ratio times ``args.learning_rate`` (``reference_mask_learning_rate``);
    ``mask_weight_decay=None``: ``args.weight_decay``."""

    def __init__(self, *args, mask_learning_rate: Optional[float] = None, mask_weight_decay: Optional[float] = None,
                 **kwargs):
        self.mask_learning_rate = mask_learning_rate
        self.mask_weight_decay = mask_weight_decay
        super().__init__(*args, **kwargs)
        self.mask_movement_callback = MaskMovementCallback()
        self.add_callback(self.mask_movement_callback)

    def mask_movement(self) -> Optional[dict]:
        """How far the last ``train()`` moved the trained masks from their initial draw (``mask_movement.py``);
        None without trained masks."""
        return self.mask_movement_callback.summary()

    def mask_rates(self) -> Tuple[Optional[float], Optional[float]]:
        """(learning rate, weight decay) the optimizer gives the mask scores, defaults resolved; without masks,
        (the given learning rate, None)."""
        if not mask_score_parameters(self.model):
            return self.mask_learning_rate, None
        learning_rate = self.mask_learning_rate
        if learning_rate is None:
            learning_rate = reference_mask_learning_rate(self.model, self.args.learning_rate)
        weight_decay = self.args.weight_decay if self.mask_weight_decay is None else self.mask_weight_decay
        return learning_rate, weight_decay

    def create_optimizer(self):
        if self.optimizer is None:
            groups = propetl_parameter_groups(self.model, self.args.weight_decay, *self.mask_rates())
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer


class ProPETLTrainer(_MaskLearningRateMixin, AdapterTrainer):
    """AdapterTrainer whose optimizer has separate mask groups (``mask_learning_rate``, ``mask_weight_decay``)."""


class ProPETLSeq2SeqTrainer(_MaskLearningRateMixin, Seq2SeqAdapterTrainer):
    """Seq2SeqAdapterTrainer with the same mask groups."""


def trainable_parameter_count(parameters: Iterable[torch.nn.Parameter]) -> int:
    return sum(p.numel() for p in {id(p): p for p in parameters if p.requires_grad}.values())


# ---------------------------------------------------------------------------
# Several tasks
# ---------------------------------------------------------------------------

TASK_IDS = "task_ids"


def temperature_probabilities(sizes: Sequence[int], temperature: float) -> np.ndarray:
    """``p_t ∝ (n_t / N) ** (1 / T)``: T = 1 samples by size, large T approaches uniform."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if len(sizes) == 0 or (sizes <= 0).any():
        raise ValueError(f"every task needs at least one training example; sizes: {sizes.tolist()}")
    if temperature <= 0:
        raise ValueError(f"the sampling temperature must be positive, got {temperature}")
    weights = (sizes / sizes.sum()) ** (1.0 / temperature)
    return weights / weights.sum()


class TaskBatchSampler(Sampler):
    """Batches of indices into ``ConcatDataset(task datasets)``, each batch from one task.

    Each task's examples are visited in a fresh random order before any repeats. An epoch has
    ``sum(sizes) // batch_size`` batches (at least one). ``rank``/``world_size`` give each process
    of a distributed run its own stream with the same number of batches.
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, temperature: float = 10.0, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.sizes = list(sizes)
        self.batch_size = batch_size
        self.probabilities = temperature_probabilities(self.sizes, temperature)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, sum(self.sizes) // (self.batch_size * self.world_size))

    def __iter__(self) -> Iterator[List[int]]:
        rng = np.random.RandomState([self.seed, self.epoch, self.rank])
        orders = [rng.permutation(n) for n in self.sizes]
        positions = [0] * len(self.sizes)
        for _ in range(len(self)):
            task = int(rng.choice(len(self.sizes), p=self.probabilities))
            batch = []
            while len(batch) < self.batch_size:
                if positions[task] == self.sizes[task]:
                    orders[task], positions[task] = rng.permutation(self.sizes[task]), 0
                take = min(self.batch_size - len(batch), self.sizes[task] - positions[task])
                batch += (orders[task][positions[task]:positions[task] + take] + self.offsets[task]).tolist()
                positions[task] += take
            yield batch
        self.epoch += 1  # the HF Trainer does not call set_epoch on a plain DataLoader's batch sampler


class TaskMetric:
    """A ``compute_metrics`` function for one task together with the names of the metrics it returns."""

    def __init__(self, metric_names: Sequence[str], function: Callable):
        self.metric_names = tuple(metric_names)
        self.function = function

    def __call__(self, prediction) -> Dict[str, float]:
        return self.function(prediction)


class MultiTaskMixin:
    """Trainer mixin: one-task batches in training, routing by ``task_ids``, evaluation task by task.

    Args (keyword, besides the trainer's own):
        task_names: the tasks in ``task_ids`` order (the multi-task adapter's ``tasks``).
        train_datasets / eval_datasets: one dataset per task that trains / is evaluated during training (each row
            with a ``task_ids`` column): every task of ``task_names``, or some of them (tasks added to a trained
            adapter train alone, while the old tasks are only tested).
        task_metrics: a ``TaskMetric`` per task.
        temperature: the sampling temperature T.
        heads_per_task: pass ``head=<task>`` to the model (AdapterHub models with one head per task).
        adapter_per_task: activate the adapter named like the batch's task (Adapter†: one adapter per task).
    """

    def __init__(self, *args, task_names: Sequence[str], train_datasets: Dict[str, object],
                 eval_datasets: Dict[str, object], task_metrics: Dict[str, Callable], temperature: float = 10.0,
                 heads_per_task: bool = False, adapter_per_task: bool = False, **kwargs):
        self.task_names = list(task_names)
        unknown = [t for t in train_datasets if t not in self.task_names]
        if unknown or not train_datasets:
            raise ValueError(f"train_datasets must hold one or more of the tasks {self.task_names}; "
                             f"got {list(train_datasets)}")
        self.train_datasets = {t: train_datasets[t] for t in self.task_names if t in train_datasets}
        self.eval_datasets = {t: eval_datasets[t] for t in self.task_names if t in eval_datasets}
        self.task_metrics = task_metrics
        self.temperature = temperature
        self.heads_per_task = heads_per_task
        self.adapter_per_task = adapter_per_task
        super().__init__(*args, train_dataset=ConcatDataset(list(self.train_datasets.values())),
                         eval_dataset=self.eval_datasets, **kwargs)

    def get_train_dataloader(self) -> DataLoader:
        args = self.args
        sampler = TaskBatchSampler([len(d) for d in self.train_datasets.values()],
                                   args.per_device_train_batch_size, self.temperature, seed=args.seed,
                                   rank=max(args.process_index, 0), world_size=max(args.world_size, 1))
        loader = DataLoader(self.train_dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                            num_workers=args.dataloader_num_workers, pin_memory=args.dataloader_pin_memory)
        return loader  # not wrapped by accelerate's sharding: every rank already has its own stream

    def _task_of(self, inputs: dict) -> Optional[str]:
        task_ids = inputs.pop(TASK_IDS, None)
        if task_ids is None:
            return None
        present = torch.unique(torch.as_tensor(task_ids)).tolist()
        if len(present) != 1:
            raise ValueError(f"a multi-task batch must hold one task here; it holds task ids {present}")
        task = self.task_names[present[0]]
        if self.heads_per_task:
            inputs["head"] = task
        if self.adapter_per_task:
            self.model.set_active_adapters(task)
        return task

    def _routed(self, inputs: dict):
        task = self._task_of(inputs)
        return active_task(task) if task is not None else contextlib.nullcontext()

    def compute_loss(self, model, inputs, *args, **kwargs):
        with self._routed(inputs):
            return super().compute_loss(model, inputs, *args, **kwargs)

    def prediction_step(self, model, inputs, *args, **kwargs):
        with self._routed(inputs):
            return super().prediction_step(model, inputs, *args, **kwargs)

    def evaluate_tasks(self, datasets: Dict[str, object], metric_key_prefix: str, **kwargs) -> Dict[str, float]:
        """Evaluate every task's dataset; add ``<prefix>_<task>_score`` and ``<prefix>_average``."""
        results, scores = {}, []
        for task, dataset in datasets.items():
            self.compute_metrics = self.task_metrics[task]
            metrics = super().evaluate(eval_dataset=dataset, metric_key_prefix=f"{metric_key_prefix}_{task}",
                                       **kwargs)
            values = [metrics[f"{metric_key_prefix}_{task}_{name}"] for name in self.task_metrics[task].metric_names]
            score = float(np.mean(values)) if values else float("nan")
            metrics[f"{metric_key_prefix}_{task}_score"] = score
            scores.append(score)
            results.update(metrics)
        results[f"{metric_key_prefix}_average"] = float(np.mean(scores))
        self.log({f"{metric_key_prefix}_average": results[f"{metric_key_prefix}_average"]})
        return results

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", **kwargs):
        datasets = eval_dataset if isinstance(eval_dataset, dict) else self.eval_datasets
        return self.evaluate_tasks(datasets, metric_key_prefix, ignore_keys=ignore_keys, **kwargs)


class MultiTaskTrainer(MultiTaskMixin, ProPETLTrainer):
    """Encoder models with one head per task."""

    def _load_heads(self, checkpoint: str):
        # AdapterHub replaces every head it loads by a new module, trainable and on the CPU: keep each head's
        # device and trainability (the old tasks' heads stay frozen when a task is added to a trained adapter).
        before = {name: (next(head.parameters()).device, any(p.requires_grad for p in head.parameters()))
                  for name, head in self.model.heads.items()}
        super()._load_heads(checkpoint)
        for name, (device, trainable) in before.items():
            self.model.heads[name].to(device).requires_grad_(trainable)

    def _load_best_model(self):
        super()._load_best_model()
        # AdapterTrainer reloads the best checkpoint's adapters only; the per-task heads trained with them.
        self._load_heads(self.state.best_model_checkpoint)


class MultiTaskSeq2SeqTrainer(MultiTaskMixin, ProPETLSeq2SeqTrainer):
    """Encoder-decoder models with one seq2seq head and an adapter; evaluation generates."""


class MultiTaskFullSeq2SeqTrainer(MultiTaskMixin, Seq2SeqTrainer):
    """Full fine-tuning of an encoder-decoder (AdapterTrainer refuses models without an active adapter)."""


class MultiTaskFullTrainer(MultiTaskMixin, Trainer):
    """Full fine-tuning of an encoder with one head per task."""
