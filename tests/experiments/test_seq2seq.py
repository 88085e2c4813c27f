"""End-to-end runs of run_seq2seq on a tiny random T5 and a few generated JSON-lines rows (no network)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from propetl_adapters.experiments.common import ExperimentError
from propetl_adapters.experiments.run_folder import DONE_FILE, RESULTS_FILE
from propetl_adapters.mask_io import MASK_FILE_NAME, read_mask_file
from propetl_adapters.experiments.seq2seq import main, parse_arguments, run

from .conftest import REPO_ROOT, assert_same_tensors, exported_tensors


def argv(model_dir, data_dir, output_dir, tasks=("rte", "stsb"), config="proadapter[reduction_factor=4]", steps=2):
    flags = ["--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--tasks", *tasks,
             "--output_dir", str(output_dir), "--max_steps", str(steps), "--eval_steps", str(steps),
             "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "6", "--learning_rate", "3e-3",
             "--max_source_length", "32", "--max_target_length", "6", "--label_smoothing_factor", "0.1",
             "--use_cpu", "--report_to", "none", "--disable_tqdm", "true", "--seed", "1"]
    return flags + (["--adapter_config", config] if config else [])


@pytest.mark.slow
def test_loss_and_update_do_not_depend_on_gradient_accumulation(tiny_t5_no_dropout_dir, seq2seq_data_dir, tmp_path):
    """One plain-SGD step on 8 STS-B rows (targets of equal length) whole and as 2 x 4 accumulated."""
    results = {}
    for name, batch_size, accumulation in (("whole", 8, 1), ("halves", 4, 2)):
        flags = argv(tiny_t5_no_dropout_dir, seq2seq_data_dir, tmp_path / name, tasks=("stsb",), steps=1) + [
            "--per_device_train_batch_size", str(batch_size), "--gradient_accumulation_steps", str(accumulation),
            "--optim", "sgd", "--learning_rate", "0.5", "--weight_decay", "0", "--max_grad_norm", "0",
            "--label_smoothing_factor", "0"]
        results[name] = run(*parse_arguments(flags))["training"]
    assert_same_tensors(exported_tensors(tmp_path / "whole"), exported_tensors(tmp_path / "halves"))
    assert results["halves"]["train_loss"] == pytest.approx(results["whole"]["train_loss"], rel=1e-5)


@pytest.mark.slow
def test_multi_task_proadapter_trains_selects_and_exports_every_task_mask(tiny_t5_dir, seq2seq_data_dir, tmp_path):
    out = tmp_path / "run"
    results = run(*parse_arguments(argv(tiny_t5_dir, seq2seq_data_dir, out)))
    assert (out / DONE_FILE).is_file()
    saved = json.loads((out / RESULTS_FILE).read_text())
    assert saved["method"] == "proadapter_hybrid"
    assert saved["adapter_config_resolved"]["tasks"] == ["rte", "stsb"]
    for key in ("test_rte_accuracy", "test_stsb_pearson", "test_stsb_spearmanr", "test_average"):
        assert key in saved["test"]
    assert saved["training"]["mask_learning_rate"] == pytest.approx(3e-2)  # 10 x lr
    assert saved["storage"]["task_bits"]["rte"] == saved["storage"]["task_bits"]["stsb"] > 0
    names = list(read_mask_file(str(out / "adapter" / MASK_FILE_NAME)).masks)
    assert any(".task_masks.masks.rte." in n for n in names) and any(".task_masks.masks.stsb." in n for n in names)
    # A finished run is not repeated.
    assert run(*parse_arguments(argv(tiny_t5_dir, seq2seq_data_dir, out)))["test"] == results["test"]


@pytest.mark.slow
@pytest.mark.parametrize("task, config, metric, method", [
    ("xsum", None, "test_xsum_rouge2", "full_finetuning"),
    ("wmt16_ro_en", "seq_bn[reduction_factor=4]", "test_wmt16_ro_en_bleu", "seq_bn")])
def test_generation_tasks_report_their_metric(tiny_t5_dir, seq2seq_data_dir, tmp_path, task, config, metric, method):
    results = run(*parse_arguments(argv(tiny_t5_dir, seq2seq_data_dir, tmp_path, tasks=[task], config=config,
                                        steps=1)))
    assert metric in results["test"] and results["test"][f"test_{task}_score"] == results["test"][metric]
    assert results["method"] == method


def test_json_config_and_seed_form(tiny_t5_dir, seq2seq_data_dir, tmp_path):
    flags = argv(tiny_t5_dir, seq2seq_data_dir, tmp_path / "runs", tasks=["rte"], steps=1)
    config = {}
    i = 0
    while i < len(flags):
        key = flags[i][2:]
        values = []
        i += 1
        while i < len(flags) and not flags[i].startswith("--"):
            values.append(flags[i])
            i += 1
        config[key] = values if key == "tasks" else (values[0] if values else True)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    args, training_args = parse_arguments([str(path), "7"])
    assert training_args.seed == 7 and training_args.output_dir.endswith(os.path.join("runs", "seed7"))
    assert args.tasks == ["rte"]


@pytest.mark.parametrize("bad, message", [
    (["--tasks", "rte", "nosuch"], "unknown"),
    (["--data_dir", "/nonexistent/dir"], "no folder 'rte'"),
])
def test_bad_input_names_the_flag_or_file(tiny_t5_dir, seq2seq_data_dir, tmp_path, capsys, bad, message):
    flags = argv(tiny_t5_dir, seq2seq_data_dir, tmp_path, tasks=["rte"], steps=1)
    flag = bad[0]
    position = flags.index(flag)
    end = position + 1
    while end < len(flags) and not flags[end].startswith("--"):
        end += 1
    flags[position:end] = bad
    assert main(flags) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("task, module, package", [("xsum", "rouge_score", "rouge-score"),
                                                   ("wmt16_ro_en", "sacrebleu", "sacrebleu")])
def test_missing_generation_metric_is_refused_before_training(task, module, package, tiny_t5_dir, seq2seq_data_dir,
                                                              tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    assert main(argv(tiny_t5_dir, seq2seq_data_dir, tmp_path / "run", tasks=["rte", task], steps=1)) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"pip install {package}" in error[0] and task in error[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("task", ["xsum", "wmt16_ro_en"])
def test_hub_failure_is_one_line_naming_data_dir(task, tiny_t5_dir, tmp_path, capsys, monkeypatch):
    import datasets

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub\n(a long traceback of the cause)")
    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    flags = argv(tiny_t5_dir, tmp_path, tmp_path / "run", tasks=[task], steps=1)
    flags = flags[:flags.index("--data_dir")] + flags[flags.index("--data_dir") + 2:]
    assert main(flags) == 2
    [error] = capsys.readouterr().err.strip().splitlines()
    assert "ConnectionError: Couldn't reach the hub." in error and "--data_dir" in error and task in error


def test_config_files_parse(tmp_path):
    """Every shipped configs/**/*.json parses into the run's argument objects."""
    configs = sorted((REPO_ROOT / "configs").rglob("*.json"))
    assert configs, "configs/ is empty"
    for path in configs:
        args, training_args = parse_arguments([str(path), "42"])
        assert args.tasks and training_args.seed == 42, path


def test_flags_after_config_and_seed_override_the_config():
    config = str(REPO_ROOT / "configs" / "glue" / "propetl_adapter_reduction12.json")
    args, training_args = parse_arguments([config, "43", "--gradient_accumulation_steps", "2"])
    assert training_args.gradient_accumulation_steps == 2 and training_args.per_device_train_batch_size == 32
    assert training_args.seed == 43 and training_args.output_dir.endswith("seed43")
    assert parse_arguments([config, "--max_steps", "5"])[1].max_steps == 5
    for bad in ([config, "x"], [config, "42", "43"]):
        with pytest.raises(ExperimentError, match="usage"):
            parse_arguments(bad)


@pytest.mark.slow
def test_two_step_hyperformer_plus_plus_run(tiny_t5_dir, seq2seq_data_dir, tmp_path):
    flags = argv(tiny_t5_dir, seq2seq_data_dir, tmp_path, config="hyperformer++[reduction_factor=8]")
    results = run(*parse_arguments(flags))
    assert results["method"] == "hyperformer++"
    assert results["adapter_config_resolved"]["tasks"] == ["rte", "stsb"]
    storage = results["storage"]
    assert storage["task_bits"] == {"rte": 32 * 64, "stsb": 32 * 64} and storage["amortized_task_percent"] > 0
    assert "test_average" in results["test"]


def test_json_config_with_unknown_key_or_wrong_type_is_refused(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_name_or_path": "m", "output_dir": "o", "tasks": ["rte"], "max_stepz": 5}))
    assert main([str(path), "42"]) == 2
    assert "unknown keys ['max_stepz']" in capsys.readouterr().err
    path.write_text(json.dumps({"model_name_or_path": "m", "output_dir": "o", "max_steps": "many"}))
    with pytest.raises(SystemExit) as stop:
        parse_arguments([str(path)])
    assert stop.value.code == 2 and "--max_steps" in capsys.readouterr().err


def test_translation_file_missing_a_language_names_the_file(tiny_t5_dir, tmp_path, capsys):
    folder = tmp_path / "data" / "wmt16_ro_en"
    folder.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text(json.dumps({"translation": {"ro": "ceva"}}) + "\n")
    flags = argv(tiny_t5_dir, tmp_path / "data", tmp_path / "out", tasks=["wmt16_ro_en"], config=None, steps=1)
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert "train.jsonl" in err and "'en'" in err


@pytest.mark.slow
def test_adapter_dagger_trains_one_adapter_per_task_with_shared_layer_norms(tiny_t5_dir, seq2seq_data_dir, tmp_path):
    flags = argv(tiny_t5_dir, seq2seq_data_dir, tmp_path, config="seq_bn[reduction_factor=4]") + ["--adapter_per_task"]
    results = run(*parse_arguments(flags))
    assert results["method"] == "adapter_dagger"
    storage = results["storage"]
    assert storage["task_bits"]["rte"] == storage["task_bits"]["stsb"] > 0 and storage["shared_bits"] > 0
    assert storage["bls_bits"] == storage["shared_bits"] + 2 * storage["task_bits"]["rte"]
    assert storage["stored_parameters_by_bits"] == {"32": storage["bls_bits"] // 32}
    assert all((tmp_path / "adapter" / task / "adapter_config.json").is_file() for task in ("rte", "stsb"))
    with pytest.raises(Exception, match="plain --adapter_config"):
        run(*parse_arguments(argv(tiny_t5_dir, seq2seq_data_dir, tmp_path / "x") + ["--adapter_per_task"]))
