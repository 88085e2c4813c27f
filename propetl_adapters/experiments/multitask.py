"""What the multi-task runners share (``run_seq2seq.py`` and ``run_multitask_encoder.py``): the adapter config
with the run's task list, the training arguments, the model's trainable parts, the mask learning rate, and the
export and record of a finished run. The trainers themselves (task sampling, routing, per-task evaluation) are
library code in ``propetl_adapters.training``.
"""

import dataclasses
import json
import logging
import os
import shlex
import shutil
import sys
import time
from typing import Callable, Optional, Sequence

import torch
from adapters import AdapterConfig

from ..configuration import is_propetl_config
from ..data.glue import GlueDataError
from ..methods.registry import method_of
from ..serialization import adapter_tensors, is_layer_norm, save_base_layer_norms
from ..storage import base_model_parameters, bits_by_width, bls_bits, storage_report
from ..training import trainable_parameter_count
from .common import (ExperimentError, configure_logging, freeze_layer_norms, plain_method_name, storage_summary,
                     validation_curve, versions)
from .run_folder import RESUMED_TRAIN_LOSS_NOTE, ResultsError, export_folder, finish, resumable_checkpoint

logger = logging.getLogger(__name__)

# The multi-task runners' mask learning rate without --mask_learning_rate: this many times --learning_rate.
DEFAULT_MASK_LR_RATIO = 10.0
MASK_LEARNING_RATE_HELP = "Learning rate of the mask scores. Default: 10 x --learning_rate."
MASK_LR_RATIO_HELP = ("Deprecated, use --mask_learning_rate: the mask learning rate as this many times "
                      "--learning_rate.")


def resolve_mask_learning_rate(mask_learning_rate: Optional[float], mask_lr_ratio: Optional[float],
                               learning_rate: float) -> float:
    """``--mask_learning_rate``; or the deprecated ``--mask_lr_ratio`` times ``--learning_rate`` (with a warning);
    or ``DEFAULT_MASK_LR_RATIO`` times ``--learning_rate``."""
    if mask_lr_ratio is not None:
        if mask_learning_rate is not None:
            raise ExperimentError("pass --mask_learning_rate only: --mask_lr_ratio is its deprecated form")
        if mask_lr_ratio <= 0:
            raise ExperimentError(f"--mask_lr_ratio must be positive, got {mask_lr_ratio}")
        ratio = mask_lr_ratio
    elif mask_learning_rate is not None:
        if mask_learning_rate <= 0:
            raise ExperimentError(f"--mask_learning_rate must be positive, got {mask_learning_rate}")
        return mask_learning_rate
    else:
        ratio = DEFAULT_MASK_LR_RATIO
    # 12 significant digits drop the binary noise of the product (3e-4 x 10 is 0.0029999999999999996), so the
    # recorded rate reads as the user's numbers give it.
    rate = float(f"{learning_rate * ratio:.12g}")
    if mask_lr_ratio is not None:
        logger.warning("--mask_lr_ratio is deprecated; pass --mask_learning_rate %s instead (%s x --learning_rate "
                       "%s)", rate, mask_lr_ratio, learning_rate)
    return rate


def per_task_storage(model, adapter_name: str, config, tasks: Sequence[str], storage: dict) -> dict:
    """Bits the tasks share and bits each task adds: the task masks of a hybrid ProPETL adapter; nothing for
    one plain module shared by all tasks; the whole model per task for full fine-tuning (``config`` None)."""
    if method_of(config) is not None and config.tasks:
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
    needs_plain = "--adapter_per_task needs a plain --adapter_config such as 'seq_bn[reduction_factor=32]'"
    if adapter_per_task and config_string is None:
        raise ExperimentError(needs_plain)
    if config_string is None:
        return None
    try:
        config = AdapterConfig.load(config_string)
    except Exception as err:
        raise ExperimentError(f"--adapter_config {config_string!r}: {err}") from err
    method = method_of(config)
    if method is None:
        return config
    if adapter_per_task:
        raise ExperimentError(needs_plain)
    if method.tasks_required and config.tasks == ["task"] and "tasks=" not in config_string:  # the registered placeholder
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
    find_unused = training_args.ddp_find_unused_parameters
    return dataclasses.replace(
        training_args, load_best_model_at_end=True, metric_for_best_model="average", greater_is_better=True,
        remove_unused_columns=False, label_names=["labels"],
        ddp_find_unused_parameters=True if find_unused is None else find_unused, **changes)


def trains_layer_norms(config, per_task: bool = False) -> bool:
    """Hyperformer's reference setup and Adapter† (``per_task``) train the backbone's layer norms; PETL runs
    freeze them."""
    method = method_of(config)
    return per_task or (method is not None and method.trains_layer_norms)


def method_label(config, per_task: bool = False) -> str:
    """The method name recorded in a multi-task run's results."""
    if config is None:
        return "full_finetuning"
    if per_task:
        return "adapter_dagger"
    if is_propetl_config(config):
        return config.propetl_method + ("_hybrid" if config.tasks else "")
    return getattr(config, "baseline_method", None) or plain_method_name(config)


def prepare_model(model, adapter_name: str, config, per_task: Sequence[str] = ()):
    """Add and activate the adapter (or make the whole model trainable for full fine-tuning); layer norms
    follow the method's setup: frozen for PETL, trainable for Hyperformer and Adapter†. With ``per_task``
    (Adapter†) one adapter per task is added, named like the task; the trainer activates it per batch."""
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
        for module in model.modules():
            if is_layer_norm(module):
                module.requires_grad_(True)
    else:
        freeze_layer_norms(model)


def trainer_choice(config, full_class, adapter_class, mask_learning_rate: float):
    """(trainer class, extra kwargs): full fine-tuning has no masks and no mask learning rate."""
    if config is None:
        return full_class, {}
    return adapter_class, {"mask_learning_rate": mask_learning_rate}


def export_and_record(model, trainer, adapter_name: str, config, tasks: Sequence[str], output_dir: str,
                      head_parameters: Sequence[torch.nn.Parameter], results: dict, delete_checkpoints: bool,
                      per_task: bool = False) -> dict:
    """Save the adapter (or model), add storage and training figures and finish the run folder."""
    export = export_folder(output_dir, adapter=config is not None)
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
        results["exported_layer_norms"] = save_base_layer_norms(model, export)  # trained with the adapters
    results["training"].update({"global_step": trainer.state.global_step,
                                "best_checkpoint": trainer.state.best_model_checkpoint,
                                "best_validation_average": trainer.state.best_metric})
    return finish(output_dir, results, delete_checkpoints)


def per_task_adapters_storage(model, tasks: Sequence[str], head_parameters: int) -> dict:
    """Adapter†: each task stores its own adapter; the trained layer norms of the backbone are shared."""
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
                          save_extra: Optional[Callable[[], None]] = None,
                          more_results: Optional[Callable[[dict], dict]] = None) -> dict:
    """Train (resuming an unfinished run), score every task's test split, export and write the results.

    ``args`` is the runner's own argument dataclass (``tasks``, ``adapter_config``, ``adapter_per_task``,
    ``delete_checkpoints``); ``save_extra`` saves what the runner adds to the folder (e.g. per-task heads);
    ``more_results(test scores)`` gives fields the runner adds to the results or overrides (e.g. the tasks and
    method of a run that adds tasks to a trained adapter). ``rows`` holds the splits of every task the run uses."""

    resume = None if training_args.overwrite_output_dir else resumable_checkpoint(training_args.output_dir)
    train_output = trainer.train(resume_from_checkpoint=resume)
    curve = validation_curve(trainer.state.log_history, "average")  # before the test evaluation logs its own
    test = trainer.evaluate(test_datasets, metric_key_prefix="test")
    results = {"tasks": args.tasks, "method": method_label(config, args.adapter_per_task), "test": test,
               "test_average": test.get("test_average")}
    if more_results is not None:
        results.update(more_results(test))
    if not trainer.is_world_process_zero():
        return results
    if save_extra is not None:
        save_extra()
    results.update({
        "seed": training_args.seed, "adapter_config": args.adapter_config,
        "masks": trainer.mask_movement() if hasattr(trainer, "mask_movement") else None,
        "examples": {t: {s: len(rows[t][s]) for s in rows[t]} for t in rows},
        "training": {"train_loss": train_output.training_loss, "resumed_from_checkpoint": resume,
                     "validation_curve": curve,
                     **({"train_loss_note": RESUMED_TRAIN_LOSS_NOTE} if resume is not None else {}),
                     "learning_rate": training_args.learning_rate,
                     "mask_learning_rate": mask_kwargs.get("mask_learning_rate")},
        "wall_time_seconds": time.time() - started, "command_line": command_line, "versions": versions(),
        "arguments": json.loads(json.dumps({type(args).__name__: dataclasses.asdict(args),
                                            "training": training_args.to_sanitized_dict()}, default=str)),
    })
    return export_and_record(model, trainer, adapter_name, config, results["tasks"], training_args.output_dir,
                             head_parameters, results, args.delete_checkpoints, per_task=args.adapter_per_task)


def multitask_main(prog: str, argv: Optional[Sequence[str]], parse: Callable[[list], tuple],
                   run: Callable[..., dict]) -> int:
    """The command-line entry of a multi-task runner: ``parse(argv)`` gives (arguments, training arguments) for
    ``run``; prints the test average and each task's score. Returns 0, or 2 with the message on stderr for bad
    arguments or data."""
    configure_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, training_args = parse(argv)
        results = run(args, training_args, command_line=shlex.join([prog, *argv]))
    except (ExperimentError, GlueDataError, ResultsError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    average = results.get("test_average")
    print(f"test average {'n/a' if average is None else f'{average:.2f}'}: " + ", ".join(
        f"{k[5:]} {v:.2f}" for k, v in results["test"].items() if k.endswith("_score")))
    return 0
