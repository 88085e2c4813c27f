"""The frontier harness (benchmarks/frontier): plan and grids, selection on validation, the Pareto frontier,
storage of each PEFT method measured from its saved files, resume, and one end-to-end tiny run."""

import dataclasses
import importlib.util
import json
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root holds benchmarks/

from benchmarks.frontier.plan import (METHODS, PROTOCOL_GRID, Run, build_plan, parse_lr_grid,  # noqa: E402
                                      resolve_methods)
from benchmarks.frontier.report import (goal_check, grid_edge, label_offsets, markdown, pareto_frontier,  # noqa: E402
                                        select_lr, summarise)
from experiments.conftest import glue_dir, tiny_bert_dir  # noqa: E402,F401  (fixtures)

# ---------------------------------------------------------------------------
# Plan and grids
# ---------------------------------------------------------------------------


def test_every_seed_runs_the_whole_grid_of_every_method_by_default():
    methods = resolve_methods(["proadapter_bn32_k0.5", "peft_vera_r1024"])
    grids = parse_lr_grid(None, methods)
    runs, pending = build_plan(["stsb", "mrpc"], methods, [42, 43], grids)
    assert pending == []
    assert len(runs) == 2 * 2 * (len(PROTOCOL_GRID) + len(METHODS["peft_vera_r1024"].lr_grid))
    assert len({r.run_id for r in runs}) == len(runs)
    assert [r.task for r in runs][:1] == ["stsb"] and runs[-1].task == "mrpc"  # STS-B first
    assert {r.budget for r in runs if r.task == "stsb"} == {"e2"} and {r.budget for r in runs if r.task == "mrpc"} \
        == {"e5"}


def test_search_seeds_run_the_grid_and_the_other_seeds_wait_for_the_chosen_lr():
    grids = {"seq_bn_bn32": (1e-3, 2e-3)}
    runs, pending = build_plan(["stsb"], ["seq_bn_bn32"], [42, 43, 44], grids, max_steps=3, search_seeds=[42])
    assert [(r.seed, r.learning_rate, r.budget) for r in runs] == [(42, 1e-3, "s3"), (42, 2e-3, "s3")]
    assert pending == [("stsb", "seq_bn_bn32", 43), ("stsb", "seq_bn_bn32", 44)]
    with pytest.raises(ValueError, match="search_seeds"):
        build_plan(["stsb"], ["seq_bn_bn32"], [42], grids, search_seeds=[7])


def test_budgets_never_share_a_run_id():
    assert Run("stsb", "seq_bn_bn32", 1e-3, 42, "e2").run_id != Run("stsb", "seq_bn_bn32", 1e-3, 42, "s3").run_id
    grids = {"seq_bn_bn32": (1e-3,)}
    tags = [build_plan(["stsb"], ["seq_bn_bn32"], [42], grids, **kwargs)[0][0].budget
            for kwargs in ({}, {"epochs": 3}, {"max_steps": 3}, {"max_steps": 3, "max_train_samples": 96},
                           {"max_steps": 3, "max_eval_samples": 64}, {"pooling": "mean"}, {"pooling": "cls"})]
    assert tags == ["e2", "e3", "s3", "s3_n96xall", "s3_nallx64", "e2_mean", "e2"]


def test_a_mean_head_reaches_every_method_and_its_reproduce_command():
    from benchmarks.frontier.runner import Settings, protocol_argv, reproduce_command

    run = Run("stsb", "peft_vblora", 1e-2, 42, "e2_mean")
    mean = Settings(model="m", glue_dir="g", out_dir="o", pooling="mean")
    argv = protocol_argv(mean, run)
    assert argv[argv.index("--pooling") + 1] == "mean"
    assert "--pooling" not in protocol_argv(Settings(model="m", glue_dir="g", out_dir="o"), run)
    assert "--pooling mean" in reproduce_command(mean, run)


def test_the_lr_is_chosen_among_records_of_the_planned_budget_only(tmp_path, capsys):
    from benchmarks.frontier.cli import main

    records = tmp_path / "records"
    records.mkdir()
    for budget, lr, seed, validation, test in [("e2", 1e-3, 42, 80.0, 84.0), ("e2", 2e-3, 42, 70.0, 99.0),
                                               ("e2", 1e-3, 43, 80.0, 86.0), ("e2", 2e-3, 43, 0.0, 0.0),
                                               ("e2_mean", 2e-3, 42, 99.0, 99.0)]:  # another head's run
        record = _record("peft_lora_r8", lr, seed, validation, test)
        record.update(run_id=Run("stsb", "peft_lora_r8", lr, seed, budget).run_id, budget=budget)
        (records / f"{record['run_id']}.json").write_text(json.dumps(record))
    argv = ["--out_dir", str(tmp_path), "--model", "m", "--tasks", "stsb", "--methods", "peft_lora_r8",
            "--seeds", "42", "43", "--search_seeds", "42", "--lr_grid", "1e-3,2e-3", "--report_only", "--no_figure"]
    assert main(argv) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "| 85.00 ± 1.41 |" in summary  # lr 1e-3 on seeds 42 and 43: the mean-head record did not compete


def test_every_method_gets_the_protocol_flags_and_only_its_own():
    from benchmarks.frontier.runner import Settings, method_argv, protocol_argv

    settings = Settings(model="m", glue_dir="g", out_dir="o", max_train_samples=96)
    argv = protocol_argv(settings, Run("stsb", "seq_bn_bn32", 2e-3, 43, "e2"))
    expected = {"--head_layers": "1", "--learning_rate": "0.002", "--seed": "43", "--num_train_epochs": "2",
                "--max_train_samples": "96", "--weight_decay": "0.1", "--warmup_ratio": "0.1"}
    assert {flag: argv[argv.index(flag) + 1] for flag in expected} == expected
    assert "--bf16" in argv and "--max_eval_samples" not in argv
    assert method_argv(METHODS["proadapter_bn32_k0.1"], 2e-3) == [
        "--train_adapter", "--adapter_config", "proadapter[reduction_factor=12,density=0.1]",
        "--mask_learning_rate", "0.02"]
    assert method_argv(METHODS["seq_bn_bn32"], 2e-3) == ["--train_adapter", "--adapter_config",
                                                         "seq_bn[reduction_factor=12]"]
    assert method_argv(METHODS["peft_vblora"], 2e-3) == []


def test_method_names_families_and_errors():
    assert resolve_methods(None) == list(METHODS)
    peft = resolve_methods(["peft"])
    assert peft and all(METHODS[m].family == "peft" for m in peft)
    assert resolve_methods(["seq_bn_bn32", "adapterhub"]) == ["seq_bn_bn32", "lora_r32"]  # no duplicates
    with pytest.raises(ValueError, match="unknown method 'vera'"):
        resolve_methods(["vera"])
    with pytest.raises(ValueError, match="no protocol budget"):
        build_plan(["rte"], ["seq_bn_bn32"], [42], {"seq_bn_bn32": (1e-3,)})


def test_lr_grid_overrides_per_method_and_for_all():
    methods = ["seq_bn_bn32", "peft_vera_r1024"]
    assert parse_lr_grid(["3e-4"], methods) == {"seq_bn_bn32": (3e-4,), "peft_vera_r1024": (3e-4,)}
    grids = parse_lr_grid(["1e-3", "peft_vera_r1024=1e-2,4e-2"], methods)
    assert grids == {"seq_bn_bn32": (1e-3,), "peft_vera_r1024": (1e-2, 4e-2)}
    assert parse_lr_grid(None, methods)["peft_vera_r1024"] == METHODS["peft_vera_r1024"].lr_grid
    for bad in ("x", "peft_vera_r1024=", "seq_bn_bn32=-1", "nope=1e-3"):
        with pytest.raises(ValueError, match="--lr_grid"):
            parse_lr_grid([bad], methods)


def test_large_rate_methods_use_much_larger_grids_than_lora():
    lora = max(METHODS["peft_lora_r8"].lr_grid)
    for name in ("peft_vera_r1024", "peft_vblora", "peft_fourierft_n1000"):
        assert min(METHODS[name].lr_grid) > lora and METHODS[name].head_learning_rate is not None


# ---------------------------------------------------------------------------
# Selection and the frontier
# ---------------------------------------------------------------------------


def _record(method, lr, seed, validation, test, family="peft", size=1000):
    storage = {"format": "as_saved", "bytes_on_disk": size, "variants": {"as_saved": {"bytes_on_disk": size}}}
    return {"task": "stsb", "method": method, "family": family, "learning_rate": lr, "seed": seed,
            "validation_score": validation, "test_score": test, "main_metric": "pearson", "storage": storage,
            "head": {"bytes_on_disk": 10}, "test": {"pearson": test, "spearmanr": test - 1.0}}


def test_the_task_s_other_test_metrics_stand_beside_its_main_one():
    # MRPC selects and reports F1, which a constant 'equivalent' answer already puts near 81: accuracy must show.
    def mrpc(seed, f1, accuracy):
        record = _record("peft_vera_r1024", 2e-2, seed, 80.0, f1)
        record.update(task="mrpc", main_metric="f1", test={"f1": f1, "accuracy": accuracy, "loss": 0.5})
        return record

    row = summarise([mrpc(42, 82.0, 70.0), mrpc(43, 84.0, 74.0)])["mrpc"][0]
    assert list(row["other_metrics"]) == ["accuracy"]
    assert row["other_metrics"]["accuracy"] == pytest.approx((72.0, 8 ** 0.5))
    table = markdown(summarise([mrpc(42, 82.0, 70.0), mrpc(43, 84.0, 74.0)]), "cmd")
    assert "## mrpc (test f1)" in table and "| 83.00 ± 1.41 | accuracy 72.00 ± 2.83 |" in table
    assert "| 82.00 | accuracy 70.00 |" in markdown(summarise([mrpc(42, 82.0, 70.0)]), "cmd")  # one seed: no ±


def test_selection_uses_validation_not_test_and_breaks_ties_to_the_smaller_rate():
    records = [_record("peft_lora_r8", 1e-3, 42, 80.0, 90.0), _record("peft_lora_r8", 2e-3, 42, 82.0, 70.0),
               _record("peft_lora_r8", 1e-3, 43, 80.0, 90.0), _record("peft_lora_r8", 2e-3, 43, 81.0, 70.0)]
    assert select_lr(records, "stsb", "peft_lora_r8") == 2e-3  # best validation, although its test is worse
    tie = [_record("peft_lora_r8", 1e-3, 42, 80.0, 1.0), _record("peft_lora_r8", 5e-4, 42, 80.0, 2.0)]
    assert select_lr(tie, "stsb", "peft_lora_r8") == 5e-4
    assert select_lr(records, "stsb", "seq_bn_bn32") is None


@pytest.mark.parametrize("validations, edge", [
    ((80.0, 81.0, 82.0), "top"), ((82.0, 81.0, 80.0), "bottom"), ((80.0, 82.0, 81.0), None)])
def test_a_rate_chosen_at_an_end_of_its_grid_is_flagged(validations, edge):
    records = [_record("peft_lora_r8", lr, 42, v, 80.0) for lr, v in zip((5e-4, 1e-3, 2e-3), validations)]
    row = summarise(records)["stsb"][0]
    assert grid_edge(row) == edge
    table = markdown(summarise(records), "cmd")
    assert (f"({edge} of the grid) |" in table) if edge else ("of the grid) |" not in table)
    assert grid_edge(summarise(records[:1])["stsb"][0]) is None  # one rate: nothing was chosen


def test_selection_only_compares_rates_run_on_every_search_seed():
    records = [_record("peft_lora_r8", 1e-3, 42, 80.0, 0), _record("peft_lora_r8", 1e-3, 43, 80.0, 0),
               _record("peft_lora_r8", 2e-3, 42, 99.0, 0)]  # 2e-3 lacks seed 43
    assert select_lr(records, "stsb", "peft_lora_r8") == 1e-3
    assert select_lr(records, "stsb", "peft_lora_r8", seeds=[42]) == 2e-3


def test_summary_reports_test_mean_and_std_of_the_chosen_lr_over_seeds():
    records = [_record("peft_lora_r8", 1e-3, 42, 80.0, 84.0), _record("peft_lora_r8", 1e-3, 43, 80.0, 86.0),
               _record("peft_lora_r8", 2e-3, 42, 70.0, 99.0), _record("peft_lora_r8", 2e-3, 43, 70.0, 99.0)]
    (row,) = summarise(records)["stsb"]
    assert row["learning_rate"] == 1e-3 and row["seeds"] == [42, 43] and row["rates_compared"] == [1e-3, 2e-3]
    assert "| 0.001 (bottom of the grid) | 0.001/0.002 | 42/43 |" in markdown(summarise(records), "cmd")
    # A rate missing on a search seed did not compete, and the table says so.
    (partial,) = summarise(records[:3], search_seeds=[42, 43])["stsb"]
    assert partial["rates_compared"] == [1e-3]
    assert "| 0.001 | 0.001 | 42/43 |" in markdown(summarise(records[:3], search_seeds=[42, 43]), "cmd")
    assert row["test_mean"] == pytest.approx(85.0) and row["test_std"] == pytest.approx(2 ** 0.5)
    assert "| 85.00 ± 1.41 |" in markdown(summarise(records), "cmd")
    one_seed = summarise(records[:1])
    assert "| 84.00 |" in markdown(one_seed, "cmd") and "±" not in markdown(one_seed, "cmd").split("## ")[1]


def test_goal_compares_each_propetl_point_with_the_best_peer_of_no_more_bytes():
    def seeds(method, family, size, scores):
        return [_record(method, 1e-3, 42 + i, 80.0, score, family, size) for i, score in enumerate(scores)]

    peers = (seeds("peft_vblora", "peft", 250, [84.0, 84.0, 84.0])
             + seeds("peft_fourierft_n1000", "peft", 200, [90.0, 90.0, 90.0])  # the best of the small peers
             + seeds("peft_vera_r1024", "peft", 400, [99.0, 99.0, 99.0]))
    records = (peers + seeds("prolora_r8", "propetl", 300, [84.0, 85.0, 86.0])  # mean 85, below FourierFT
               + seeds("proadapter_bn8_k0.5", "propetl", 100, [70.0])  # smaller than every peer, beats none
               + seeds("proadapter_bn32_k0.1", "propetl", 900, [80.0, 80.0]))
    checks = {c["method"]: c for c in goal_check(summarise(records)["stsb"])}
    assert checks["prolora_r8"]["peer"] == "peft_fourierft_n1000" and checks["prolora_r8"]["beats"] == []
    assert checks["prolora_r8"]["margin"] == pytest.approx(-5.0) and not checks["prolora_r8"]["reached"]
    smallest = checks["proadapter_bn8_k0.5"]
    assert smallest["peer"] is None and smallest["beats"] == [] and not smallest["reached"]
    assert checks["proadapter_bn32_k0.1"]["peer"] == "peft_vera_r1024" and checks["proadapter_bn32_k0.1"]["seeds"] == 2
    text = markdown(summarise(records), "cmd")
    assert "| none this small | – | – | – | 1 |" in text and "not reached" in text

    # Smaller than every peer and beating larger ones counts, once both sides have three seeds.
    small = summarise(peers + seeds("proadapter_bn8_k0.5", "propetl", 100, [95.0, 95.0, 95.0]))["stsb"]
    (check,) = goal_check(small)
    assert check["beats"] == ["peft_fourierft_n1000", "peft_vblora"] and check["reached"] and check["clear"]
    # ... and a one-seed larger peer it also beats does not hold it back (its three-seed peers are the evidence)
    one_seed_peer = seeds("peft_lora_r8", "peft", 3000, [60.0])
    (check,) = goal_check(summarise(peers + one_seed_peer + seeds("proadapter_bn8_k0.5", "propetl", 100,
                                                                  [95.0, 95.0, 95.0]))["stsb"])
    assert check["beats"][-1] == "peft_lora_r8" and check["seeds"] == 3 and check["reached"]
    # At no more bytes than a peer it outscores: reached, with the margin against the best of those peers.
    beaten = [r for r in records if r["method"] != "peft_fourierft_n1000"]
    check = {c["method"]: c for c in goal_check(summarise(beaten)["stsb"])}["prolora_r8"]
    assert check["peer"] == "peft_vblora" and check["margin"] == pytest.approx(1.0) and check["reached"]
    # ... but a lead of one seed std (85 ± 1 against 84 ± 0) is a tie, and the verdict says so
    assert not check["clear"] and "| reached, within noise |" in markdown(summarise(beaten), "cmd")
    clear = [r for r in beaten if r["method"] != "prolora_r8"] + seeds("prolora_r8", "propetl", 300, [85.0, 85.5, 86.0])
    (check,) = [c for c in goal_check(summarise(clear)["stsb"]) if c["method"] == "prolora_r8"]
    assert check["clear"] and "| reached |" in markdown(summarise(clear), "cmd")
    # Smaller than every peer, the lead is taken over the beaten peer it leads most clearly.
    close = summarise(peers + seeds("proadapter_bn8_k0.5", "propetl", 100, [83.0, 85.0, 87.0]))["stsb"]
    (check,) = goal_check(close)
    assert check["beats"] == ["peft_vblora"] and check["reached"] and not check["clear"]


def test_a_further_compact_export_is_a_row_of_its_own_scored_by_its_reload():
    def pro(seed, int8_score):
        record = _record("proadapter_bn32_k0.1", 1e-3, seed, 80.0, 84.0, "propetl", 65000)
        record["storage"] = {"format": "compact_bf16", "bytes_on_disk": 65000,
                             "variants": {"compact_bf16": {"bytes_on_disk": 65000},
                                          "compact_int8": {"bytes_on_disk": 42000},
                                          "compact_int8_safetensors": {"bytes_on_disk": 40000},
                                          "fp32": {"bytes_on_disk": 125000}}}
        record["compact_test_scores"] = {"compact_bf16": 84.0, "compact_int8": int8_score}
        return record

    rows = {r["method"]: r for r in summarise([pro(42, 83.0), pro(43, 85.0)])["stsb"]}
    int8 = rows["proadapter_bn32_k0.1@compact_int8"]
    assert (int8["bytes"], int8["format"], int8["family"]) == (42000, "compact_int8", "propetl")
    assert int8["other_formats"] == {"compact_int8_safetensors": 40000}  # its own container only
    assert int8["test_mean"] == pytest.approx(84.0) and int8["test_std"] == pytest.approx(2 ** 0.5)
    assert rows["proadapter_bn32_k0.1"]["bytes"] == 65000
    assert "| ProAdapter bn 32, k 0.1, int8 |" in markdown(summarise([pro(42, 83.0), pro(43, 85.0)]), "cmd")
    assert "(compact_int8)" in markdown(summarise([pro(42, 83.0)]), "cmd")  # no version recorded: none shown
    versioned = pro(42, 83.0)
    versioned["storage"]["variants"]["compact_int8"]["mask_file_version"] = 4
    assert "| 42,000 (compact_int8, mask file v4) |" in markdown(summarise([versioned]), "cmd")
    older = pro(44, 0.0)
    del older["compact_test_scores"]  # a record measured before int8 existed: no int8 row from a partial set
    assert "proadapter_bn32_k0.1@compact_int8" not in {r["method"] for r in summarise([pro(42, 83.0), older])["stsb"]}


def test_figure_labels_of_close_points_take_sides_that_do_not_overlap():
    # Two points at the same score 30 points apart: the second label cannot sit where the first did.
    first, second = label_offsets([(100.0, 100.0), (130.0, 100.0)], ["VB-LoRA (PEFT)", "ProAdapter bn 32"], 7)
    assert first == (5, 6, "left") and second != first
    assert label_offsets([(100.0, 100.0), (400.0, 100.0)], ["a", "b"], 7) == [(5, 6, "left")] * 2  # far apart
    # A label that would leave the axes on the right goes to the left of its point.
    (side,) = label_offsets([(390.0, 100.0)], ["Adapter bn 32"], 7, bounds=(0.0, 0.0, 400.0, 300.0))
    assert side[2] == "right"
    # With no free side the first one is used rather than dropping the label.
    crowded = label_offsets([(100.0, 100.0)] * 5, ["same label"] * 5, 7)
    assert len(crowded) == 5 and crowded[4] == (5, 6, "left")


def test_figure_labels_avoid_other_points_error_bars_but_not_at_the_cost_of_overlapping_labels():
    # Another method's error bar runs through the label's first side (above right): the label moves below.
    bar = (130.0, 103.0, 137.0, 140.0)
    (side,) = label_offsets([(100.0, 100.0)], ["VB-LoRA (PEFT)"], 7, obstacles=[bar])
    assert side == (5, -11, "left")
    # Bars on every side: a side clear of labels still wins over one that covers an earlier label.
    everywhere = [(0.0, 0.0, 400.0, 300.0)]
    first, second = label_offsets([(100.0, 100.0), (130.0, 100.0)], ["VB-LoRA (PEFT)", "ProAdapter bn 32"], 7,
                                  obstacles=everywhere)
    assert first == (5, 6, "left") and second != first


@pytest.mark.parametrize("points, expected", [
    ([(100, 80.0)], [0]),
    ([(100, 80.0), (200, 85.0), (50, 70.0)], [2, 0, 1]),  # each buys score with bytes: all on the frontier
    ([(100, 80.0), (200, 79.0)], [0]),  # more bytes, lower score: dominated
    ([(100, 80.0), (100, 79.0)], [0]),  # same bytes, lower score: dominated
    ([(100, 80.0), (150, 80.0)], [0]),  # same score, more bytes: dominated
    ([(100, 80.0), (100, 80.0)], [0, 1]),  # identical points: neither dominates the other
    ([(10, 60.0), (1000, 90.0), (500, 85.0), (600, 84.0), (20, 59.0)], [0, 2, 1]),
])
def test_pareto_frontier(points, expected):
    assert pareto_frontier(points) == expected


# ---------------------------------------------------------------------------
# Storage of the PEFT methods, measured from the saved files
# ---------------------------------------------------------------------------


def _tiny_model():
    from adapters import AutoAdapterModel
    from transformers import BertConfig

    torch.manual_seed(0)
    model = AutoAdapterModel.from_config(BertConfig(vocab_size=99, hidden_size=48, num_hidden_layers=2,
                                                    num_attention_heads=4, intermediate_size=37))
    model.add_classification_head("t", num_labels=2, layers=1)
    return model


def _tiny_peft_model(method):
    import peft

    from benchmarks.frontier.peft_runner import peft_config

    return peft.get_peft_model(_tiny_model(), peft_config(method, 48))


def _small(name, **kwargs):
    method = METHODS[name]
    return dataclasses.replace(method, peft_kwargs=tuple({**dict(method.peft_kwargs), **kwargs}.items()))


MODULES = 2 * 2  # two layers, query and value


def test_storage_of_each_peft_method_is_measured_from_its_saved_files(tmp_path):
    pytest.importorskip("peft")
    from benchmarks.frontier.peft_runner import save_variants

    expected_values = {  # float values each format stores (hidden 48, 4 targeted modules)
        "peft_lora_r8": {"as_saved": MODULES * 8 * (48 + 48)},
        "peft_vera_r1024": {"without_projection": MODULES * (16 + 48), "with_projection": MODULES * (16 + 48)
                            + 16 * 48 + 48 * 16},
        "peft_vblora": {"full": MODULES * 2 * 4 * 3 * 6 + 6 * 16, "topk": MODULES * 2 * 4 * 3 * 1 + 6 * 16},
        "peft_fourierft_n1000": {"as_saved": MODULES * 50},
    }
    small = {"peft_lora_r8": {}, "peft_vera_r1024": {"r": 16}, "peft_vblora": {"num_vectors": 6},
             "peft_fourierft_n1000": {"n_frequency": 50}}
    measured = {}
    for name, kwargs in small.items():
        method = _small(name, **kwargs)
        variants = save_variants(_tiny_peft_model(method), method, str(tmp_path / name))
        assert list(variants) == list(method.storage_variants)
        for variant, figures in variants.items():
            folder = figures["folder"]
            weights = os.path.getsize(os.path.join(folder, "adapter_model.safetensors"))
            assert figures["weights_file_bytes"] == weights
            assert figures["bytes_on_disk"] == weights + os.path.getsize(os.path.join(folder, "adapter_config.json"))
            assert figures["values_by_bits"][32] == expected_values[name][variant]
            assert figures["bits"] == sum(bits * count for bits, count in figures["values_by_bits"].items())
        measured[name] = variants
    vera = measured["peft_vera_r1024"]
    projection_bytes = 4 * (16 * 48 + 48 * 16)
    assert vera["with_projection"]["weights_file_bytes"] - vera["without_projection"]["weights_file_bytes"] \
        >= projection_bytes
    topk = measured["peft_vblora"]["topk"]
    assert topk["values_by_bits"][8] == MODULES * 2 * 4 * 3 * 2  # two uint8 bank indices per sub-vector
    assert topk["bytes_on_disk"] < measured["peft_vblora"]["full"]["bytes_on_disk"]


def test_vera_saved_without_projections_reloads_to_the_same_outputs(tmp_path):
    peft = pytest.importorskip("peft")
    from benchmarks.frontier.peft_runner import save_variants

    method = _small("peft_vera_r1024", r=16)
    model = _tiny_peft_model(method)
    with torch.no_grad():  # VeRA starts with lambda_b = 0: move it so the projections matter
        for name, param in model.named_parameters():
            if "vera_lambda_b" in name:
                param.normal_()
    folder = save_variants(model, method, str(tmp_path))["without_projection"]["folder"]
    inputs = {"input_ids": torch.randint(0, 99, (2, 7))}
    expected = model.eval()(**inputs).logits
    # A fresh model of the same seed (same base and head): the projections are rebuilt from their PRNG key.
    reloaded = peft.PeftModel.from_pretrained(_tiny_model(), folder).eval()
    assert torch.allclose(reloaded(**inputs).logits, expected, atol=1e-6)


# ---------------------------------------------------------------------------
# End to end on a tiny random BERT
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_frontier_runs_records_resumes_and_reports(tiny_bert_dir, glue_dir, tmp_path, capsys):  # noqa: F811
    pytest.importorskip("peft")
    from benchmarks.frontier.cli import main

    out = tmp_path / "frontier"
    argv = ["--out_dir", str(out), "--model", tiny_bert_dir, "--glue_dir", glue_dir, "--tasks", "stsb",
            "--seeds", "3", "--max_steps", "2", "--no_bf16", "--methods", "proadapter_bn32_k0.5", "seq_bn_bn32",
            "peft_vera_r1024", "--lr_grid", "1e-2", "seq_bn_bn32=1e-2,2e-2", "peft_vera_r1024=5e-2"]
    assert main(argv) == 0
    records = {json.loads(p.read_text())["method"]: json.loads(p.read_text())
               for p in sorted((out / "records").glob("*.json"))}
    assert len(list((out / "records").glob("*.json"))) == 4
    assert set(records) == {"proadapter_bn32_k0.5", "seq_bn_bn32", "peft_vera_r1024"}
    for record in records.values():
        assert record["main_metric"] == "pearson" and record["seed"] == 3 and record["budget"] == "s2"
        assert record["validation_score"] == record["validation"]["pearson"]
        assert record["test_score"] == record["test"]["pearson"]
        storage = record["storage"]
        assert storage["bytes_on_disk"] == storage["variants"][storage["format"]]["bytes_on_disk"] > 0
        assert record["head"]["bytes_on_disk"] > 0 and record["wall_time_seconds"] > 0
        if record["family"] != "peft":
            assert record["run_wall_time_seconds"] > 0
        assert "benchmarks.frontier" in record["reproduce"] and record["run_glue_argv"]
    pro = records["proadapter_bn32_k0.5"]
    assert pro["storage"]["format"] == "compact_bf16"
    assert set(pro["storage"]["variants"]) == {"compact_bf16", "compact_int8", "compact_bf16_safetensors",
                                               "compact_int8_safetensors", "fp32"}
    for variant in ("compact_bf16", "compact_int8"):  # the same export in PEFT's container: smaller, same values
        container = pro["storage"]["variants"][f"{variant}_safetensors"]
        torch_export = pro["storage"]["variants"][variant]
        assert container["weights_format"] == "safetensors" and container["bits"] == torch_export["bits"]
        assert 0 < container["bytes_on_disk"] < torch_export["bytes_on_disk"]
        assert os.path.isfile(os.path.join(container["folder"], "adapter.safetensors"))
    compact = pro["storage"]["variants"]["compact_bf16"]
    assert compact["values_by_bits"].get("16", 0) > 0 and "32" not in compact["values_by_bits"]
    int8 = pro["storage"]["variants"]["compact_int8"]
    assert int8["prototype_dtype"] == "int8" and int8["values_by_bits"].get("8", 0) > 0
    assert compact["mask_file_version"] == int8["mask_file_version"] == 4
    assert pro["compact_test_score"] == pytest.approx(pro["test_score"], abs=1.0)
    assert pro["compact_test_scores"]["compact_bf16"] == pro["compact_test_score"]
    assert pro["compact_test_scores"]["compact_int8"] == pytest.approx(pro["test_score"], abs=1.0)
    assert records["peft_vera_r1024"]["head_learning_rate"] == 1e-3
    assert set(records["peft_vera_r1024"]["storage"]["variants"]) == {"without_projection", "with_projection"}
    summary = (out / "summary.md").read_text()
    assert "ProAdapter bn 32, k 0.5" in summary and "VeRA" in summary and "★" in summary
    assert "| ProAdapter bn 32, k 0.5, int8 |" in summary
    assert "(compact_bf16, mask file v4)" in summary and "(compact_int8, mask file v4)" in summary
    assert (out / "frontier_stsb.png").is_file() == (importlib.util.find_spec("matplotlib") is not None)

    # Run again: every record is finished, nothing is retrained or rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 4
    assert {p: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")} == stamps


def test_progress_names_the_run_time_of_a_run_folder_picked_up_again():
    from benchmarks.frontier.cli import _run_time

    assert _run_time({"wall_time_seconds": 16.0, "run_wall_time_seconds": 1800.0}) == \
        " (its run_glue.py run took 1800 s)"
    assert _run_time({"wall_time_seconds": 1850.0, "run_wall_time_seconds": 1800.0}) == ""  # trained in this call
    assert _run_time({"wall_time_seconds": 900.0}) == ""  # PEFT runs have no run_glue.py time


# ---------------------------------------------------------------------------
# Comparing two record folders (did a rerun reproduce?)
# ---------------------------------------------------------------------------


def _write_record(folder, run_id, validation, test, int8=None, machine=None):
    os.makedirs(folder, exist_ok=True)
    record = _record("peft_vera_r1024", 2e-2, 42, validation, test)
    record.update(run_id=run_id, versions={"machine": machine} if machine else {"torch": "2.13.0"})
    if int8 is not None:
        record["compact_test_scores"] = {"compact_int8": int8}
    (folder / f"{run_id}.json").write_text(json.dumps(record))


def test_compare_pairs_runs_by_id_and_tables_what_moved(tmp_path, capsys):
    from benchmarks.frontier.compare import main
    first, second, out = tmp_path / "a", tmp_path / "b", tmp_path / "compare.md"
    amx = {"cpu": "Xeon", "bf16_instructions": ["amx_bf16"], "torch_threads": 2, "cuda": None}
    _write_record(first, "mrpc__x__lr0.002__seed42__e5", 85.0, 84.0, int8=84.5)
    _write_record(second, "mrpc__x__lr0.002__seed42__e5", 86.0, 83.0, int8=83.5, machine=amx)
    _write_record(first, "mrpc__y__lr0.01__seed42__e5", 80.0, 81.0)
    _write_record(second, "mrpc__y__lr0.01__seed42__e5", 80.0, 81.0, machine=amx)
    _write_record(first, "mrpc__only_here__lr0.01__seed42__e5", 70.0, 70.0)
    assert main([str(first), str(second), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text == out.read_text()
    assert "(second): 2." in text and "only_here" not in text
    assert "first not recorded; second Xeon (amx_bf16, 2 threads)" in text
    moved = "| 85.00 → 86.00 (+1.00) | 84.00 → 83.00 (-1.00) | 84.50 → 83.50 (-1.00) |"
    assert f"| mrpc__x__lr0.002__seed42__e5 {moved}" in text
    assert "| 80.00 → 80.00 (+0.00) | 81.00 → 81.00 (+0.00) | – |" in text
    assert "identical in 1 of 2 pairs; |change| mean 0.50, largest 1.00" in text
