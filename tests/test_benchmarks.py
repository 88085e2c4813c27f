"""Smoke test of the benchmark script on a tiny model: it runs and writes every series (no timing checks)."""

import json
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root holds benchmarks/

from benchmarks.run import PAIRS, main, markdown  # noqa: E402
from experiments.conftest import tiny_bert_dir  # noqa: E402,F401  (fixture)


@pytest.mark.slow
def test_quick_benchmark_writes_every_series(tmp_path):
    output = tmp_path / "result.json"
    assert main(["--quick", "--repeats", "1", "--skip", "memory", "--output", str(output), "--no-docs"]) == 0
    result = json.loads(output.read_text())
    assert [r["comparison"] for r in result["training"]] == [label for label, _, _ in PAIRS]
    assert all(r["ratio"] > 0 and 0 <= r["mask_topk"]["share_of_step"] for r in result["training"])
    models = {r["model"] for r in result["inference"]}
    assert {"ProAdapter, masks frozen", "ProLoRA, frozen and merged", "ProLoRA, masked (not frozen)"} <= models
    assert {r["batch"] for r in result["inference"]} == {1, 4}
    assert all(r["disk_over_bls"] > 1 for r in result["storage"])
    table = markdown(result)
    assert "### Training step" in table and "hybrid multi-task ProAdapter vs adapter" in table


@pytest.mark.slow
def test_serving_example_quick_run_measures_storage_and_matching_logits(tmp_path):
    pytest.importorskip("peft")
    from benchmarks.serving_example import TASKS, main as serving_main

    output = tmp_path / "serving.json"
    assert serving_main(["--quick", "--json", str(output)]) == 0
    result = json.loads(output.read_text())
    assert sorted(result["exported_bytes"]) == sorted(TASKS)
    assert all(d["peft_vs_ours"] < 1e-5 and d["frozen_merged_vs_ours"] < 1e-4
               for d in result["max_abs_logit_diff"].values())
    assert result["ratio_peft_over_frozen_merged"] > 0


def test_cls_spread_reports_every_layer_with_and_without_the_adapter(tiny_bert_dir, tmp_path, capsys):
    from adapters import AutoAdapterModel

    import propetl_adapters  # noqa: F401  (registers the configs)
    from benchmarks.cls_spread import main as cls_spread

    model = AutoAdapterModel.from_pretrained(tiny_bert_dir)
    model.add_adapter("task", config="proprefix[prefix_length=4,bottleneck_size=8]")
    with torch.no_grad():  # a "trained" adapter far from any initialisation
        for name, parameter in model.named_parameters():
            if "shared_parameters.task" in name:  # the prototype (embedding and MLP)
                parameter.mul_(20)
    model.save_adapter(str(tmp_path / "adapter"), "task")
    (tmp_path / "run_arguments.json").write_text(json.dumps({"ModelArguments": {"model_name_or_path": tiny_bert_dir}}))
    assert cls_spread([str(tmp_path)]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[1:]]
    assert [int(r[0]) for r in rows] == list(range(model.config.num_hidden_layers + 1))
    with_prefix, without, on_prefix = ([float(r[i]) for r in rows[1:]] for i in (1, 2, 3))
    assert all(value >= 0 for value in with_prefix + without) and with_prefix != without  # the prefix is active
    assert all(0 < share < 1 for share in on_prefix)  # [CLS] attends to the 4 prefix tokens and to the input

    # --init_seed: a fresh adapter of the saved config, seeded: the same numbers twice, not the saved adapter's
    assert cls_spread([str(tmp_path), "--init_seed", "7"]) == 0
    first = capsys.readouterr().out
    assert "untrained" in first.splitlines()[0]
    assert cls_spread([str(tmp_path), "--init_seed", "7"]) == 0
    assert capsys.readouterr().out == first
    assert [float(line.split(" | ")[1]) for line in first.splitlines()[2:]] != with_prefix


def test_pooling_probe_is_repeatable_and_reads_what_it_is_told(tiny_bert_dir, tmp_path, capsys):  # noqa: F811
    from benchmarks.pooling_probe import main as probe
    from experiments.conftest import make_glue_dir

    glue = str(make_glue_dir(tmp_path / "glue"))
    common = ["--adapter_config", "seq_bn[reduction_factor=8]", "--steps", "3", "--glue_dir", glue,
              "--model", tiny_bert_dir, "--learning_rate", "1e-2"]
    mean = probe(["--pooling", "mean"] + common)
    again = probe(["--pooling", "mean"] + common)
    assert again["dev400_pearson"] == mean["dev400_pearson"]
    assert again["last_25_steps_loss"] == mean["last_25_steps_loss"]
    first_token = probe(["--pooling", "cls"] + common)
    assert first_token["last_25_steps_loss"] != mean["last_25_steps_loss"]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["pooling"] == "cls"
