"""propetl-plot on a small synthetic results folder: PNGs with the expected series and markdown tables."""

import json

import pytest

from propetl_adapters.experiments.run_folder import ResultsError
from propetl_adapters.reports.plots import aggregate, collect, main


def write_result(path, task, score, bls=None, metric="accuracy"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "all_results.json").write_text(json.dumps({
        "task": task, "main_metric": metric, "test": {metric: score}, "storage": {"bls_percent": bls}}))


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "out"
    for seed, shift in ((42, 0.0), (43, 2.0)):
        for variant, base in (("proadapter", 70.0), ("prolora", 65.0)):
            for k in (0.1, 0.5, 1.0):
                write_result(root / "sparsity" / f"{variant}_k{k}" / "mrpc" / f"seed{seed}", "mrpc",
                             base + shift + (5.0 if k == 0.5 else 0.0))
        for method, factor in (("seq_bn", 1.0), ("proadapter", 0.12)):
            for size in (8, 16, 32, 64):
                write_result(root / "storage" / f"{method}_bn{size}" / "rte" / f"seed{seed}", "rte",
                             60.0 + size / 10 + shift, bls=factor * size / 32)
        for setting, score in (("proadapter", 80), ("only_share", 78), ("only_mask", 77), ("random_mask", 60)):
            write_result(root / "ablation" / setting / "rte" / f"seed{seed}", "rte", score + shift)
    return root


def test_sparsity_plot_marks_the_best_k_per_variant(results, tmp_path):
    table = aggregate(collect("sparsity", str(results / "sparsity")))
    assert set(table["mrpc"]) == {"proadapter", "prolora"}
    point = table["mrpc"]["proadapter"][0.5]
    assert (point["mean"], round(point["std"], 4), point["n"]) == (76.0, round(2 ** 0.5, 4), 2)  # 75 and 77
    out = tmp_path / "figures"
    assert main(["sparsity", str(results / "sparsity"), "--out", str(out)]) == 0
    assert (out / "sparsity_mrpc.png").stat().st_size > 5000
    markdown = (out / "sparsity.md").read_text()
    assert "| ProAdapter | 71.00 ± 1.41 (n=2) | 76.00 ± 1.41 (n=2) | 71.00 ± 1.41 (n=2) | 0.5 |" in markdown


def test_storage_and_ablation_plots(results, tmp_path):
    out = tmp_path / "figures"
    assert main(["storage", str(results / "storage"), "--out", str(out)]) == 0
    assert (out / "storage_rte.png").stat().st_size > 5000
    storage = (out / "storage.md").read_text()
    assert "| Adapter | 64 | 2.0000 |" in storage and "| ProAdapter | 8 | 0.0300 |" in storage
    assert main(["ablation", str(results / "ablation"), "--out", str(out)]) == 0
    assert (out / "ablation_rte.png").stat().st_size > 5000
    ablation = (out / "ablation.md").read_text()
    assert ablation.index("ProAdapter") < ablation.index("only share") < ablation.index("random mask")


def test_empty_or_broken_folders_give_clear_errors(tmp_path, capsys):
    assert main(["sparsity", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    assert "no all_results.json" in capsys.readouterr().err
    bad = tmp_path / "prolora_k0.3" / "rte" / "seed1"
    bad.mkdir(parents=True)
    (bad / "all_results.json").write_text("{not json")
    with pytest.raises(ResultsError, match="not valid JSON"):
        collect("sparsity", str(tmp_path))


def test_tables_give_every_test_metric_of_the_task_with_the_main_one_first(tmp_path):
    root = tmp_path / "storage"
    for seed, shift in ((42, 0.0), (43, 2.0)):
        folder = root / "seq_bn_bn8" / "mrpc" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "all_results.json").write_text(json.dumps({
            "task": "mrpc", "main_metric": "f1", "test": {"accuracy": 77.0 + shift, "f1": 85.0 + shift, "loss": 0.4},
            "storage": {"bls_percent": 0.17}}))
    out = tmp_path / "figures"
    assert main(["storage", str(root), "--out", str(out)]) == 0
    storage = (out / "storage.md").read_text()
    assert "## mrpc: test f1 / accuracy (%) against storage" in storage
    assert "| Adapter | 8 | 0.1700 | 86.00 ± 1.41 / 78.00 ± 1.41 (n=2) |" in storage  # the loss is left out
