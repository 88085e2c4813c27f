"""Multi-task GLUE on an encoder: one adapter for all tasks, one classification head per task.

This is the encoder counterpart of ``run_seq2seq.py`` (same sampler, routing and selection code,
``propetl_adapters.training`` and ``experiments/multitask.py``), used for the MiniLM evidence of the hybrid masks:

    python run_multitask_encoder.py --model_name_or_path MINILM --glue_dir ../shared/glue \
        --tasks rte mrpc stsb cola sst2 --task_train_limits sst2=5000 --adapter_config proadapter \
        --max_steps 2000 --eval_steps 500 --output_dir outputs/multitask/proadapter

With several tasks a ProPETL config gets the task list (hybrid layer/task masks, k = 0.3 each).
A plain config (seq_bn) is ONE adapter shared by all tasks. Without --adapter_config the whole
encoder is fine-tuned. The heads are always per task and reported apart from the adapter.
"""

import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from transformers import AutoTokenizer, DataCollatorWithPadding, HfArgumentParser, TrainingArguments, set_seed

from ..data.glue import TASK_NAMES, GlueDataError, get_task, load_glue_dir, load_glue_online, tokenize_split
from ..data.metrics import compute_glue_metrics
from ..data.splits import paper_splits
from ..training import MultiTaskFullTrainer, MultiTaskTrainer, TaskMetric
from .common import ExperimentError, configure_logging, load_adapter_model
from .multitask import (MASK_LEARNING_RATE_HELP, MASK_LR_RATIO_HELP, multitask_training_args, prepare_model,
                        resolve_mask_learning_rate, resolve_multitask_config, train_test_and_record, trainer_choice)
from .run_folder import ResultsError, finished_results

ADAPTER_NAME = "glue"


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
    config = resolve_multitask_config(args.adapter_config, args.tasks, several_tasks_only=False,
                                      adapter_per_task=args.adapter_per_task)
    training_args = multitask_training_args(training_args, eval_strategy="steps", save_strategy="steps",
                                            save_steps=training_args.eval_steps, dataloader_pin_memory=False)

    tasks = {name: get_task(name) for name in args.tasks}
    rows = {}
    for name, task in tasks.items():
        raw = load_glue_dir(args.glue_dir, task) if args.glue_dir else load_glue_online(task)
        rows[name] = paper_splits(task, raw, seed=args.split_seed)
        rows[name]["train"] = rows[name]["train"][:limits.get(name)]
    set_seed(training_args.seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
        model = load_adapter_model(args.model_name_or_path)
    except (OSError, ValueError) as err:
        raise ExperimentError(f"--model_name_or_path {args.model_name_or_path}: cannot load ({err})") from err
    for name, task in tasks.items():
        model.add_classification_head(name, num_labels=task.num_labels, layers=args.head_layers)
    prepare_model(model, ADAPTER_NAME, config, per_task=args.tasks if args.adapter_per_task else ())
    model.heads.requires_grad_(True)  # train_adapter only unfreezes the head named like the adapter
    data = {split: {} for split in ("train", "validation", "test")}
    for index, (name, task) in enumerate(tasks.items()):
        for split in data:
            dataset = tokenize_split(rows[name][split], tokenizer, args.max_seq_length, False, task.is_regression)
            data[split][name] = dataset.add_column("task_ids", [index] * len(dataset))

    trainer_class, mask_kwargs = trainer_choice(config, MultiTaskFullTrainer, MultiTaskTrainer, mask_learning_rate)
    trainer = trainer_class(model=model, args=training_args, processing_class=tokenizer,
                            data_collator=DataCollatorWithPadding(tokenizer), task_names=args.tasks,
                            train_datasets=data["train"], eval_datasets=data["validation"],
                            task_metrics={n: _task_metric(t) for n, t in tasks.items()},
                            temperature=args.temperature, heads_per_task=True,
                            adapter_per_task=args.adapter_per_task, **mask_kwargs)
    def save_heads():
        if config is not None:
            for name in args.tasks:
                os.makedirs(os.path.join(out, "heads", name), exist_ok=True)
                model.save_head(os.path.join(out, "heads", name), name)

    return train_test_and_record(trainer, model, args, training_args, config, rows, data["test"],
                                 list(model.heads.parameters()), mask_kwargs, started, command_line, ADAPTER_NAME,
                                 save_extra=save_heads)


def main(argv: Optional[Sequence[str]] = None) -> int:
    configure_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((MultiTaskArguments, TrainingArguments))
    parser.set_defaults(report_to="none")
    try:
        args, training_args = parser.parse_args_into_dataclasses(args=argv)
        results = run(args, training_args, command_line=shlex.join(["run_multitask_encoder.py", *argv]))
    except (ExperimentError, GlueDataError, ResultsError) as err:
        print(f"run_multitask_encoder.py: error: {err}", file=sys.stderr)
        return 2
    print(f"test average {results['test_average']:.2f}: " + ", ".join(
        f"{k[5:]} {v:.2f}" for k, v in results["test"].items() if k.endswith("_score")))
    return 0
