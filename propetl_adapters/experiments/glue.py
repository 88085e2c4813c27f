"""Single-task GLUE (and user-file) experiments: the body of ``run_glue.py``.

``run(model_args, data_args, adapter_args, propetl_args, training_args)`` loads the data,
applies the paper's split protocol, trains one PETL module (or the whole model) with the
Hugging Face Trainer, keeps the best checkpoint by the task's main metric, scores the
held-out test split and writes ``all_results.json`` and a ``DONE`` marker (written last)
to ``training_args.output_dir``.

The output folder is described in ``run_folder.py``; this runner also writes ``run_arguments.json`` and
exports the adapter together with its prediction head.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from adapters import AdapterArguments, AdapterConfig
from adapters.configuration.adapter_config import ADAPTER_CONFIG_MAP
from transformers import (AutoTokenizer, DataCollatorWithPadding, HfArgumentParser, Trainer, TrainingArguments,
                          default_data_collator, set_seed)
from transformers.trainer_utils import IntervalStrategy

from ..atomic import atomic_write_json
from ..configuration import is_propetl_config
from ..data.glue import TASK_NAMES, GlueDataError, GlueTask, get_task, load_glue_dir, load_glue_online, tokenize_split
from ..data.metrics import accuracy, compute_glue_metrics, f1, pearson, spearmanr
from ..data.splits import DEFAULT_SPLIT_SEED, paper_splits
from ..data.text_files import load_text_files
from ..heads import POOLINGS, add_classification_head
from ..training import ProPETLTrainer, trainable_parameter_count
from .common import (FULL_FINETUNING, ExperimentError, configure_logging, eject_plain_prefix, freeze_layer_norms,
                     is_plain_reparametrised_prefix, load_adapter_model, plain_method_name, read_json_arguments,
                     storage_summary, validation_curve, versions)
from .run_folder import (ARGUMENTS_FILE, DONE_FILE, RESUMED_TRAIN_LOSS_NOTE, ResultsError, clear_finished,
                         export_folder, finish, finished_results, resumable_checkpoint)

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "Pre-trained model: a local folder or a Hugging Face Hub name (e.g. roberta-base)."})
    tokenizer_name: Optional[str] = field(
        default=None, metadata={"help": "Tokenizer folder or name, if different from --model_name_or_path."})
    cache_dir: Optional[str] = field(
        default=None, metadata={"help": "Where downloaded models and tokenizers are cached."})


@dataclass
class DataArguments:
    task_name: Optional[str] = field(
        default=None, metadata={"help": f"GLUE task, one of {', '.join(TASK_NAMES)}. Loaded with `datasets` "
                                        "unless --glue_dir is given."})
    glue_dir: Optional[str] = field(
        default=None, metadata={"help": "Offline GLUE data folder holding <Task>/train.tsv and dev.tsv "
                                        "(e.g. RTE/train.tsv); needs --task_name."})
    train_file: Optional[str] = field(
        default=None, metadata={"help": "Own data instead of GLUE: a .csv/.tsv/.json/.jsonl training file."})
    validation_file: Optional[str] = field(
        default=None, metadata={"help": "Own data: validation file (model selection). Required with --train_file."})
    test_file: Optional[str] = field(
        default=None, metadata={"help": "Own data: test file (reported score). Without it the validation file "
                                        "is halved with --split_seed: first half validation, second half test."})
    text_columns: List[str] = field(
        default_factory=lambda: ["sentence"],
        metadata={"help": "Own data: one or two text column names (a sentence pair)."})
    label_column: str = field(default="label", metadata={"help": "Own data: name of the label column."})
    is_regression: bool = field(
        default=False, metadata={"help": "Own data: labels are real-valued scores (one output, MSE loss)."})
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated to this many tokens."})
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Keep only the first N training examples (debugging, quick runs)."})
    max_eval_samples: Optional[int] = field(
        default=None, metadata={"help": "Keep only the first N validation and N test examples."})
    split_seed: int = field(
        default=DEFAULT_SPLIT_SEED,
        metadata={"help": "Seed of the paper's train/validation/test split (independent of --seed)."})
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Pad every input to --max_seq_length instead of padding per batch."})


@dataclass
class ProPETLArguments:
    mask_learning_rate: Optional[float] = field(
        default=None, metadata={"help": "Learning rate of the mask scores (paper scripts: ProAdapter 3e-3, "
                                        "ProLoRA 3e-2, ProPrefix 1e-4 at --learning_rate 1e-4). Default: "
                                        "--learning_rate times those scripts' ratio (30, 300, 1)."})
    mask_weight_decay: Optional[float] = field(
        default=None, metadata={"help": "Weight decay of the mask scores. Default: --weight_decay (the "
                                        "reference decays the scores with the other weights)."})
    density: Optional[float] = field(
        default=None, metadata={"help": "Kept fraction k in (0, 1] of every mask; overrides the density of "
                                        "--adapter_config (ProPETL configs only)."})
    head_layers: int = field(
        default=2, metadata={"help": "Classification head depth: 1 = one linear layer (d x labels), "
                                     "2 = AdapterHub's default (d x d, tanh, d x labels)."})
    pooling: str = field(
        default="cls", metadata={"help": "What the head reads: cls = the first token (AdapterHub's head), mean = "
                                         "the mean of the real tokens (how sentence encoders such as "
                                         "all-MiniLM-L6-v2 are trained to be read).", "choices": POOLINGS})
    paper_epochs: bool = field(
        default=False, metadata={"help": "Train for the paper's number of epochs of the GLUE task (20 for CoLA, "
                                         "RTE, MRPC, STS-B; 10 for the others); overrides --num_train_epochs."})
    delete_checkpoints: bool = field(
        default=False, metadata={"help": "Delete the checkpoint-* folders once the run has finished (the "
                                         "exported adapter and all_results.json are kept)."})


def add_task_head(model, task: GlueTask, propetl_args: ProPETLArguments) -> None:
    """The task's classification head, named after the task, as --head_layers and --pooling say."""
    add_classification_head(model, task.name, num_labels=task.num_labels, layers=propetl_args.head_layers,
                            pooling=propetl_args.pooling,
                            id2label=dict(enumerate(task.label_names)) if task.label_names else None)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@dataclass
class TaskData:
    """Everything ``run`` needs to know about the data."""

    name: str
    glue_task: Optional[GlueTask]
    splits: Dict[str, list]
    num_labels: int
    is_regression: bool
    label_names: Optional[List[str]]
    metric_names: List[str]
    main_metric: str
    source: str

    def compute_metrics(self, predictions, labels) -> Dict[str, float]:
        if self.glue_task is not None:
            return compute_glue_metrics(self.glue_task, predictions, labels)
        functions = {"accuracy": accuracy, "f1": f1, "pearson": pearson, "spearmanr": spearmanr}
        return {name: 100.0 * functions[name](predictions, labels) for name in self.metric_names}


def load_task_data(data_args: DataArguments) -> TaskData:
    """Load and split the data named by ``data_args`` (GLUE online, GLUE TSV folder, or own files)."""
    uses_files = any([data_args.train_file, data_args.validation_file, data_args.test_file])
    if uses_files and data_args.task_name:
        raise ExperimentError("pass either --task_name (GLUE, with optional --glue_dir) or --train_file/"
                              "--validation_file (own data), not both")
    if data_args.glue_dir and not data_args.task_name:
        raise ExperimentError("--glue_dir needs --task_name (which task folder to read)")
    if not uses_files and not data_args.task_name:
        raise ExperimentError(f"no data: pass --task_name (one of {', '.join(TASK_NAMES)}) or --train_file and "
                              "--validation_file")
    if data_args.task_name:
        return _load_glue(data_args)
    return _load_files(data_args)


def _load_glue(data_args: DataArguments) -> TaskData:
    try:
        task = get_task(data_args.task_name)
    except ValueError as err:
        raise ExperimentError(f"--task_name: {err}") from err
    if data_args.glue_dir:
        if not os.path.isdir(data_args.glue_dir):
            raise ExperimentError(f"--glue_dir {data_args.glue_dir}: not a folder; expected a GLUE data folder "
                                  f"holding {task.folder}/{', '.join(task.tsv_files)}")
        raw = load_glue_dir(data_args.glue_dir, task)
        source = f"GLUE TSV files in {os.path.join(data_args.glue_dir, task.folder)}"
    else:
        raw = load_glue_online(task)
        source = f"datasets.load_dataset{task.hf_dataset!r}"
    try:
        splits = paper_splits(task, raw, seed=data_args.split_seed)
    except ValueError as err:
        raise GlueDataError(f"{source}: {err}") from err
    return TaskData(name=task.name, glue_task=task, splits=splits, num_labels=task.num_labels,
                    is_regression=task.is_regression, label_names=list(task.label_names or []) or None,
                    metric_names=list(task.metrics), main_metric=task.main_metric, source=source)


def _load_files(data_args: DataArguments) -> TaskData:
    if not data_args.train_file:
        raise ExperimentError("--validation_file/--test_file need --train_file (labels are read from it)")
    if not data_args.validation_file:
        raise ExperimentError("--train_file needs --validation_file (the best checkpoint is chosen on it)")
    if not 1 <= len(data_args.text_columns) <= 2:
        raise ExperimentError(f"--text_columns: expected one or two column names, got {data_args.text_columns}")
    files = {"train": data_args.train_file, "validation": data_args.validation_file}
    if data_args.test_file:
        files["test"] = data_args.test_file
    try:
        splits, label_list = load_text_files(files, data_args.text_columns, data_args.label_column,
                                             is_regression=data_args.is_regression)
    except GlueDataError as err:
        raise GlueDataError(f"{err} (set --text_columns / --label_column to the file's column names)") from err
    if "test" not in splits:
        validation = splits["validation"]
        if len(validation) < 2:
            raise GlueDataError(f"{data_args.validation_file}: {len(validation)} row(s); at least 2 are needed to "
                                "halve it into validation and test (or pass --test_file)")
        order = np.random.RandomState(data_args.split_seed).permutation(len(validation))
        half = len(validation) // 2
        splits["validation"] = [validation[i] for i in order[:half]]
        splits["test"] = [validation[i] for i in order[half:]]
    if data_args.is_regression:
        num_labels, metric_names, main = 1, ["pearson", "spearmanr"], "pearson"
    else:
        if len(label_list) < 2:
            raise GlueDataError(f"{data_args.train_file}: column '{data_args.label_column}' holds only the label "
                                f"{label_list}; expected at least two classes (check --label_column)")
        num_labels = len(label_list)
        metric_names, main = (["accuracy", "f1"] if num_labels == 2 else ["accuracy"]), "accuracy"
    return TaskData(name="custom", glue_task=None, splits=splits, num_labels=num_labels,
                    is_regression=data_args.is_regression, label_names=label_list, metric_names=metric_names,
                    main_metric=main, source=", ".join(f"{k}={v}" for k, v in files.items()))


def limit_rows(rows: list, limit: Optional[int], flag: str) -> list:
    """The first ``limit`` rows (all with None); ``flag`` names the option in the error for a limit below 1."""
    if limit is None:
        return rows
    if limit < 1:
        raise ExperimentError(f"{flag} must be a positive number of examples, got {limit}")
    return rows[:limit]


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def resolve_adapter_config(adapter_args, propetl_args: ProPETLArguments):
    """The adapter config object of ``--adapter_config`` with ``--density`` applied (None: full fine-tuning)."""
    density = propetl_args.density
    if density is not None and (isinstance(density, bool) or not 0.0 < density <= 1.0):
        raise ExperimentError(f"--density must be the kept fraction k of each mask, a number in (0, 1]; "
                              f"got {density}")
    if not adapter_args.train_adapter:
        if density is not None or propetl_args.mask_learning_rate is not None:
            raise ExperimentError("--density and --mask_learning_rate need --train_adapter (without it the "
                                  "whole model is fine-tuned and there are no masks)")
        return None
    if not adapter_args.adapter_config:
        raise ExperimentError("--train_adapter needs --adapter_config (e.g. proadapter, prolora, proprefix, "
                              "seq_bn, lora, prefix_tuning, or bracket syntax such as 'proadapter[density=0.3]')")
    try:
        config = AdapterConfig.load(adapter_args.adapter_config)
    except Exception as err:  # unknown names, bad bracket syntax, invalid values, unreadable files
        raise ExperimentError(f"--adapter_config {adapter_args.adapter_config!r}: {err}") from err
    if density is not None:
        if not is_propetl_config(config):
            raise ExperimentError(f"--density applies to ProPETL configs (proadapter, prolora, proprefix), not "
                                  f"--adapter_config {adapter_args.adapter_config!r}")
        try:
            config = config.replace(density=density)
        except ValueError as err:
            raise ExperimentError(f"--density {density}: {err}") from err
    if propetl_args.mask_learning_rate is not None and not is_propetl_config(config):
        logger.warning("--mask_learning_rate has no effect: %r has no masks", adapter_args.adapter_config)
    return config


def method_name(adapter_args, config) -> str:
    """Short method name recorded in the results: proadapter, seq_bn, lora, ..., or full_finetuning."""
    if config is None:
        return FULL_FINETUNING
    if is_propetl_config(config):
        return config.propetl_method
    base = adapter_args.adapter_config.split("[", 1)[0].strip()
    if base in ADAPTER_CONFIG_MAP:
        return base
    return plain_method_name(config)


def unused_trainable_parameters(model, batch: dict) -> List[str]:
    """Names of trainable parameters that get no gradient from one training-mode forward/backward pass.

    Used to set ``ddp_find_unused_parameters``: DDP needs it on when such parameters exist
    (e.g. the unused pooler in full fine-tuning), and it costs an extra graph walk per step
    otherwise. The CPU random state is restored, so the probe does not change the run.
    """
    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            output = model(**batch)
            output.loss.backward()
        unused = [name for name, param in model.named_parameters() if param.requires_grad and param.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return unused


# ---------------------------------------------------------------------------
# Arguments record (compared when a run resumes)
# ---------------------------------------------------------------------------


def _arguments_record(*arg_objects) -> dict:
    record = {}
    for obj in arg_objects:
        if hasattr(obj, "to_sanitized_dict"):
            values = obj.to_sanitized_dict()
        else:
            values = dataclasses.asdict(obj)
        record[type(obj).__name__] = values
    return record


def _changed_arguments(old: dict, new: dict) -> List[str]:
    ignore = {"logging_dir", "resume_from_checkpoint", "overwrite_output_dir"}
    changes = []
    for group, values in new.items():
        for key, value in values.items():
            previous = old.get(group, {}).get(key, value)
            if key not in ignore and previous != value:
                changes.append(f"{key}: {previous!r} -> {value!r}")
    return changes


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def prepare_training_args(training_args, task: TaskData, propetl_args: ProPETLArguments):
    """Protocol settings: evaluate and save together, keep the best checkpoint by the task's main metric."""
    changes: Dict[str, Any] = {"load_best_model_at_end": True, "metric_for_best_model": task.main_metric,
                               "greater_is_better": True, "label_names": ["labels"]}
    if not torch.cuda.is_available():
        changes["dataloader_pin_memory"] = False
    eval_strategy = training_args.eval_strategy
    # --save_steps given (the default save_strategy is "steps" every 500): checkpoints must coincide with
    # evaluations to keep the best one, so a run without --eval_strategy evaluates at those steps.
    save_steps = training_args.save_steps if training_args.save_strategy == IntervalStrategy.STEPS and \
        training_args.save_steps != type(training_args).__dataclass_fields__["save_steps"].default else None
    if eval_strategy == IntervalStrategy.NO:
        eval_strategy = IntervalStrategy.STEPS if save_steps else IntervalStrategy.EPOCH
        changes["eval_strategy"] = eval_strategy.value
    changes["save_strategy"] = eval_strategy.value
    if eval_strategy == IntervalStrategy.STEPS:
        eval_steps = save_steps if changes.get("eval_strategy") == "steps" else \
            training_args.eval_steps or training_args.logging_steps
        changes.update(eval_steps=eval_steps, save_steps=eval_steps)
    if save_steps and changes.get("save_steps") != save_steps:
        logger.warning("--save_steps %s replaced: checkpoints are saved at every evaluation (%s) so that the best "
                       "one can be kept", save_steps, f"every {changes['save_steps']} steps"
                       if eval_strategy == IntervalStrategy.STEPS else "every epoch")
    if propetl_args.paper_epochs:
        if task.glue_task is None:
            raise ExperimentError("--paper_epochs needs a GLUE --task_name (own data has no paper epochs)")
        changes["num_train_epochs"] = float(task.glue_task.paper_epochs)
    return dataclasses.replace(training_args, **changes)


def strip_prefix(metrics: dict, prefix: str) -> dict:
    """The Trainer's ``<prefix>_<name>`` metrics under their plain names."""
    return {k[len(prefix) + 1:] if k.startswith(prefix + "_") else k: v for k, v in metrics.items()}


def trainer_metrics(task: TaskData) -> Callable[[Any], Dict[str, float]]:
    """The Trainer's ``compute_metrics`` for ``task``: each row's logits become its prediction (the value for
    regression, else the arg-max class) and the task's metrics score them against the labels."""
    def compute_metrics(prediction) -> Dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        logits = np.asarray(logits)
        predictions = logits.reshape(-1) if task.is_regression else logits.argmax(axis=-1)
        return task.compute_metrics(predictions, np.asarray(prediction.label_ids).reshape(-1))
    return compute_metrics


def run(model_args: ModelArguments, data_args: DataArguments, adapter_args, propetl_args: ProPETLArguments,
        training_args, *, command_line: Optional[str] = None,
        callbacks: Optional[Sequence[Any]] = None) -> dict:
    """Train, select, test, export and record one experiment; returns the content of ``all_results.json``.

    A finished run (``DONE`` in ``output_dir``) is not repeated: its results are returned, unless
    ``--overwrite_output_dir`` is set, which deletes its checkpoints and results and starts again.
    An unfinished run with checkpoints resumes from the last one.

    Raises:
        ExperimentError: bad arguments (the message names the flag).
        GlueDataError: missing or malformed data files (the message names the file).
    """
    started = time.time()
    output_dir = training_args.output_dir
    if not output_dir:
        raise ExperimentError("--output_dir is required")
    if propetl_args.head_layers < 1:
        raise ExperimentError(f"--head_layers must be 1 (one linear layer) or more, got {propetl_args.head_layers}")
    if data_args.max_seq_length < 8:
        raise ExperimentError(f"--max_seq_length must be at least 8 tokens, got {data_args.max_seq_length}")

    # Finished, unfinished or fresh output folder.
    main_process = training_args.process_index == 0
    done = finished_results(output_dir, training_args.overwrite_output_dir)
    if done is not None:
        return done

    # Validate everything cheap before touching the output folder or loading the model.
    adapter_config = resolve_adapter_config(adapter_args, propetl_args)
    method = method_name(adapter_args, adapter_config)
    with training_args.main_process_first(desc="loading data"):  # one download when several processes run
        task = load_task_data(data_args)
    training_args = prepare_training_args(training_args, task, propetl_args)
    if training_args.num_train_epochs <= 0 and training_args.max_steps <= 0:
        raise ExperimentError("nothing to train: --num_train_epochs and --max_steps are both 0")

    resume_from = training_args.resume_from_checkpoint
    if training_args.overwrite_output_dir:
        resume_from = None
        if main_process:
            clear_finished(output_dir)
    elif resume_from is None:
        resume_from = resumable_checkpoint(output_dir)
    if resume_from is not None:
        if not os.path.isdir(resume_from):
            raise ExperimentError(f"--resume_from_checkpoint {resume_from}: not a folder")
        logger.info("resuming the unfinished run in %s from %s", output_dir, resume_from)

    arguments = _arguments_record(model_args, data_args, adapter_args, propetl_args, training_args)
    arguments_path = os.path.join(output_dir, ARGUMENTS_FILE)
    if resume_from is not None and os.path.isfile(arguments_path):
        with open(arguments_path, encoding="utf-8") as handle:
            changed = _changed_arguments(json.load(handle), json.loads(json.dumps(arguments, default=str)))
        if changed:
            logger.warning("resuming with changed arguments: %s", "; ".join(changed))
    if main_process:
        os.makedirs(output_dir, exist_ok=True)
        atomic_write_json(arguments_path, arguments, default=str)

    train_rows = limit_rows(task.splits["train"], data_args.max_train_samples, "--max_train_samples")
    validation_rows = limit_rows(task.splits["validation"], data_args.max_eval_samples, "--max_eval_samples")
    test_rows = limit_rows(task.splits["test"], data_args.max_eval_samples, "--max_eval_samples")
    logger.info("data: %s; %d train, %d validation, %d test examples", task.source, len(train_rows),
                len(validation_rows), len(test_rows))

    set_seed(training_args.seed)
    tokenizer_name = model_args.tokenizer_name or model_args.model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_name, cache_dir=model_args.cache_dir)
    except (OSError, ValueError) as err:
        flag = "--tokenizer_name" if model_args.tokenizer_name else "--model_name_or_path"
        raise ExperimentError(f"{flag} {tokenizer_name}: cannot load a tokenizer ({err})") from err
    try:
        model = load_adapter_model(model_args.model_name_or_path, cache_dir=model_args.cache_dir)
    except (OSError, ValueError) as err:
        raise ExperimentError(f"--model_name_or_path {model_args.model_name_or_path}: cannot load a model with "
                              f"AutoAdapterModel ({err})") from err

    with training_args.main_process_first(desc="tokenizing"):
        datasets_ = {name: tokenize_split(rows, tokenizer, data_args.max_seq_length, data_args.pad_to_max_length,
                                          task.is_regression)
                     for name, rows in (("train", train_rows), ("validation", validation_rows), ("test", test_rows))}

    name = task.name
    add_task_head(model, task, propetl_args)
    layer_norms_frozen = 0
    if adapter_config is not None:
        model.add_adapter(name, config=adapter_config)
        model.train_adapter(name)
        model.set_active_adapters(name)
        layer_norms_frozen = freeze_layer_norms(model)
    else:
        model.active_head = name
        for param in model.parameters():
            param.requires_grad_(True)

    head_parameters = sum(p.numel() for p in model.heads[name].parameters())
    head_ids = {id(p) for p in model.heads[name].parameters()}
    trainable_total = trainable_parameter_count(model.parameters())
    trainable_module = trainable_parameter_count(p for p in model.parameters() if id(p) not in head_ids)
    logger.info("method %s: %s trainable parameters (%s in the PETL module / model, %s in the head)", method,
                f"{trainable_total:,}", f"{trainable_module:,}", f"{head_parameters:,}")

    collator = default_data_collator if data_args.pad_to_max_length else DataCollatorWithPadding(tokenizer)
    if training_args.world_size > 1 and training_args.ddp_find_unused_parameters is None:
        probe = collator([datasets_["train"][i] for i in range(min(2, len(datasets_["train"])))])
        unused = unused_trainable_parameters(model, dict(probe))
        training_args.ddp_find_unused_parameters = bool(unused)
        logger.info("ddp_find_unused_parameters=%s%s", bool(unused),
                    f" ({len(unused)} trainable tensors get no gradient, e.g. {unused[0]})" if unused else "")

    trainer_kwargs = dict(model=model, args=training_args, train_dataset=datasets_["train"],
                          eval_dataset=datasets_["validation"], processing_class=tokenizer, data_collator=collator,
                          compute_metrics=trainer_metrics(task), callbacks=list(callbacks or []))
    if adapter_config is not None:
        trainer = ProPETLTrainer(**trainer_kwargs, mask_learning_rate=propetl_args.mask_learning_rate,
                                 mask_weight_decay=propetl_args.mask_weight_decay)
    else:
        trainer = Trainer(**trainer_kwargs)

    train_output = trainer.train(resume_from_checkpoint=resume_from)
    curve = validation_curve(trainer.state.log_history, task.main_metric)  # before the final evaluations log theirs
    validation_metrics = strip_prefix(trainer.evaluate(datasets_["validation"], metric_key_prefix="eval"), "eval")
    test_metrics = strip_prefix(trainer.predict(datasets_["test"], metric_key_prefix="test").metrics, "test")

    results: Dict[str, Any] = {
        "task": task.name, "method": method, "test": test_metrics, "validation": validation_metrics,
        "main_metric": task.main_metric, "metric_names": task.metric_names,
    }
    if not trainer.is_world_process_zero():
        return results

    export_dir = export_folder(output_dir, adapter=adapter_config is not None)
    shutil.rmtree(export_dir, ignore_errors=True)
    if adapter_config is not None:
        if is_plain_reparametrised_prefix(adapter_config):
            eject_plain_prefix(model, name)
        model.save_adapter(export_dir, name, with_head=True)
    else:
        model.save_pretrained(export_dir)
        tokenizer.save_pretrained(export_dir)
    storage = storage_summary(model, name if adapter_config is not None else None, method, export_dir,
                              trainable_module, head_parameters)

    state = trainer.state
    # The rates the optimizer gave the scores (defaults resolved); full fine-tuning has none.
    mask_learning_rate, mask_weight_decay = trainer.mask_rates() if hasattr(trainer, "mask_rates") else (None, None)
    results.update({
        "model_name_or_path": model_args.model_name_or_path,
        "adapter_config": adapter_args.adapter_config if adapter_config is not None else None,
        "adapter_config_resolved": adapter_config.to_dict() if adapter_config is not None else None,
        "seed": training_args.seed, "split_seed": data_args.split_seed, "data_source": task.source,
        "examples": {"train": len(train_rows), "validation": len(validation_rows), "test": len(test_rows)},
        "trainable_parameters": {"total": trainable_total, "petl_module": trainable_module,
                                 "head": head_parameters, "layer_norm_parameters_frozen": layer_norms_frozen},
        "storage": storage,
        "masks": trainer.mask_movement() if hasattr(trainer, "mask_movement") else None,
        "training": {"global_step": state.global_step, "epochs": state.epoch,
                     "train_loss": train_output.training_loss, "best_checkpoint": state.best_model_checkpoint,
                     "best_validation_metric": state.best_metric, "validation_curve": curve,
                     "resumed_from_checkpoint": resume_from, "world_size": training_args.world_size,
                     **({"train_loss_note": RESUMED_TRAIN_LOSS_NOTE} if resume_from is not None else {}),
                     "learning_rate": training_args.learning_rate,
                     "mask_learning_rate": mask_learning_rate, "mask_weight_decay": mask_weight_decay,
                     "effective_batch_size": training_args.per_device_train_batch_size
                     * training_args.gradient_accumulation_steps * training_args.world_size},
        "exported_to": export_dir,
        "wall_time_seconds": time.time() - started,
        "command_line": command_line,
        "arguments": json.loads(json.dumps(arguments, default=str)),
        "versions": versions(),
    })
    return finish(output_dir, results, propetl_args.delete_checkpoints)


def format_results(results: dict) -> str:
    """A short human-readable summary of one run."""
    storage = results.get("storage") or {}
    metrics = ", ".join(f"{k} {results['test'][k]:.2f}" for k in results.get("metric_names", [])
                        if k in results.get("test", {}))
    lines = [f"{results.get('task')} / {results.get('method')}: test {metrics}"]
    if storage:
        lines.append(f"  trainable parameters {storage['trainable_parameters']:,} "
                     f"({storage['trainable_percent']:.3f} % of the model), BLS {storage['bls_bits']:,} bits "
                     f"({storage['bls_percent']:.4f} %), {storage['bytes_on_disk'] or 0:,} bytes on disk; "
                     f"head {storage['head_parameters']:,} parameters (not included)")
    masks = results.get("masks")
    if masks:
        lines.append(f"  masks: {100 * masks['moved']:.1f} % of the kept entries moved from the initial draw "
                     f"(a fresh random draw: {100 * masks['fresh_draw_level']:.1f} %)")
    return "\n".join(lines)


def parse_arguments(argv: Optional[Sequence[str]] = None):
    """Parse a command line (or a single .json file of arguments) into the five argument objects."""
    parser = HfArgumentParser((ModelArguments, DataArguments, AdapterArguments, ProPETLArguments,
                               TrainingArguments))
    parser.set_defaults(report_to="none")
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_dict(read_json_arguments(argv[0]))
    if not any(a.split("=", 1)[0] in ("--output_dir", "--output-dir") for a in argv) \
            and not any(a in ("-h", "--help") for a in argv):
        raise ExperimentError(f"--output_dir is required (results, checkpoints and the {DONE_FILE} marker go there)")
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: Optional[Sequence[str]] = None, prog: str = "run_glue.py") -> int:
    """Command-line entry: returns 0 on success, 2 on bad arguments or data (message on stderr)."""
    configure_logging()
    try:
        args = parse_arguments(argv)
        command = shlex.join(sys.orig_argv) if argv is None else shlex.join([prog, *argv])
        results = run(*args, command_line=command)
    except (ExperimentError, GlueDataError, ResultsError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if "storage" in results:
        print(format_results(results))
    return 0
