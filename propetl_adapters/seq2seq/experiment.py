"""``run_seq2seq.py``: T5 (any AdapterHub seq2seq model) on text-to-text GLUE multi-task, XSum or WMT16 Ro-En.

One adapter (or full fine-tuning) serves all ``--tasks``. With several tasks, a ProPETL config gets
the task list (hybrid layer/task masks) unless it names its own, each batch holds one task drawn by
temperature sampling, evaluation generates every ``--eval_steps`` and the best checkpoint is chosen
by the average of the task scores. The mask learning rate is ``--mask_lr_ratio`` × ``--learning_rate``.
"""

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..atomic import atomic_write_json
from ..glue.experiment import (DONE_FILE, RESULTS_FILE, ExperimentError, checkpoint_folders, freeze_layer_norms,
                               is_done, resumable_checkpoint, storage_summary, _versions)
from ..glue.tasks import GlueDataError
from .data import load_text_task
from .tasks import TEXT_TASKS, get_text_task

logger = logging.getLogger(__name__)
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
    mask_lr_ratio: float = field(default=10.0, metadata={"help": "Mask learning rate / learning rate."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "First N training rows per task."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "First N evaluation rows per task."})
    num_beams: int = field(default=1, metadata={"help": "Beams at evaluation."})
    delete_checkpoints: bool = field(default=False, metadata={"help": "Remove checkpoint-* after the run."})


def _check(args: Seq2SeqArguments, training_args):
    unknown = [t for t in args.tasks if t not in TEXT_TASKS]
    if unknown or not args.tasks:
        raise ExperimentError(f"--tasks: unknown {unknown or 'empty list'}; expected some of {sorted(TEXT_TASKS)}")
    if len(set(args.tasks)) != len(args.tasks):
        raise ExperimentError(f"--tasks: a task is listed twice: {args.tasks}")
    if training_args.max_steps <= 0 and training_args.num_train_epochs <= 0:
        raise ExperimentError("nothing to train: set --max_steps (the paper: 20000) or --num_train_epochs")
    if args.mask_lr_ratio <= 0:
        raise ExperimentError(f"--mask_lr_ratio must be positive, got {args.mask_lr_ratio}")


def _tokenized(rows: List[dict], tokenizer, task_id: int, args: Seq2SeqArguments):
    import datasets
    encoded = tokenizer([r["source"] for r in rows], max_length=args.max_source_length, truncation=True)
    targets = tokenizer(text_target=[r["target"] for r in rows], max_length=args.max_target_length, truncation=True)
    return datasets.Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                                       "labels": targets["input_ids"], "task_ids": [task_id] * len(rows)})


def _task_metric(task_name: str, tokenizer):
    from ..multitask_training import TaskMetric
    task = get_text_task(task_name)

    def compute(prediction) -> Dict[str, float]:
        predictions = np.where(prediction.predictions < 0, tokenizer.pad_token_id, prediction.predictions)
        labels = np.where(prediction.label_ids < 0, tokenizer.pad_token_id, prediction.label_ids)
        decoded = tokenizer.batch_decode(predictions, skip_special_tokens=True)
        gold = tokenizer.batch_decode(labels, skip_special_tokens=True)
        return task.score([d.strip() for d in decoded], [g.strip() for g in gold])
    return TaskMetric(task.metric_names, compute)


def run(args: Seq2SeqArguments, training_args, command_line: Optional[str] = None) -> dict:
    from adapters import AutoAdapterModel
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq, set_seed

    import torch

    from ..multitask_training import (MultiTaskFullSeq2SeqTrainer, MultiTaskSeq2SeqTrainer, per_task_storage,
                                      method_label, resolve_multitask_config, trains_layer_norms)
    from ..training import trainable_parameter_count

    started = time.time()
    out = training_args.output_dir
    if is_done(out) and not training_args.overwrite_output_dir:
        with open(os.path.join(out, RESULTS_FILE), encoding="utf-8") as f:
            logger.info("%s is finished (%s marker); nothing to do", out, DONE_FILE)
            return json.load(f)
    _check(args, training_args)
    config = resolve_multitask_config(args.adapter_config, args.tasks, several_tasks_only=True)
    training_args = dataclasses.replace(
        training_args, predict_with_generate=True, generation_max_length=args.max_target_length,
        generation_num_beams=args.num_beams, load_best_model_at_end=True, metric_for_best_model="average",
        greater_is_better=True, remove_unused_columns=False, label_names=["labels"],
        save_strategy=training_args.eval_strategy.value if training_args.eval_strategy.value != "no" else "steps",
        eval_strategy=training_args.eval_strategy.value if training_args.eval_strategy.value != "no" else "steps",
        save_steps=training_args.eval_steps or training_args.save_steps,
        eval_steps=training_args.eval_steps or training_args.save_steps)

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
        model = AutoAdapterModel.from_pretrained(args.model_name_or_path)
    except (OSError, ValueError) as err:
        raise ExperimentError(f"--model_name_or_path {args.model_name_or_path}: cannot load ({err})") from err
    model.add_seq2seq_lm_head(ADAPTER_NAME)
    if config is not None:
        model.add_adapter(ADAPTER_NAME, config=config)
        model.train_adapter(ADAPTER_NAME)
        model.set_active_adapters(ADAPTER_NAME)
        if trains_layer_norms(config):
            for module in model.modules():
                if isinstance(module, torch.nn.LayerNorm) or type(module).__name__ == "T5LayerNorm":
                    module.requires_grad_(True)
        else:
            freeze_layer_norms(model)
    else:
        model.active_head = ADAPTER_NAME
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    data = {split: {task: _tokenized(rows[task][split], tokenizer, i, args) for i, task in enumerate(args.tasks)}
            for split in ("train", "validation", "test")}

    trainer_class, mask_kwargs = (MultiTaskFullSeq2SeqTrainer, {}) if config is None else (
        MultiTaskSeq2SeqTrainer, {"mask_learning_rate": training_args.learning_rate * args.mask_lr_ratio})
    trainer = trainer_class(
        model=model, args=training_args, processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),  # adds decoder inputs
        task_names=args.tasks, train_datasets=data["train"], eval_datasets=data["validation"],
        task_metrics={t: _task_metric(t, tokenizer) for t in args.tasks}, temperature=args.temperature, **mask_kwargs)
    resume = None if training_args.overwrite_output_dir else resumable_checkpoint(out)
    train_output = trainer.train(resume_from_checkpoint=resume)
    test = trainer.evaluate(data["test"], metric_key_prefix="test")
    results: Dict[str, Any] = {"tasks": args.tasks, "method": method_label(config), "test": test}
    if not trainer.is_world_process_zero():
        return results
    export = os.path.join(out, "adapter" if config is not None else "model")
    shutil.rmtree(export, ignore_errors=True)
    if config is not None:
        model.save_adapter(export, ADAPTER_NAME, with_head=False)
    else:
        model.save_pretrained(export)
    head = sum(p.numel() for p in model.heads[ADAPTER_NAME].parameters())
    head_ids = {id(p) for p in model.heads[ADAPTER_NAME].parameters()}
    module = trainable_parameter_count(p for p in model.parameters() if id(p) not in head_ids)
    storage = storage_summary(model, ADAPTER_NAME if config is not None else None, method_label(config),
                              export, module, head)
    storage.update(per_task_storage(model, ADAPTER_NAME, config, args.tasks, storage))
    results.update({
        "test_average": test.get("test_average"), "storage": storage, "seed": training_args.seed,
        "adapter_config": args.adapter_config,
        "adapter_config_resolved": config.to_dict() if config is not None else None,
        "examples": {t: {s: len(rows[t][s]) for s in rows[t]} for t in args.tasks},
        "training": {"global_step": trainer.state.global_step, "train_loss": train_output.training_loss,
                     "best_checkpoint": trainer.state.best_model_checkpoint, "resumed_from_checkpoint": resume,
                     "mask_learning_rate": mask_kwargs.get("mask_learning_rate")},
        "wall_time_seconds": time.time() - started, "command_line": command_line, "versions": _versions(),
        "arguments": json.loads(json.dumps({"Seq2SeqArguments": dataclasses.asdict(args),
                                            "training": training_args.to_sanitized_dict()}, default=str)),
    })
    results = json.loads(json.dumps(results, default=str))
    atomic_write_json(os.path.join(out, RESULTS_FILE), results)
    if args.delete_checkpoints:
        for folder in checkpoint_folders(out):
            shutil.rmtree(folder, ignore_errors=True)
    with open(os.path.join(out, DONE_FILE), "w", encoding="utf-8") as f:
        f.write(f"finished {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    return results


def parse_arguments(argv: Sequence[str]):
    """``CONFIG.json SEED`` (the reference code's form), ``CONFIG.json``, or flags."""
    from transformers import HfArgumentParser, Seq2SeqTrainingArguments

    parser = HfArgumentParser((Seq2SeqArguments, Seq2SeqTrainingArguments))
    parser.set_defaults(report_to="none")
    argv = list(argv)
    if argv and argv[0].endswith(".json"):
        if len(argv) > 2 or (len(argv) == 2 and not argv[1].lstrip("-").isdigit()):
            raise ExperimentError(f"usage: run_seq2seq.py CONFIG.json [SEED]; got {argv}")
        if not os.path.isfile(argv[0]):
            raise ExperimentError(f"{argv[0]}: config file not found")
        try:
            with open(argv[0], encoding="utf-8") as f:
                given = json.load(f)
        except json.JSONDecodeError as err:
            raise ExperimentError(f"{argv[0]}: not valid JSON ({err})") from err
        if not isinstance(given, dict) or "output_dir" not in given:
            raise ExperimentError(f"{argv[0]}: expected a JSON object with at least \"output_dir\"")
        given.setdefault("report_to", "none")
        if len(argv) == 2:
            given["seed"] = int(argv[1])
            given["output_dir"] = os.path.join(given["output_dir"], f"seed{int(argv[1])}")
        try:
            return parser.parse_dict(given)
        except (ValueError, TypeError) as err:
            raise ExperimentError(f"{argv[0]}: {err}") from err
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    import shlex
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("propetl_adapters").setLevel(logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, training_args = parse_arguments(argv)
        results = run(args, training_args, command_line=shlex.join(["run_seq2seq.py", *argv]))
    except (ExperimentError, GlueDataError) as err:
        print(f"run_seq2seq.py: error: {err}", file=sys.stderr)
        return 2
    print(f"test average {results.get('test_average')}: " + ", ".join(
        f"{k[5:]} {v:.2f}" for k, v in results["test"].items() if k.endswith("_score")))
    return 0
