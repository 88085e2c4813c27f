"""End-to-end runs of run_glue (in-process ``run``) on tiny random models and tiny GLUE TSVs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from propetl_adapters.data.glue import GlueDataError
from propetl_adapters.experiments import glue as experiment
from propetl_adapters.experiments.common import ExperimentError
from propetl_adapters.experiments.glue import main, parse_arguments, run
from propetl_adapters.experiments.run_folder import (ADAPTER_DIR, DONE_FILE, MODEL_DIR, RESULTS_FILE,
                                                     RESUMED_TRAIN_LOSS_NOTE, checkpoint_folders)
from propetl_adapters.heads import MEAN_POOLED_HEAD
from propetl_adapters.mask_io import MASK_FILE_NAME

from .conftest import REPO_ROOT, assert_same_tensors, exported_tensors, write_tsv

# Small versions of the six methods (hidden size 32).
METHODS = {
    "proadapter": "proadapter[reduction_factor=4]",
    "prolora": "prolora[r=4,alpha=6]",
    "proprefix": "proprefix[prefix_length=4,bottleneck_size=16]",
    "seq_bn": "seq_bn[reduction_factor=4]",
    "lora": "lora[r=4,alpha=4]",
    "prefix_tuning": "prefix_tuning[prefix_length=4,bottleneck_size=16]",
}


def base_argv(model_dir, output_dir, glue_dir=None, task="rte", steps=2):
    argv = ["--model_name_or_path", str(model_dir), "--output_dir", str(output_dir),
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
            "--max_steps", str(steps), "--eval_strategy", "steps", "--eval_steps", "1",
            "--learning_rate", "1e-2", "--warmup_ratio", "0.1", "--weight_decay", "0.1",
            "--max_seq_length", "32", "--use_cpu", "--report_to", "none", "--logging_steps", "1",
            "--disable_tqdm", "true", "--seed", "3"]
    if task is not None:
        argv += ["--task_name", task, "--glue_dir", str(glue_dir)]
    return argv


def run_argv(argv, **kwargs):
    return run(*parse_arguments(argv), **kwargs)


def one_exact_step_argv(model_dir, glue_dir, output_dir, batch_size: int, accumulation: int):
    """One plain-SGD step (no warm-up, decay or clipping, which would hide a scaled gradient) on 8 examples."""
    return (base_argv(model_dir, output_dir, glue_dir, steps=1)
            + adapter_argv("proadapter[reduction_factor=4]")
            + ["--per_device_train_batch_size", str(batch_size), "--gradient_accumulation_steps", str(accumulation),
               "--optim", "sgd", "--learning_rate", "0.5", "--warmup_ratio", "0", "--weight_decay", "0",
               "--max_grad_norm", "0", "--pad_to_max_length", "--eval_strategy", "no", "--save_strategy", "no"])


def adapter_argv(config):
    return [] if config is None else ["--train_adapter", "--adapter_config", config]


def read_results(output_dir) -> dict:
    with open(Path(output_dir) / RESULTS_FILE, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.mark.slow
@pytest.mark.parametrize("method", [*METHODS, "full_finetuning"])
def test_two_step_run_of_every_method(method, tiny_bert_dir, glue_dir, tmp_path):
    config = METHODS.get(method)
    extra = ["--mask_learning_rate", "5e-2"] if method.startswith("pro") else []
    out = tmp_path / "run"
    results = run_argv(base_argv(tiny_bert_dir, out, glue_dir) + adapter_argv(config) + extra)

    assert (out / DONE_FILE).is_file()
    assert read_results(out) == json.loads(json.dumps(results))
    assert results["method"] == method and results["task"] == "rte"
    assert set(results["test"]) >= {"accuracy", "loss"} and set(results["validation"]) >= {"accuracy"}
    assert results["examples"] == {"train": 32, "validation": 8, "test": 8}
    assert results["training"]["global_step"] == 2
    assert results["training"]["best_checkpoint"] is not None  # evaluated at steps 1 and 2
    curve = results["training"]["validation_curve"]  # the selection metric at each evaluation of training
    assert [point["step"] for point in curve] == [1, 2] and [point["epoch"] for point in curve] == [0.25, 0.5]
    assert max(point["value"] for point in curve) == results["training"]["best_validation_metric"]
    masked = method.startswith("pro")
    # The rates the optimizer used: the given mask lr, and the scores decayed like the other weights.
    assert results["training"]["mask_learning_rate"] == (5e-2 if masked else None)
    assert results["training"]["mask_weight_decay"] == (0.1 if masked else None)  # base_argv: --weight_decay 0.1
    storage = results["storage"]
    assert storage["bls_bits"] > 0 and storage["bytes_on_disk"] > 0 and storage["head_parameters"] > 0
    assert 0 < storage["trainable_percent"] and 0 < storage["bls_percent"]
    params = results["trainable_parameters"]
    assert params["total"] == params["petl_module"] + params["head"]
    exported = out / (MODEL_DIR if config is None else ADAPTER_DIR)
    assert results["exported_to"] == str(exported)
    if not masked:
        assert results["masks"] is None
    if config is None:
        assert (exported / "model.safetensors").is_file()
        assert storage["bls_percent"] == pytest.approx(100.0)
        assert params["petl_module"] == storage["base_model_parameters"]  # everything trains, layer norms too
    else:
        assert (exported / "adapter_config.json").is_file() and (exported / "head_config.json").is_file()
        assert storage["bls_percent"] < 100.0
        assert params["layer_norm_parameters_frozen"] == 0  # train_adapter already froze the model's norms
    if method.startswith("pro"):
        assert (exported / MASK_FILE_NAME).is_file()
        # The mask movement: one measurement per evaluation (steps 1 and 2), then the best checkpoint's.
        assert [h["step"] for h in results["masks"]["history"]] == [1, 2]
        assert 0 <= results["masks"]["moved"] <= results["masks"]["most_moved"] <= 1
        plain = storage["plain_counterpart"]
        assert plain["method"] == {"proadapter": "seq_bn", "prolora": "lora", "proprefix": "prefix_tuning"}[method]
        assert storage["stored_parameters_by_bits"]["1"] > 0  # the 1-bit masks
        assert storage["bls_bits"] < plain["bls_bits"]


@pytest.mark.slow
def test_loss_and_update_do_not_depend_on_gradient_accumulation(tiny_roberta_no_dropout_dir, glue_dir, tmp_path):
    """Batch 8 in one step and 2 x 4 accumulated: the same loss and the same weights after the step."""
    whole = run_argv(one_exact_step_argv(tiny_roberta_no_dropout_dir, glue_dir, tmp_path / "whole", 8, 1))
    halves = run_argv(one_exact_step_argv(tiny_roberta_no_dropout_dir, glue_dir, tmp_path / "halves", 4, 2))
    assert whole["training"]["effective_batch_size"] == halves["training"]["effective_batch_size"] == 8
    assert_same_tensors(exported_tensors(tmp_path / "whole"), exported_tensors(tmp_path / "halves"))
    assert halves["training"]["train_loss"] == pytest.approx(whole["training"]["train_loss"], rel=1e-5)


def reloaded_test_loss(model_dir, run_dir) -> float:
    """Cross-entropy on the run's test half of a fresh backbone with the run's exported adapter and head loaded."""
    from adapters import AutoAdapterModel
    from transformers import DataCollatorWithPadding

    from benchmarks.compact_accuracy import load_test_split

    with open(Path(run_dir) / "run_arguments.json", encoding="utf-8") as handle:
        _, tokenizer, test = load_test_split(json.load(handle))
    model = AutoAdapterModel.from_pretrained(model_dir)
    model.load_adapter(str(Path(run_dir) / ADAPTER_DIR), set_active=True)
    model.eval()
    batch = DataCollatorWithPadding(tokenizer)([test[i] for i in range(len(test))])
    with torch.no_grad():
        return model(**batch).loss.item()


@pytest.mark.slow
@pytest.mark.parametrize("method, pooling", [(method, "cls") for method in METHODS] + [("proprefix", "mean")])
def test_exported_adapter_reloads_with_the_trained_predictions(method, pooling, tiny_bert_dir, glue_dir, tmp_path):
    """A fresh model with the exported adapter reproduces the test loss the run measured on its trained model
    (an adapter whose weights are dropped on load, e.g. an ejected prefix, would score like a random one);
    a mean-pooled head comes back as one (a first-token head would score otherwise)."""
    out = tmp_path / "run"
    extra = ["--mask_learning_rate", "5e-2"] if method.startswith("pro") else []
    results = run_argv(base_argv(tiny_bert_dir, out, glue_dir) + adapter_argv(METHODS[method]) + extra
                       + ["--head_layers", "1", "--learning_rate", "5e-2", "--pooling", pooling])
    with open(out / ADAPTER_DIR / "head_config.json", encoding="utf-8") as handle:
        head_type = json.load(handle)["config"]["head_type"]
    assert head_type == {"cls": "classification", "mean": MEAN_POOLED_HEAD}[pooling]
    assert reloaded_test_loss(tiny_bert_dir, out) == pytest.approx(results["test"]["loss"], rel=1e-4, abs=1e-6)


def test_pooling_must_be_cls_or_mean(tiny_bert_dir, glue_dir, tmp_path):
    with pytest.raises(SystemExit):
        run_argv(base_argv(tiny_bert_dir, tmp_path / "run", glue_dir) + ["--pooling", "max"])


@pytest.mark.slow
def test_regression_task_on_roberta_and_cola_without_header(tiny_roberta_dir, tiny_bert_dir, glue_dir, tmp_path):
    stsb = run_argv(base_argv(tiny_roberta_dir, tmp_path / "stsb", glue_dir, task="stsb")
                    + adapter_argv(METHODS["prolora"]) + ["--density", "0.3", "--mask_learning_rate", "3e-2"])
    assert stsb["main_metric"] == "pearson" and {"pearson", "spearmanr"} <= set(stsb["test"])
    assert stsb["adapter_config_resolved"]["density"] == 0.3
    assert stsb["storage"]["head_parameters"] == 32 * 32 + 32 + 32 + 1  # default 2-layer head, one output
    cola = run_argv(base_argv(tiny_roberta_dir, tmp_path / "cola", glue_dir, task="cola")
                    + adapter_argv(METHODS["proprefix"]) + ["--pad_to_max_length"])
    assert "matthews_correlation" in cola["test"]


@pytest.mark.slow
def test_layer_norms_of_an_adapter_are_frozen_too(tiny_bert_dir, glue_dir, tmp_path):
    results = run_argv(base_argv(tiny_bert_dir, tmp_path / "run", glue_dir, steps=1)
                       + adapter_argv("seq_bn[reduction_factor=4,ln_before=True]"))
    assert results["trainable_parameters"]["layer_norm_parameters_frozen"] == 2 * 2 * 32  # gamma, beta x 2 layers


class Interrupt(TrainerCallback):
    """Stops training with an exception at a given step (after that step's checkpoint is written)."""

    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt(f"interrupted at step {self.at_step}")


def _adapter_state(folder: Path) -> dict:
    return torch.load(folder / ADAPTER_DIR / "pytorch_adapter.bin", weights_only=True)


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_checkpoint_exactly(tiny_bert_dir, glue_dir, tmp_path):
    argv_extra = adapter_argv(METHODS["proadapter"]) + ["--mask_learning_rate", "5e-2", "--save_total_limit", "2"]
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_argv(base_argv(tiny_bert_dir, resumed, glue_dir, steps=4) + argv_extra, callbacks=[Interrupt(2)])
    assert not (resumed / DONE_FILE).exists() and not (resumed / RESULTS_FILE).exists()
    assert [Path(p).name for p in checkpoint_folders(str(resumed))] == ["checkpoint-1", "checkpoint-2"]

    results = run_argv(base_argv(tiny_bert_dir, resumed, glue_dir, steps=4) + argv_extra)
    assert results["training"]["resumed_from_checkpoint"].endswith("checkpoint-2")
    assert results["training"]["global_step"] == 4 and (resumed / DONE_FILE).is_file()

    straight = tmp_path / "straight"
    reference = run_argv(base_argv(tiny_bert_dir, straight, glue_dir, steps=4) + argv_extra)
    assert reference["training"]["resumed_from_checkpoint"] is None
    # The Trainer's train_loss of a resumed run covers only the steps after the resume: it says so.
    assert results["training"]["train_loss_note"] == RESUMED_TRAIN_LOSS_NOTE
    assert "train_loss_note" not in reference["training"]
    assert reference["test"]["loss"] == pytest.approx(results["test"]["loss"], rel=1e-5)
    a, b = _adapter_state(resumed), _adapter_state(straight)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    masks = [(folder / ADAPTER_DIR / MASK_FILE_NAME).read_bytes() for folder in (resumed, straight)]
    assert masks[0] == masks[1]
    # The checkpoint restores the log history, so the resumed run's validation curve is the whole curve.
    assert results["training"]["validation_curve"] == reference["training"]["validation_curve"]
    assert len(results["training"]["validation_curve"]) == 4
    # The resumed run measures its mask movement from the initial draw saved at step 0, so it matches.
    assert results["masks"] == reference["masks"] and results["masks"]["moved"] > 0

    # A finished run is not repeated: the recorded results come back, nothing is retrained.
    again = run_argv(base_argv(tiny_bert_dir, resumed, glue_dir, steps=6) + argv_extra)
    assert again == read_results(resumed) and again["training"]["global_step"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("method", ["proadapter", "prolora", "proprefix"])
def test_masks_move_when_their_scores_learn_and_only_then(method, tiny_bert_dir, glue_dir, tmp_path):
    """The movement measures training, not noise: at mask lr 0 the masks stay the initial draw exactly; at
    5e-2 they move within four steps (ProLoRA's only from the third: its mask gradients are 0 while LoRA's B is
    still 0, and step 1 is warm-up at lr 0)."""
    moved = {}
    for mask_lr in ("0", "5e-2"):
        results = run_argv(base_argv(tiny_bert_dir, tmp_path / mask_lr, glue_dir, steps=4)
                           + adapter_argv(METHODS[method]) + ["--mask_learning_rate", mask_lr])
        moved[mask_lr] = [h["moved"] for h in results["masks"]["history"]]
        if mask_lr == "0":
            assert "masks: 0.0 % of the kept entries moved from the initial draw" in experiment.format_results(results)
    assert moved["0"] == [0.0] * 4
    assert moved["5e-2"][-1] > 0


@pytest.mark.slow
def test_more_steps_after_a_stop_continue_from_the_checkpoint(tiny_bert_dir, glue_dir, tmp_path):
    """A run stopped early (max_steps reached, DONE removed) continues when rerun with a larger budget."""
    out = tmp_path / "run"
    extra = adapter_argv(METHODS["lora"])
    run_argv(base_argv(tiny_bert_dir, out, glue_dir, steps=2) + extra)
    (out / DONE_FILE).unlink()
    results = run_argv(base_argv(tiny_bert_dir, out, glue_dir, steps=3) + extra)
    assert results["training"]["resumed_from_checkpoint"].endswith("checkpoint-2")
    assert results["training"]["global_step"] == 3


@pytest.mark.slow
def test_own_csv_files_with_a_held_out_half(tiny_bert_dir, tmp_path):
    rows = [[f"text number {i} good" if i % 2 else f"text number {i} bad", ("pos", "neg")[i % 2]] for i in range(24)]
    train, valid = tmp_path / "train.csv", tmp_path / "valid.csv"
    train.write_text("review,verdict\n" + "\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    valid.write_text("review,verdict\n" + "\n".join(",".join(r) for r in rows[:10]) + "\n", encoding="utf-8")
    argv = base_argv(tiny_bert_dir, tmp_path / "out", task=None) + [
        "--train_file", str(train), "--validation_file", str(valid), "--text_columns", "review",
        "--label_column", "verdict"] + adapter_argv(METHODS["seq_bn"])
    results = run_argv(argv)
    assert results["task"] == "custom" and results["examples"] == {"train": 24, "validation": 5, "test": 5}
    assert {"accuracy", "f1"} <= set(results["test"])


# ---------------------------------------------------------------------------
# Bad input: clear message, non-zero exit, no DONE marker
# ---------------------------------------------------------------------------


def _bad_glue_dir(tmp_path: Path, kind: str) -> Path:
    root = tmp_path / "bad_glue"
    header = ["index", "sentence1", "sentence2", "label"]
    rows = [[str(i), "a cat", "a dog", "entailment"] for i in range(6)]
    write_tsv(root / "RTE" / "train.tsv", header, rows)
    if kind == "malformed":
        write_tsv(root / "RTE" / "dev.tsv", header, rows[:2] + [["9", "only two", "fields\textra", "entailment"]])
    return root


@pytest.mark.parametrize("case, expected", [
    ("missing_tsv", ["dev.tsv", "file not found"]),
    ("malformed_tsv", ["dev.tsv", "line 4", "expected 4"]),
    ("unknown_task", ["--task_name", "unknown GLUE task 'sst3'", "rte"]),
    ("density_zero", ["--density", "(0, 1]"]),
    ("density_plain", ["--density", "ProPETL"]),
    ("bad_config", ["--adapter_config", "proadaptor"]),
    ("label_column", ["train.csv", "'target'", "--label_column"]),
    ("no_output_dir", ["--output_dir"]),
    ("files_and_task", ["--task_name", "--train_file"]),
])
def test_bad_input_exits_non_zero_with_a_clear_message(case, expected, tiny_bert_dir, glue_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = base_argv(tiny_bert_dir, out, glue_dir) + adapter_argv("proadapter")
    if case == "missing_tsv":
        argv = base_argv(tiny_bert_dir, out, _bad_glue_dir(tmp_path, "missing")) + adapter_argv("proadapter")
    elif case == "malformed_tsv":
        argv = base_argv(tiny_bert_dir, out, _bad_glue_dir(tmp_path, "malformed")) + adapter_argv("proadapter")
    elif case == "unknown_task":
        argv[argv.index("rte")] = "sst3"
    elif case == "density_zero":
        argv += ["--density", "0"]
    elif case == "density_plain":
        argv = base_argv(tiny_bert_dir, out, glue_dir) + adapter_argv("seq_bn") + ["--density", "0.5"]
    elif case == "bad_config":
        argv = base_argv(tiny_bert_dir, out, glue_dir) + adapter_argv("proadaptor")
    elif case == "label_column":
        csv = tmp_path / "train.csv"
        csv.write_text("sentence,label\na b,1\nc d,0\n", encoding="utf-8")
        argv = base_argv(tiny_bert_dir, out, task=None) + ["--train_file", str(csv), "--validation_file", str(csv),
                                                            "--label_column", "target"]
    elif case == "no_output_dir":
        i = argv.index("--output_dir")
        del argv[i:i + 2]
    elif case == "files_and_task":
        argv += ["--train_file", "x.csv", "--validation_file", "y.csv"]
    assert main(argv) == 2
    message = capsys.readouterr().err
    assert message.startswith("run_glue.py: error:")
    for part in expected:
        assert part in message, (part, message)
    assert not (out / DONE_FILE).exists()
    assert not out.exists() or not checkpoint_folders(str(out))


def test_errors_raise_typed_exceptions_in_process(tiny_bert_dir, glue_dir, tmp_path):
    with pytest.raises(ExperimentError, match="--density"):
        run_argv(base_argv(tiny_bert_dir, tmp_path, glue_dir) + adapter_argv("prolora") + ["--density", "1.5"])
    with pytest.raises(GlueDataError, match="file not found"):
        run_argv(base_argv(tiny_bert_dir, tmp_path, tmp_path) + adapter_argv("prolora"))


def test_command_line_exit_code_and_json_arguments(tiny_bert_dir, glue_dir, tmp_path):
    """The real process: exit status 2 and the message on stderr; a .json argument file is accepted."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    config = {"model_name_or_path": tiny_bert_dir, "output_dir": str(tmp_path / "out"), "task_name": "rte",
              "glue_dir": glue_dir, "train_adapter": True, "adapter_config": "proadapter", "density": 0,
              "max_steps": 1, "use_cpu": True, "report_to": "none"}
    path = tmp_path / "args.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_glue.py"), str(path)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "run_glue.py: error: --density must be" in proc.stderr
    assert not (tmp_path / "out" / DONE_FILE).exists()


# ---------------------------------------------------------------------------
# Data sources and protocol settings (no training)
# ---------------------------------------------------------------------------


def test_online_task_name_uses_datasets_and_the_paper_split(glue_dir, monkeypatch):
    """Without --glue_dir the task is loaded online (here: a stand-in returning the same rows)."""
    from propetl_adapters.data.glue import load_glue_dir

    calls = []

    def fake_online(task):
        calls.append(task.name)
        return load_glue_dir(glue_dir, task)

    monkeypatch.setattr(experiment, "load_glue_online", fake_online)
    data = experiment.load_task_data(experiment.DataArguments(task_name="STS-B"))
    assert calls == ["stsb"] and data.source.startswith("datasets.load_dataset")
    assert data.is_regression and data.num_labels == 1 and data.main_metric == "pearson"
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [32, 8, 8]


@pytest.mark.parametrize("task, epochs", [("rte", 20.0), ("cola", 20.0)])
def test_paper_epochs_and_selection_settings(task, epochs, tiny_bert_dir, glue_dir, tmp_path):
    args = parse_arguments(["--model_name_or_path", tiny_bert_dir, "--output_dir", str(tmp_path), "--task_name",
                            task, "--glue_dir", glue_dir, "--paper_epochs", "--num_train_epochs", "3"])
    data = experiment.load_task_data(args[1])
    prepared = experiment.prepare_training_args(args[4], data, args[3])
    assert prepared.num_train_epochs == epochs
    assert prepared.eval_strategy.value == "epoch" and prepared.save_strategy.value == "epoch"
    assert prepared.load_best_model_at_end and prepared.greater_is_better
    assert prepared.metric_for_best_model == data.main_metric


@pytest.mark.slow
def test_compact_accuracy_benchmark_scores_a_finished_run_at_each_prototype_dtype(tiny_bert_dir, glue_dir, tmp_path):
    from benchmarks.compact_accuracy import DTYPES, measure
    out = tmp_path / "run"
    run_argv(base_argv(tiny_bert_dir, out, glue_dir) + adapter_argv(METHODS["proadapter"]))
    records = measure(str(out))
    assert [r["prototype_dtype"] for r in records] == list(DTYPES)
    assert all(set(r["test"]) >= {"accuracy"} for r in records)
    sizes = {r["prototype_dtype"]: r["adapter_bytes"] for r in records}
    # int8 pays a bfloat16 scale per row: on this tiny model's short rows it need not beat 16 bits (on MiniLM it does)
    assert max(sizes["bfloat16"], sizes["float16"], sizes["int8"]) < sizes["float32"]


@pytest.mark.parametrize("flags, expected", [
    (["--save_steps", "8"], ("steps", 8, 8)),  # evaluates at the checkpoints the user asked for
    (["--save_steps", "8", "--eval_strategy", "steps", "--eval_steps", "4"], ("steps", 4, 4)),
    (["--save_steps", "8", "--eval_strategy", "epoch"], ("epoch", None, None)),
    ([], ("epoch", None, None)),
])
def test_save_steps_is_honoured_or_its_replacement_is_logged(flags, expected, tiny_bert_dir, glue_dir, tmp_path,
                                                             caplog):
    args = parse_arguments(["--model_name_or_path", tiny_bert_dir, "--output_dir", str(tmp_path), "--task_name",
                            "rte", "--glue_dir", glue_dir, *flags])
    with caplog.at_level("WARNING", logger="propetl_adapters.experiments.glue"):
        prepared = experiment.prepare_training_args(args[4], experiment.load_task_data(args[1]), args[3])
    strategy, eval_steps, save_steps = expected
    assert prepared.eval_strategy.value == strategy and prepared.save_strategy.value == strategy
    if strategy == "steps":
        assert (prepared.eval_steps, prepared.save_steps) == (eval_steps, save_steps)
    replaced = "--save_steps" in flags and (strategy != "steps" or eval_steps == 4)
    assert ("--save_steps 8 replaced" in caplog.text) == replaced


def test_adapter_config_with_zero_reduction_factor_is_refused_before_writing_anything(tiny_bert_dir, glue_dir,
                                                                                       tmp_path, capsys):
    out = tmp_path / "out"
    argv = base_argv(tiny_bert_dir, out, glue_dir) + adapter_argv("proadapter[reduction_factor=0]")
    assert main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("run_glue.py: error: --adapter_config 'proadapter[reduction_factor=0]': "
                              "ProAdapterConfig.reduction_factor must be a finite number > 0, got 0.")
    assert "\n" not in message and "Traceback" not in message
    assert not (out / "run_arguments.json").exists()


def test_non_utf8_training_file_is_refused_naming_the_file(tiny_bert_dir, tmp_path, capsys):
    train = tmp_path / "train.csv"
    train.write_bytes(b"sentence,label\na b,1\nc \xe9 d,0\n")
    argv = base_argv(tiny_bert_dir, tmp_path / "out", task=None) + ["--train_file", str(train),
                                                                    "--validation_file", str(train)]
    assert main(argv) == 2
    assert f"{train}, line 3: not UTF-8 text" in capsys.readouterr().err
