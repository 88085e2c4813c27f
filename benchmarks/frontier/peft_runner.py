"""PEFT methods trained under run_glue.py's protocol, and their storage in PEFT's own saving format.

The run is parsed from the same run_glue.py arguments as an AdapterHub run (``parse_arguments``), so the
data (SPEC §3 splits, ``load_task_data``, ``tokenize_split``), the TrainingArguments (batch, epochs, warm-up,
linear schedule, AdamW, bf16, evaluation every epoch, best epoch by the task's main metric) and the head
(AdapterHub's classification head on ``load_adapter_model``'s model, ``--head_layers``) are the project's.
Only the PEFT part is here: the PEFT layers go on the model's query/value projections (``get_peft_model``),
the optimizer gives the head and the PEFT weights their rates, and the best epoch is kept in memory,
because PEFT checkpoints would hold the PEFT weights but not the AdapterHub head.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Dict, Optional

from ._project import (HEAD_FILES, NO_DECAY_TYPES, add_task_head, bits_by_width, bls_bits, head_bytes, limit_rows,
                       load_adapter_model, load_task_data, parse_arguments, prepare_training_args, strip_prefix,
                       tokenize_split, trainer_metrics, versions)
from .plan import VBLORA_SUBVECTORS, Method

PEFT_INSTALL = "pip install 'propetl-adapters[peers]' (or pip install peft)"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
PEFT_CONFIG_FILE = "adapter_config.json"
# The save switch of each two-format method: variant name -> (config attribute, value).
VARIANT_SWITCHES = {"without_projection": ("save_projection", False), "with_projection": ("save_projection", True),
                    "topk": ("save_only_topk_weights", True), "full": ("save_only_topk_weights", False),
                    "as_saved": (None, None)}


def require_peft():
    try:
        import peft
    except ImportError:
        raise ImportError(f"the PEFT methods of the frontier need the peft package: {PEFT_INSTALL}") from None
    return peft


def peft_kwargs_for(method: Method, hidden_size: int) -> dict:
    """The method's PEFT config arguments; VB-LoRA's vector length follows the model (d / 3 sub-vectors)."""
    kwargs = dict(method.peft_kwargs)
    kwargs["target_modules"] = list(kwargs.get("target_modules", ()))
    if method.config == "VBLoRAConfig":
        kwargs["vector_length"] = hidden_size // VBLORA_SUBVECTORS if hidden_size % VBLORA_SUBVECTORS == 0 \
            else hidden_size
    return kwargs


def peft_config(method: Method, hidden_size: int):
    peft = require_peft()
    return getattr(peft, method.config)(**peft_kwargs_for(method, hidden_size))


def _decay_names(model) -> set:
    """Parameter names AdamW decays: neither a bias nor inside a layer norm (the rule of the project's trainer)."""
    from transformers.trainer_pt_utils import get_parameter_names

    return {n for n in get_parameter_names(model, list(NO_DECAY_TYPES)) if not n.endswith("bias")}


def parameter_groups(model, head_ids: set, learning_rate: float, head_learning_rate: float, weight_decay: float,
                     head_weight_decay: float) -> list:
    """AdamW groups: (head | PEFT weights) x (decay | no decay)."""
    decays = _decay_names(model)
    buckets: Dict[tuple, list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            head = id(param) in head_ids
            rate = head_learning_rate if head else learning_rate
            decay = (head_weight_decay if head else weight_decay) if name in decays else 0.0
            buckets.setdefault((rate, decay), []).append(param)
    return [{"params": params, "lr": rate, "weight_decay": decay} for (rate, decay), params in buckets.items()]


def measure_peft_folder(folder: str) -> dict:
    """Bytes on disk of a PEFT adapter folder (weights + config; the model card README.md is not needed to load)
    and the values it stores, by bit width."""
    from safetensors.torch import load_file

    weights = os.path.join(folder, PEFT_WEIGHTS_FILE)
    tensors = load_file(weights)
    groups = bits_by_width(tensors.values())
    return {"bytes_on_disk": os.path.getsize(weights) + os.path.getsize(os.path.join(folder, PEFT_CONFIG_FILE)),
            "weights_file_bytes": os.path.getsize(weights), "values_by_bits": groups, "bits": bls_bits(groups),
            "folder": folder}


def save_variants(peft_model, method: Method, out_dir: str) -> dict:
    """Save the adapter once per saving format of the method and measure each folder."""
    config = peft_model.peft_config["default"]
    variants = {}
    for variant in method.storage_variants:
        attribute, value = VARIANT_SWITCHES[variant]
        if attribute is not None:
            setattr(config, attribute, value)
        folder = os.path.join(out_dir, f"adapter_{variant}")
        peft_model.save_pretrained(folder)
        variants[variant] = measure_peft_folder(folder)
    return variants


def _best_weights_callback(parameters: Dict[str, "object"], metric: str):
    from transformers import TrainerCallback

    class KeepBest(TrainerCallback):
        """Copies the trainable weights at each new best validation score (strictly better, as the Trainer)."""

        def __init__(self):
            self.best, self.step, self.weights = None, None, None

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            value = (metrics or {}).get(f"eval_{metric}")
            if value is not None and (self.best is None or value > self.best):
                self.best, self.step = value, state.global_step
                self.weights = {n: p.detach().clone() for n, p in parameters.items()}

        def restore(self):
            if self.weights is not None:
                for name, param in parameters.items():
                    param.data.copy_(self.weights[name])

    return KeepBest()


def train_peft(argv, method: Method, command_line: Optional[str] = None) -> dict:
    """Train, select, test and save one PEFT method; ``argv`` are run_glue.py arguments (``--output_dir`` is where
    the adapter folders and the head go). Returns the run's results (scores, storage per format, head)."""
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, set_seed

    peft = require_peft()
    started = time.time()
    model_args, data_args, _, propetl_args, training_args = parse_arguments(argv)
    task = load_task_data(data_args)
    training_args = prepare_training_args(training_args, task, propetl_args)
    training_args = dataclasses.replace(training_args, save_strategy="no", load_best_model_at_end=False)
    learning_rate = training_args.learning_rate
    head_learning_rate = method.head_learning_rate if method.head_learning_rate is not None else learning_rate
    weight_decay = method.weight_decay if method.weight_decay is not None else training_args.weight_decay

    set_seed(training_args.seed)  # the order of run_glue.py: seed, tokenizer, model, data, head, module
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path)
    model = load_adapter_model(model_args.model_name_or_path)
    limits = {"train": (data_args.max_train_samples, "--max_train_samples"),
              "validation": (data_args.max_eval_samples, "--max_eval_samples"),
              "test": (data_args.max_eval_samples, "--max_eval_samples")}
    rows = {split: limit_rows(task.splits[split], *limit) for split, limit in limits.items()}
    datasets_ = {split: tokenize_split(split_rows, tokenizer, data_args.max_seq_length, data_args.pad_to_max_length,
                                      task.is_regression) for split, split_rows in rows.items()}
    name = task.name
    add_task_head(model, task, propetl_args)
    model.active_head = name
    config = peft_config(method, model.config.hidden_size)
    peft_model = peft.get_peft_model(model, config)
    head_params = list(model.heads[name].parameters())
    for param in head_params:
        param.requires_grad_(True)
    head_ids = {id(p) for p in head_params}
    module_parameters = sum(p.numel() for p in peft_model.parameters() if p.requires_grad and id(p) not in head_ids)

    trainable = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    keep_best = _best_weights_callback(trainable, training_args.metric_for_best_model)
    groups = parameter_groups(peft_model, head_ids, learning_rate, head_learning_rate, weight_decay,
                              training_args.weight_decay)
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, peft_model)
    trainer = Trainer(model=peft_model, args=training_args, train_dataset=datasets_["train"],
                      eval_dataset=datasets_["validation"], processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=trainer_metrics(task),
                      callbacks=[keep_best], optimizers=(optimizer_cls(groups, **optimizer_kwargs), None))
    train_output = trainer.train()
    keep_best.restore()
    validation = strip_prefix(trainer.evaluate(datasets_["validation"], metric_key_prefix="eval"), "eval")
    test = strip_prefix(trainer.predict(datasets_["test"], metric_key_prefix="test").metrics, "test")

    out_dir = training_args.output_dir
    os.makedirs(out_dir, exist_ok=True)
    variants = save_variants(peft_model, method, out_dir)
    head_dir = os.path.join(out_dir, "head")
    model.save_head(head_dir, name)
    return {"task": task.name, "validation": validation, "test": test, "main_metric": task.main_metric,
            "storage_variants": variants,
            "head": {"parameters": sum(p.numel() for p in head_params), "bytes_on_disk": head_bytes(head_dir),
                     "files": sorted(f for f in os.listdir(head_dir) if f in HEAD_FILES)},
            "trainable_parameters": {"petl_module": module_parameters, "head": sum(p.numel() for p in head_params)},
            "peft_config": config.to_dict(),
            "training": {"global_step": trainer.state.global_step, "epochs": trainer.state.epoch,
                         "train_loss": train_output.training_loss, "best_step": keep_best.step,
                         "best_validation_metric": keep_best.best, "learning_rate": learning_rate,
                         "head_learning_rate": head_learning_rate, "weight_decay": weight_decay,
                         "head_weight_decay": training_args.weight_decay,
                         "dtype": "bf16 autocast" if training_args.bf16 else "fp32"},
            "examples": {k: len(v) for k, v in rows.items()},
            "wall_time_seconds": time.time() - started, "command_line": command_line,
            "versions": {**versions(), "peft": peft.__version__}}
