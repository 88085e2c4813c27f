"""Multi-task GLUE on an encoder: one adapter for all tasks, one classification head per task.

This is the encoder counterpart of ``run_seq2seq.py`` (same sampler, routing and selection code,
``propetl_adapters.training`` and ``experiments/multitask.py``), used for the MiniLM evidence of the hybrid masks:

    python run_multitask_encoder.py --model_name_or_path MINILM --glue_dir ../shared/glue \
        --tasks rte mrpc stsb cola sst2 --task_train_limits sst2=5000 --adapter_config proadapter \
        --max_steps 2000 --eval_steps 500 --output_dir outputs/multitask/proadapter

With several tasks a ProPETL config gets the task list (hybrid layer/task masks, k = 0.3 each).
A plain config (seq_bn) is ONE adapter shared by all tasks. Without --adapter_config the whole
encoder is fine-tuned. The heads are always per task and reported apart from the adapter.

--add_task_to RUN adds tasks to the hybrid adapter of a finished run of this runner (``add_task``, SPEC §1.3):
the --tasks given are the new ones; only their task masks and new heads train, on their data alone, with the
best checkpoint chosen on their validation average. The prototype, the layer masks, the old task masks and the
old heads stay as RUN exported them, so every old task is re-tested and must score exactly as RUN recorded
(``old_tasks_test``; it does when the flags that shape evaluation, e.g. --per_device_eval_batch_size and
--bf16, are RUN's). The run folder exports the grown adapter (RUN's tasks, then the new ones) and every
task's head, so it can itself be grown again. Holding STS-B out of the five tasks above, then adding it:

    python run_multitask_encoder.py ... --tasks rte mrpc cola sst2 --output_dir outputs/multitask/holdout_stsb
    python run_multitask_encoder.py --model_name_or_path MINILM --glue_dir ../shared/glue --tasks stsb \
        --add_task_to outputs/multitask/holdout_stsb --max_steps 300 --eval_steps 100 \
        --output_dir outputs/multitask/holdout_stsb_add_stsb

and its joint counterpart is the five-task command above.
"""

import math
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from adapters import AdapterConfig
from transformers import AutoTokenizer, DataCollatorWithPadding, HfArgumentParser, TrainingArguments, set_seed

from ..configuration import is_propetl_config
from ..data.glue import TASK_NAMES, get_task, load_glue_dir, load_glue_online, tokenize_split
from ..data.metrics import compute_glue_metrics
from ..data.splits import paper_splits
from ..multitask import add_task
from ..training import MultiTaskFullTrainer, MultiTaskTrainer, TaskMetric, trainable_parameter_count
from .common import ExperimentError, load_adapter_model
from .multitask import (MASK_LEARNING_RATE_HELP, MASK_LR_RATIO_HELP, method_label, multitask_main,
                        multitask_training_args, prepare_model, resolve_mask_learning_rate, resolve_multitask_config,
                        train_test_and_record, trainer_choice)
from .run_folder import DONE_FILE, RESULTS_FILE, export_folder, finished_results

ADAPTER_NAME = "glue"
HEADS_DIR = "heads"  # heads/<task>: each task's classification head (model.save_head)
ADD_TASK_TO_HELP = ("A finished hybrid ProPETL run folder of run_multitask_encoder.py: --tasks are added to its "
                    "adapter (add_task); only their task masks and heads train, and every task is tested.")


@dataclass
class MultiTaskArguments:
    model_name_or_path: str = field(metadata={"help": "Encoder folder or hub name."})
    tasks: List[str] = field(default_factory=lambda: ["rte", "mrpc"], metadata={"help": "GLUE tasks."})
    glue_dir: Optional[str] = field(default=None, metadata={"help": "GLUE TSV folder; unset: `datasets`."})
    adapter_config: Optional[str] = field(default=None, metadata={"help": "Unset: full fine-tuning."})
    task_train_limits: List[str] = field(
        default_factory=list, metadata={"help": "TASK=N pairs: keep the first N training rows of TASK "
                                                "(e.g. sst2=5000)."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens kept per input."})
    temperature: float = field(default=10.0, metadata={"help": "Task sampling temperature T."})
    mask_learning_rate: Optional[float] = field(default=None, metadata={"help": MASK_LEARNING_RATE_HELP})
    mask_lr_ratio: Optional[float] = field(default=None, metadata={"help": MASK_LR_RATIO_HELP})
    head_layers: int = field(default=1, metadata={"help": "Layers of each task's classification head."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the paper's splits."})
    adapter_per_task: bool = field(
        default=False, metadata={"help": "Adapter†: one adapter of --adapter_config per task (a plain method), trained"
                                         " together with the backbone's layer norms trained and shared."})
    add_task_to: Optional[str] = field(default=None, metadata={"help": ADD_TASK_TO_HELP})
    delete_checkpoints: bool = field(default=False, metadata={"help": "Remove checkpoint-* after the run."})


def _train_limits(args: MultiTaskArguments) -> Dict[str, int]:
    limits = {}
    for item in args.task_train_limits:
        task, _, number = item.partition("=")
        if task not in args.tasks or not number.isdigit() or int(number) < 1:
            raise ExperimentError(f"--task_train_limits: expected TASK=N with TASK in {args.tasks} and N >= 1, "
                                  f"got {item!r}")
        limits[task] = int(number)
    return limits


def _task_metric(task):
    def compute(prediction) -> Dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        logits = np.asarray(logits)
        predicted = logits.reshape(-1) if task.is_regression else logits.argmax(axis=-1)
        return compute_glue_metrics(task, predicted, np.asarray(prediction.label_ids).reshape(-1))
    return TaskMetric(task.metrics, compute)


@dataclass
class BaseRun:
    """The finished hybrid run that --add_task_to grows."""
    folder: str
    results: dict
    tasks: List[str]  # its adapter's tasks, in task-bank order

    @property
    def adapter_folder(self) -> str:
        return export_folder(self.folder, adapter=True)

    def head_folder(self, task: str) -> str:
        return os.path.join(self.folder, HEADS_DIR, task)


def base_run(args: MultiTaskArguments) -> BaseRun:
    """The run folder of --add_task_to, checked: finished, written by this runner with a hybrid ProPETL adapter
    whose tasks do not include --tasks, with the same test inputs (--split_seed, --max_seq_length)."""
    flag = f"--add_task_to {args.add_task_to}"
    if args.adapter_config is not None or args.adapter_per_task:
        raise ExperimentError(f"{flag}: the adapter is that run's; pass neither --adapter_config nor "
                              "--adapter_per_task")
    results = finished_results(args.add_task_to, overwrite=False)
    if results is None:
        raise ExperimentError(f"{flag}: not a finished run (expected {DONE_FILE} and {RESULTS_FILE} in it)")
    arguments = results.get("arguments", {}).get(MultiTaskArguments.__name__)
    if not isinstance(arguments, dict):
        raise ExperimentError(f"{flag}: {RESULTS_FILE} has no arguments.{MultiTaskArguments.__name__}; expected a "
                              "run of run_multitask_encoder.py")
    resolved = results.get("adapter_config_resolved")
    try:
        config = AdapterConfig.load(resolved) if isinstance(resolved, dict) else None
    except (TypeError, ValueError, KeyError):
        config = None
    if config is None or not is_propetl_config(config) or not config.tasks:
        raise ExperimentError(f"{flag}: its adapter is {results.get('method')!r}; expected a hybrid ProPETL adapter "
                              "(a ProPETL --adapter_config trained on several --tasks)")
    overlap = [t for t in args.tasks if t in config.tasks]
    if overlap:
        raise ExperimentError(f"--tasks {overlap}: already tasks of the run in {args.add_task_to} (its tasks: "
                              f"{list(config.tasks)}); pass only tasks to add")
    for name in ("split_seed", "max_seq_length"):
        if arguments.get(name) != getattr(args, name):
            raise ExperimentError(f"--{name} {getattr(args, name)}: the run in {args.add_task_to} used "
                                  f"{arguments.get(name)}; pass the same, or its tasks' test inputs change")
    run = BaseRun(args.add_task_to, results, list(config.tasks))
    for folder in [run.adapter_folder] + [run.head_folder(t) for t in run.tasks]:
        if not os.path.isdir(folder):
            raise ExperimentError(f"{flag}: {folder} not found; expected the run's exported adapter and "
                                  f"{HEADS_DIR}/<task> for each of its tasks {run.tasks}")
    return run


def grow_adapter(model, base: BaseRun, new_tasks: Dict[str, object], head_layers: int):
    """Load ``base``'s adapter and heads into ``model``, add a head and a task mask per new task, and leave only
    those trainable; returns the grown adapter's config."""
    try:
        model.load_adapter(base.adapter_folder, load_as=ADAPTER_NAME, with_head=False, set_active=True)
    except (OSError, ValueError) as err:
        raise ExperimentError(f"--add_task_to {base.folder}: cannot load {base.adapter_folder} into "
                              f"--model_name_or_path ({err})") from err
    model.train_adapter(ADAPTER_NAME)  # marks the backbone frozen, which AdapterTrainer checks
    for task in base.tasks:
        model.load_head(base.head_folder(task))
    for name, task in new_tasks.items():
        model.add_classification_head(name, num_labels=task.num_labels, layers=head_layers)
    trainable = [model.heads[name] for name in new_tasks]
    for name in new_tasks:  # add_task freezes everything it is not given, so hand it the masks added before too
        trainable.append(add_task(model, ADAPTER_NAME, name, trainable_modules=trainable))
    return model.adapters_config.get(ADAPTER_NAME)


def _difference(recorded, measured) -> float:
    """|recorded - measured|; 0 when both are NaN, infinite when only one is a number."""
    if recorded is None or measured is None:
        return float("inf")
    if math.isnan(recorded) or math.isnan(measured):
        return 0.0 if math.isnan(recorded) and math.isnan(measured) else float("inf")
    return abs(recorded - measured)


def added_task_results(base: BaseRun, tasks: Dict[str, object], added: List[str], config, trained: int):
    """``more_results`` of an --add_task_to run: its tasks (old, then added), method, base run, the parameters it
    trained (``trained``: the new task masks' scores and heads), and the old tasks' test scores as the base run
    recorded them next to the ones measured now."""
    def describe(test: dict) -> dict:
        keys = [f"test_{t}_{m}" for t in base.tasks for m in (*tasks[t].metrics, "score")]
        recorded = {k: base.results.get("test", {}).get(k) for k in keys}
        measured = {k: test.get(k) for k in keys}
        difference = max(_difference(recorded[k], measured[k]) for k in keys)
        return {"tasks": base.tasks + added, "added_tasks": added, "base_run": os.path.abspath(base.folder),
                "base_tasks": base.tasks, "method": method_label(config) + "_add_task", "trained_parameters": trained,
                "old_tasks_test": {"recorded_by_base_run": recorded, "measured": measured,
                                   "max_abs_difference": difference, "identical": difference == 0.0}}
    return describe


def run(args: MultiTaskArguments, training_args, command_line: Optional[str] = None) -> dict:
    started = time.time()
    out = training_args.output_dir
    done = finished_results(out, training_args.overwrite_output_dir)
    if done is not None:
        return done
    unknown = [t for t in args.tasks if t not in TASK_NAMES]
    if unknown or len(set(args.tasks)) != len(args.tasks) or not args.tasks:
        raise ExperimentError(f"--tasks: expected distinct GLUE tasks from {list(TASK_NAMES)}, got {args.tasks}")
    limits = _train_limits(args)
    mask_learning_rate = resolve_mask_learning_rate(args.mask_learning_rate, args.mask_lr_ratio,
                                                    training_args.learning_rate)
    base = base_run(args) if args.add_task_to is not None else None
    config = None if base is not None else resolve_multitask_config(
        args.adapter_config, args.tasks, several_tasks_only=False, adapter_per_task=args.adapter_per_task)
    training_args = multitask_training_args(training_args, eval_strategy="steps", save_strategy="steps",
                                            save_steps=training_args.eval_steps, dataloader_pin_memory=False)

    # Task ids follow the adapter's task bank: a base run's tasks first (tested only), then the tasks that train.
    all_tasks = (base.tasks if base is not None else []) + list(args.tasks)
    tasks = {name: get_task(name) for name in all_tasks}
    rows = {}
    for name, task in tasks.items():
        raw = load_glue_dir(args.glue_dir, task) if args.glue_dir else load_glue_online(task)
        rows[name] = paper_splits(task, raw, seed=args.split_seed)
        rows[name]["train"] = rows[name]["train"][:limits.get(name)]
        if name not in args.tasks:
            rows[name] = {"test": rows[name]["test"]}
    set_seed(training_args.seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
        model = load_adapter_model(args.model_name_or_path)
    except (OSError, ValueError) as err:
        raise ExperimentError(f"--model_name_or_path {args.model_name_or_path}: cannot load ({err})") from err
    if base is not None:
        config = grow_adapter(model, base, {name: tasks[name] for name in args.tasks}, args.head_layers)
    else:
        for name, task in tasks.items():
            model.add_classification_head(name, num_labels=task.num_labels, layers=args.head_layers)
        prepare_model(model, ADAPTER_NAME, config, per_task=args.tasks if args.adapter_per_task else ())
        model.heads.requires_grad_(True)  # train_adapter only unfreezes the head named like the adapter
    data = {split: {} for split in ("train", "validation", "test")}
    for index, (name, task) in enumerate(tasks.items()):
        for split, split_rows in rows[name].items():
            dataset = tokenize_split(split_rows, tokenizer, args.max_seq_length, False, task.is_regression)
            data[split][name] = dataset.add_column("task_ids", [index] * len(dataset))

    trainer_class, mask_kwargs = trainer_choice(config, MultiTaskFullTrainer, MultiTaskTrainer, mask_learning_rate)
    trainer = trainer_class(model=model, args=training_args, processing_class=tokenizer,
                            data_collator=DataCollatorWithPadding(tokenizer), task_names=all_tasks,
                            train_datasets=data["train"], eval_datasets=data["validation"],
                            task_metrics={n: _task_metric(t) for n, t in tasks.items()},
                            temperature=args.temperature, heads_per_task=True,
                            adapter_per_task=args.adapter_per_task, **mask_kwargs)
    def save_heads():
        if config is not None:
            for name in all_tasks:
                os.makedirs(os.path.join(out, HEADS_DIR, name), exist_ok=True)
                model.save_head(os.path.join(out, HEADS_DIR, name), name)

    more_results = None if base is None else added_task_results(
        base, tasks, list(args.tasks), config, trainable_parameter_count(model.parameters()))
    return train_test_and_record(trainer, model, args, training_args, config, rows, data["test"],
                                 list(model.heads.parameters()), mask_kwargs, started, command_line, ADAPTER_NAME,
                                 save_extra=save_heads, more_results=more_results)


def parse_arguments(argv: Sequence[str]):
    parser = HfArgumentParser((MultiTaskArguments, TrainingArguments))
    parser.set_defaults(report_to="none")
    return parser.parse_args_into_dataclasses(args=list(argv))


def main(argv: Optional[Sequence[str]] = None) -> int:
    return multitask_main("run_multitask_encoder.py", argv, parse_arguments, run)
