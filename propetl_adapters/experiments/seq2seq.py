"""``run_seq2seq.py``: T5 (any AdapterHub seq2seq model) on text-to-text GLUE multi-task, XSum or WMT16 Ro-En.

One adapter (or full fine-tuning) serves all ``--tasks``. With several tasks, a ProPETL config gets
the task list (hybrid layer/task masks) unless it names its own, each batch holds one task drawn by
temperature sampling, evaluation generates every ``--eval_steps`` and the best checkpoint is chosen
by the average of the task scores. The mask learning rate is ``--mask_learning_rate`` (default: 10 ×
``--learning_rate``; the deprecated ``--mask_lr_ratio R`` gives R × ``--learning_rate``).
"""

import json
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import datasets
import numpy as np
from transformers import AutoTokenizer, DataCollatorForSeq2Seq, HfArgumentParser, Seq2SeqTrainingArguments, set_seed

from ..data.text_data import load_text_task
from ..data.text_tasks import TEXT_TASKS, get_text_task, missing_metric_packages
from ..training import MultiTaskFullSeq2SeqTrainer, MultiTaskSeq2SeqTrainer, TaskMetric
from .common import ExperimentError, load_adapter_model, read_json_arguments
from .multitask import (MASK_LEARNING_RATE_HELP, MASK_LR_RATIO_HELP, multitask_main, multitask_training_args,
                        prepare_model, resolve_mask_learning_rate, resolve_multitask_config, train_test_and_record,
                        trainer_choice)
from .run_folder import finished_results

ADAPTER_NAME = "seq2seq"


@dataclass
class Seq2SeqArguments:
    model_name_or_path: str = field(metadata={"help": "T5 folder or hub name (e.g. t5-base)."})
    tasks: List[str] = field(default_factory=lambda: ["rte"],
                             metadata={"help": f"Tasks trained together; any of {', '.join(TEXT_TASKS)}."})
    tokenizer_name: Optional[str] = field(default=None, metadata={"help": "Tokenizer, if not the model's."})
    adapter_config: Optional[str] = field(
        default=None, metadata={"help": "proadapter, seq_bn, ... or bracket syntax; unset: full fine-tuning."})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Local <task>/{train,validation,test}.jsonl."})
    glue_dir: Optional[str] = field(default=None, metadata={"help": "Local GLUE TSV folder (GLUE tasks)."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the paper's GLUE splits."})
    max_source_length: int = field(default=128, metadata={"help": "Source tokens kept."})
    max_target_length: int = field(default=128, metadata={"help": "Target tokens kept (and generated)."})
    temperature: float = field(default=10.0, metadata={"help": "Task sampling temperature T."})
    mask_learning_rate: Optional[float] = field(default=None, metadata={"help": MASK_LEARNING_RATE_HELP})
    mask_lr_ratio: Optional[float] = field(default=None, metadata={"help": MASK_LR_RATIO_HELP})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "First N training rows per task."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "First N evaluation rows per task."})
    num_beams: int = field(default=1, metadata={"help": "Beams at evaluation."})
    adapter_per_task: bool = field(
        default=False, metadata={"help": "Adapter†: one adapter of --adapter_config per task (a plain method), trained"
                                         " together with the backbone's layer norms trained and shared."})
    delete_checkpoints: bool = field(default=False, metadata={"help": "Remove checkpoint-* after the run."})


def _check(args: Seq2SeqArguments, training_args):
    unknown = [t for t in args.tasks if t not in TEXT_TASKS]
    if unknown or not args.tasks:
        raise ExperimentError(f"--tasks: unknown {unknown or 'empty list'}; expected some of {sorted(TEXT_TASKS)}")
    if len(set(args.tasks)) != len(args.tasks):
        raise ExperimentError(f"--tasks: a task is listed twice: {args.tasks}")
    missing = missing_metric_packages([get_text_task(t) for t in args.tasks])
    if missing:
        raise ExperimentError(f"--tasks {' '.join(args.tasks)}: scoring needs {', '.join(missing)}, which cannot be "
                              f"imported; install it first: pip install {' '.join(missing)}")
    if training_args.max_steps <= 0 and training_args.num_train_epochs <= 0:
        raise ExperimentError("nothing to train: set --max_steps (the paper: 20000) or --num_train_epochs")


def _tokenized(rows: List[dict], tokenizer, task_id: int, args: Seq2SeqArguments):
    encoded = tokenizer([r["source"] for r in rows], max_length=args.max_source_length, truncation=True)
    targets = tokenizer(text_target=[r["target"] for r in rows], max_length=args.max_target_length, truncation=True)
    return datasets.Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                                       "labels": targets["input_ids"], "task_ids": [task_id] * len(rows)})


def _task_metric(task_name: str, tokenizer):
    task = get_text_task(task_name)

    def compute(prediction) -> Dict[str, float]:
        predictions = np.where(prediction.predictions < 0, tokenizer.pad_token_id, prediction.predictions)
        labels = np.where(prediction.label_ids < 0, tokenizer.pad_token_id, prediction.label_ids)
        decoded = tokenizer.batch_decode(predictions, skip_special_tokens=True)
        gold = tokenizer.batch_decode(labels, skip_special_tokens=True)
        return task.score([d.strip() for d in decoded], [g.strip() for g in gold])
    return TaskMetric(task.metric_names, compute)


def run(args: Seq2SeqArguments, training_args, command_line: Optional[str] = None) -> dict:
    started = time.time()
    out = training_args.output_dir
    done = finished_results(out, training_args.overwrite_output_dir)
    if done is not None:
        return done
    _check(args, training_args)
    mask_learning_rate = resolve_mask_learning_rate(args.mask_learning_rate, args.mask_lr_ratio,
                                                    training_args.learning_rate)
    config = resolve_multitask_config(args.adapter_config, args.tasks, several_tasks_only=True,
                                      adapter_per_task=args.adapter_per_task)
    strategy = training_args.eval_strategy.value if training_args.eval_strategy.value != "no" else "steps"
    every = training_args.eval_steps or training_args.save_steps
    training_args = multitask_training_args(
        training_args, predict_with_generate=True, generation_max_length=args.max_target_length,
        generation_num_beams=args.num_beams, save_strategy=strategy, eval_strategy=strategy, save_steps=every,
        eval_steps=every)

    with training_args.main_process_first(desc="loading data"):
        rows = {task: load_text_task(get_text_task(task), args.data_dir, args.glue_dir, args.split_seed)
                for task in args.tasks}
    for task, splits in rows.items():
        for split, limit in (("train", args.max_train_samples), ("validation", args.max_eval_samples),
                             ("test", args.max_eval_samples)):
            splits[split] = splits[split][:limit] if limit else splits[split]
    set_seed(training_args.seed)
    name = args.tokenizer_name or args.model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = load_adapter_model(args.model_name_or_path)
    except (OSError, ValueError) as err:
        raise ExperimentError(f"--model_name_or_path {args.model_name_or_path}: cannot load ({err})") from err
    model.add_seq2seq_lm_head(ADAPTER_NAME)
    prepare_model(model, ADAPTER_NAME, config, per_task=args.tasks if args.adapter_per_task else ())
    if config is None:
        model.active_head = ADAPTER_NAME
    data = {split: {task: _tokenized(rows[task][split], tokenizer, i, args) for i, task in enumerate(args.tasks)}
            for split in ("train", "validation", "test")}

    trainer_class, mask_kwargs = trainer_choice(config, MultiTaskFullSeq2SeqTrainer, MultiTaskSeq2SeqTrainer,
                                                mask_learning_rate)
    trainer = trainer_class(
        model=model, args=training_args, processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),  # adds decoder inputs
        task_names=args.tasks, train_datasets=data["train"], eval_datasets=data["validation"],
        task_metrics={t: _task_metric(t, tokenizer) for t in args.tasks}, temperature=args.temperature,
        adapter_per_task=args.adapter_per_task, **mask_kwargs)
    return train_test_and_record(trainer, model, args, training_args, config, rows, data["test"],
                                 list(model.heads[ADAPTER_NAME].parameters()), mask_kwargs, started, command_line,
                                 ADAPTER_NAME)


def _as_flags(given: dict) -> List[str]:
    flags = []
    for key, value in given.items():
        values = value if isinstance(value, list) else [value]
        flags += [f"--{key}", *(json.dumps(v) if isinstance(v, (dict, bool)) else str(v) for v in values)]
    return flags


def parse_arguments(argv: Sequence[str]):
    """``CONFIG.json SEED`` (the reference code's form), ``CONFIG.json``, or flags. Flags after the config (and
    seed) override its keys: ``CONFIG.json 42 --gradient_accumulation_steps 2``."""
    parser = HfArgumentParser((Seq2SeqArguments, Seq2SeqTrainingArguments))
    parser.set_defaults(report_to="none")
    argv = list(argv)
    if argv and argv[0].endswith(".json"):
        seed = argv[1] if len(argv) > 1 and not argv[1].startswith("--") else None
        overrides = argv[2 if seed is not None else 1:]
        if (seed is not None and not seed.isdigit()) or (overrides and not overrides[0].startswith("--")):
            raise ExperimentError(f"usage: run_seq2seq.py CONFIG.json [SEED] [--flag value ...]; got {argv}")
        given = read_json_arguments(argv[0])
        given.setdefault("report_to", "none")
        if seed is not None:
            given["seed"] = int(seed)
            given["output_dir"] = os.path.join(given["output_dir"], f"seed{int(seed)}")
        # Through the command-line parser, so unknown keys and wrong types are refused with the key's name.
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ExperimentError(f"{argv[0]}: unknown keys {unknown}; see `python run_seq2seq.py --help`")
        argv = _as_flags(given) + overrides  # the parser keeps the last value of a flag
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return multitask_main("run_seq2seq.py", argv, parse_arguments, run)
