"""Training several tasks at once: temperature sampling of one-task batches, task routing, per-task evaluation.

Used by ``run_seq2seq.py`` (T5, one seq2seq head, text-to-text tasks) and by the multi-task encoder
runs (one classification head per task). Every batch holds ONE task, drawn with probability
``p_t ∝ (n_t / N) ** (1 / T)`` (SPEC §3, T = 10). The batch carries a ``task_ids`` column; the trainer
turns it into ``active_task(name)`` (and ``head=name`` for per-task heads), so the hybrid masks
(``multitask.py``) see the task. Evaluation runs each task's split and reports ``<task>_<metric>``,
``<task>_score`` (mean of the task's metrics) and ``average`` (mean of the task scores), the
metric the best checkpoint is chosen by.
"""

import contextlib
import logging
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Sampler
from transformers import Seq2SeqTrainer, Trainer

from .multitask import active_task
from .training import ProPETLSeq2SeqTrainer, ProPETLTrainer

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
        train_datasets / eval_datasets: one dataset per task (each row with a ``task_ids`` column).
        task_metrics: a ``TaskMetric`` per task.
        temperature: the sampling temperature T.
        heads_per_task: pass ``head=<task>`` to the model (AdapterHub models with one head per task).
        adapter_per_task: activate the adapter named like the batch's task (Adapter†: one adapter per task).
    """

    def __init__(self, *args, task_names: Sequence[str], train_datasets: Dict[str, object],
                 eval_datasets: Dict[str, object], task_metrics: Dict[str, Callable], temperature: float = 10.0,
                 heads_per_task: bool = False, adapter_per_task: bool = False, **kwargs):
        self.task_names = list(task_names)
        self.train_datasets = {t: train_datasets[t] for t in self.task_names}
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


class MultiTaskSeq2SeqTrainer(MultiTaskMixin, ProPETLSeq2SeqTrainer):
    """Encoder-decoder models with one seq2seq head and an adapter; evaluation generates."""


class MultiTaskFullSeq2SeqTrainer(MultiTaskMixin, Seq2SeqTrainer):
    """Full fine-tuning of an encoder-decoder (AdapterTrainer refuses models without an active adapter)."""


class MultiTaskFullTrainer(MultiTaskMixin, Trainer):
    """Full fine-tuning of an encoder with one head per task."""


def per_task_storage(model, adapter_name: str, config, tasks: Sequence[str], storage: dict) -> dict:
    """Bits the tasks share and bits each task adds: the task masks of a hybrid ProPETL adapter; nothing for
    one plain module shared by all tasks; the whole model per task for full fine-tuning (``config`` None)."""
    from .configuration import is_propetl_config
    from .storage import storage_report
    from .configuration import HyperformerConfig
    if config is not None and (is_propetl_config(config) and config.tasks or isinstance(config, HyperformerConfig)):
        report = storage_report(model, adapter_name)
        return {"task_bits": report.task_bits, "shared_bits": report.shared_bits,
                "amortized_task_percent": report.amortized_task_percent}
    if config is None:
        return {"task_bits": {t: storage["bls_bits"] for t in tasks}, "shared_bits": 0}
    return {"task_bits": {t: 0 for t in tasks}, "shared_bits": storage["bls_bits"]}


def resolve_multitask_config(config_string: Optional[str], tasks: Sequence[str], several_tasks_only: bool = False,
                             adapter_per_task: bool = False):
    """The adapter config of a multi-task run (None: full fine-tuning). ProPETL and Hyperformer configs get the
    run's task list unless they name their own, which must then equal it. With ``several_tasks_only`` a
    ProPETL config of a one-task run stays single-task (plain per-layer masks). ``adapter_per_task`` (Adapter†)
    needs a plain method: ProPETL and Hyperformer already share one module across tasks."""
    from .glue.experiment import ExperimentError
    needs_plain = "--adapter_per_task needs a plain --adapter_config such as 'seq_bn[reduction_factor=32]'"
    if adapter_per_task and config_string is None:
        raise ExperimentError(needs_plain)
    if config_string is None:
        return None
    from adapters import AdapterConfig

    from .configuration import HyperformerConfig, is_propetl_config
    try:
        config = AdapterConfig.load(config_string)
    except Exception as err:
        raise ExperimentError(f"--adapter_config {config_string!r}: {err}") from err
    hyper = isinstance(config, HyperformerConfig)
    if not (is_propetl_config(config) or hyper):
        return config
    if adapter_per_task:
        raise ExperimentError(needs_plain)
    if hyper and config.tasks == ["task"] and "tasks=" not in config_string:  # the registered placeholder
        config = config.replace(tasks=list(tasks))
    elif is_propetl_config(config) and not config.tasks and (len(tasks) > 1 or not several_tasks_only):
        config = config.replace(tasks=list(tasks))
    if config.tasks and list(config.tasks) != list(tasks):
        raise ExperimentError(f"--adapter_config has tasks {config.tasks} but --tasks is {list(tasks)}")
    return config


def multitask_training_args(training_args, **changes):
    """The training arguments every multi-task run shares (best checkpoint by the validation ``average``, the
    ``task_ids`` column kept, one-task batches that leave other tasks' parameters without gradient under DDP),
    plus the runner's own ``changes``."""
    import dataclasses
    find_unused = training_args.ddp_find_unused_parameters
    return dataclasses.replace(
        training_args, load_best_model_at_end=True, metric_for_best_model="average", greater_is_better=True,
        remove_unused_columns=False, label_names=["labels"],
        ddp_find_unused_parameters=True if find_unused is None else find_unused, **changes)


def trains_layer_norms(config, per_task: bool = False) -> bool:
    """Hyperformer's reference setup and Adapter† (``per_task``) train the backbone's layer norms; PETL runs
    freeze them."""
    from .configuration import HyperformerConfig
    return per_task or isinstance(config, HyperformerConfig)


def method_label(config, per_task: bool = False) -> str:
    """The method name recorded in a multi-task run's results."""
    from .configuration import is_propetl_config
    from .glue.experiment import plain_method_name
    if config is None:
        return "full_finetuning"
    if per_task:
        return "adapter_dagger"
    if is_propetl_config(config):
        return config.propetl_method + ("_hybrid" if config.tasks else "")
    return getattr(config, "baseline_method", None) or plain_method_name(config)


def finished_results(output_dir: str, overwrite: bool) -> Optional[dict]:
    """The results of a finished run (``DONE`` marker) unless it is to be overwritten."""
    import json
    import os

    from .glue.experiment import DONE_FILE, RESULTS_FILE, is_done
    if not is_done(output_dir) or overwrite:
        return None
    with open(os.path.join(output_dir, RESULTS_FILE), encoding="utf-8") as f:
        logging.getLogger(__name__).info("%s is finished (%s marker); nothing to do", output_dir, DONE_FILE)
        return json.load(f)


def prepare_model(model, adapter_name: str, config, per_task: Sequence[str] = ()):
    """Add and activate the adapter (or make the whole model trainable for full fine-tuning); layer norms
    follow the method's setup: frozen for PETL, trainable for Hyperformer and Adapter†. With ``per_task``
    (Adapter†) one adapter per task is added, named like the task; the trainer activates it per batch."""
    from .glue.experiment import freeze_layer_norms
    if config is None:
        model.requires_grad_(True)
        return
    if per_task:
        for task in per_task:
            model.add_adapter(task, config=config)
        model.train_adapter(list(per_task))
        model.set_active_adapters(per_task[0])
        if hasattr(model, "heads") and adapter_name in model.heads:  # train_adapter unfreezes heads named per task
            model.heads[adapter_name].requires_grad_(True)
    else:
        model.add_adapter(adapter_name, config=config)
        model.train_adapter(adapter_name)
        model.set_active_adapters(adapter_name)
    if trains_layer_norms(config, bool(per_task)):
        from .serialization import is_layer_norm
        for module in model.modules():
            if is_layer_norm(module):
                module.requires_grad_(True)
    else:
        freeze_layer_norms(model)


def trainer_choice(config, full_class, adapter_class, learning_rate: float, mask_lr_ratio: float):
    """(trainer class, extra kwargs): the mask learning rate is ``mask_lr_ratio`` × the learning rate."""
    if config is None:
        return full_class, {}
    # 12 significant digits drop the binary noise of the product (3e-4 x 10 is 0.0029999999999999996), so the
    # recorded rate reads as the user's numbers give it.
    return adapter_class, {"mask_learning_rate": float(f"{learning_rate * mask_lr_ratio:.12g}")}


def export_and_record(model, trainer, adapter_name: str, config, tasks: Sequence[str], output_dir: str,
                      head_parameters: Sequence[torch.nn.Parameter], results: dict, delete_checkpoints: bool,
                      per_task: bool = False) -> dict:
    """Save the adapter (or model), add storage and training figures, write all_results.json and DONE."""
    import json
    import os
    import shutil
    import time

    from .atomic import atomic_write_json
    from .glue.experiment import DONE_FILE, RESULTS_FILE, checkpoint_folders, storage_summary
    from .training import trainable_parameter_count

    export = os.path.join(output_dir, "adapter" if config is not None else "model")
    shutil.rmtree(export, ignore_errors=True)
    head_ids = {id(p) for p in head_parameters}
    module = trainable_parameter_count(p for p in model.parameters() if id(p) not in head_ids)
    head_count = sum(p.numel() for p in head_parameters)
    if per_task:
        for task in tasks:
            os.makedirs(os.path.join(export, task))
            model.save_adapter(os.path.join(export, task), task, with_head=False)
        storage = per_task_adapters_storage(model, tasks, head_count)
    else:
        if config is not None:
            model.save_adapter(export, adapter_name, with_head=False)
        else:
            model.save_pretrained(export)
        storage = storage_summary(model, adapter_name if config is not None else None, method_label(config), export,
                                  module, head_count)
        storage.update(per_task_storage(model, adapter_name, config, tasks, storage))
    results.update({"storage": storage, "adapter_config_resolved": config.to_dict() if config is not None else None,
                    "exported_to": export})
    if trains_layer_norms(config, per_task):
        from .serialization import save_base_layer_norms
        results["exported_layer_norms"] = save_base_layer_norms(model, export)  # trained with the adapters
    results["training"].update({"global_step": trainer.state.global_step,
                                "best_checkpoint": trainer.state.best_model_checkpoint,
                                "best_validation_average": trainer.state.best_metric})
    results = json.loads(json.dumps(results, default=str))
    atomic_write_json(os.path.join(output_dir, RESULTS_FILE), results)
    if delete_checkpoints:
        for folder in checkpoint_folders(output_dir):
            shutil.rmtree(folder, ignore_errors=True)
    with open(os.path.join(output_dir, DONE_FILE), "w", encoding="utf-8") as f:
        f.write(f"finished {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    return results


def per_task_adapters_storage(model, tasks: Sequence[str], head_parameters: int) -> dict:
    """Adapter†: each task stores its own adapter; the trained layer norms of the backbone are shared."""
    from .serialization import adapter_tensors
    from .storage import base_model_parameters, bits_by_width, bls_bits
    base = base_model_parameters(model)
    per_task = {t: list(adapter_tensors(model, t).values()) for t in tasks}
    adapter_ids = {id(x) for tensors in per_task.values() for x in tensors}
    shared_tensors = [p for p in model.base_model.parameters() if p.requires_grad and id(p) not in adapter_ids]
    stored = shared_tensors + [x for tensors in per_task.values() for x in tensors]
    groups = bits_by_width(stored)
    total = bls_bits(groups)
    return {"method": "adapter_dagger", "base_model_parameters": base, "head_parameters": head_parameters,
            "trainable_parameters": sum(x.numel() for x in stored), "stored_parameters_by_bits": groups,
            "bls_bits": total, "bls_percent": 100.0 * total / (32 * base),
            "task_bits": {t: bls_bits(bits_by_width(tensors)) for t, tensors in per_task.items()},
            "shared_bits": bls_bits(bits_by_width(shared_tensors)),
            "notes": ["shared bits are the backbone's trained layer norms"]}


def train_test_and_record(trainer, model, args, training_args, config, rows: dict, test_datasets: dict,
                          head_parameters: Sequence[torch.nn.Parameter], mask_kwargs: dict, started: float,
                          command_line: Optional[str], adapter_name: str,
                          save_extra: Optional[Callable[[], None]] = None) -> dict:
    """Train (resuming an unfinished run), score every task's test split, export and write the results.

    ``args`` is the runner's own argument dataclass (``tasks``, ``adapter_config``, ``adapter_per_task``,
    ``delete_checkpoints``); ``save_extra`` saves what the runner adds to the folder (e.g. per-task heads)."""
    import dataclasses
    import json
    import time

    from .glue.experiment import RESUMED_TRAIN_LOSS_NOTE, _versions, resumable_checkpoint

    resume = None if training_args.overwrite_output_dir else resumable_checkpoint(training_args.output_dir)
    train_output = trainer.train(resume_from_checkpoint=resume)
    test = trainer.evaluate(test_datasets, metric_key_prefix="test")
    results = {"tasks": args.tasks, "method": method_label(config, args.adapter_per_task), "test": test,
               "test_average": test.get("test_average")}
    if not trainer.is_world_process_zero():
        return results
    if save_extra is not None:
        save_extra()
    results.update({
        "seed": training_args.seed, "adapter_config": args.adapter_config,
        "examples": {t: {s: len(rows[t][s]) for s in rows[t]} for t in args.tasks},
        "training": {"train_loss": train_output.training_loss, "resumed_from_checkpoint": resume,
                     **({"train_loss_note": RESUMED_TRAIN_LOSS_NOTE} if resume is not None else {}),
                     "learning_rate": training_args.learning_rate,
                     "mask_learning_rate": mask_kwargs.get("mask_learning_rate")},
        "wall_time_seconds": time.time() - started, "command_line": command_line, "versions": _versions(),
        "arguments": json.loads(json.dumps({type(args).__name__: dataclasses.asdict(args),
                                            "training": training_args.to_sanitized_dict()}, default=str)),
    })
    return export_and_record(model, trainer, adapter_name, config, args.tasks, training_args.output_dir,
                             head_parameters, results, args.delete_checkpoints, per_task=args.adapter_per_task)
