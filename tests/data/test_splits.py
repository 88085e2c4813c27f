"""Tests for the paper's seeded train/validation/test protocol."""

from __future__ import annotations

import numpy as np
import pytest

from propetl_adapters.data.splits import DEFAULT_SPLIT_SEED, LARGE_TASK_VALIDATION_SIZE, paper_splits


def rows(prefix: str, n: int) -> list[dict]:
    return [{"id": f"{prefix}{i}"} for i in range(n)]


def ids(split: list[dict]) -> list[str]:
    return [row["id"] for row in split]


SMALL_RAW = {"train": rows("t", 40), "validation": rows("d", 25)}
LARGE_RAW = {"train": rows("t", 1200), "validation": rows("d", 30)}


@pytest.mark.parametrize("task", ["cola", "rte", "mrpc", "stsb"])
def test_small_task_halves_the_dev_set(task):
    split = paper_splits(task, SMALL_RAW)
    assert split["train"] == SMALL_RAW["train"]
    # 25 rows: floor(25 / 2) = 12 for validation, the other 13 for test.
    assert (len(split["validation"]), len(split["test"])) == (12, 13)
    assert not set(ids(split["validation"])) & set(ids(split["test"]))
    assert sorted(ids(split["validation"]) + ids(split["test"])) == sorted(ids(SMALL_RAW["validation"]))


def test_small_task_rule_is_numpy_randomstate_permutation():
    order = np.random.RandomState(7).permutation(25)
    split = paper_splits("rte", SMALL_RAW, seed=7)
    assert ids(split["validation"]) == [f"d{i}" for i in order[:12]]
    assert ids(split["test"]) == [f"d{i}" for i in order[12:]]


@pytest.mark.parametrize("task", ["sst2", "qnli", "qqp", "mnli"])
def test_large_task_holds_out_1000_training_rows(task):
    split = paper_splits(task, LARGE_RAW)
    assert LARGE_TASK_VALIDATION_SIZE == 1000
    assert (len(split["train"]), len(split["validation"])) == (200, 1000)
    assert split["test"] == LARGE_RAW["validation"]
    assert not set(ids(split["train"])) & set(ids(split["validation"]))
    assert sorted(ids(split["train"]) + ids(split["validation"])) == sorted(ids(LARGE_RAW["train"]))


def test_large_task_rule_and_train_order():
    held_out = np.random.RandomState(3).permutation(1200)[:1000]
    split = paper_splits("sst2", LARGE_RAW, seed=3)
    assert ids(split["validation"]) == [f"t{i}" for i in held_out]
    kept = sorted(set(range(1200)) - set(held_out.tolist()))
    assert ids(split["train"]) == [f"t{i}" for i in kept]  # original file order


@pytest.mark.parametrize("task, raw", [("mrpc", SMALL_RAW), ("qnli", LARGE_RAW)])
def test_same_seed_same_split_other_seed_other_split(task, raw):
    first = paper_splits(task, raw, seed=5)
    assert paper_splits(task, raw, seed=5) == first
    assert paper_splits(task, raw, seed=6)["validation"] != first["validation"]


def test_default_seed_is_42_and_independent_of_global_rng():
    assert DEFAULT_SPLIT_SEED == 42
    np.random.seed(0)  # e.g. set by the training seed
    first = paper_splits("cola", SMALL_RAW)
    np.random.seed(1)
    assert paper_splits("cola", SMALL_RAW) == first == paper_splits("cola", SMALL_RAW, seed=42)


def test_outputs_are_new_lists():
    split = paper_splits("rte", SMALL_RAW)
    split["train"].append({"id": "extra"})
    assert len(SMALL_RAW["train"]) == 40


def test_mnli_mismatched_validation_option():
    raw = {**LARGE_RAW, "validation_mismatched": rows("m", 20)}
    split = paper_splits("mnli", raw, mnli_mismatched_validation=True)
    assert split == {"train": raw["train"], "validation": raw["validation_mismatched"], "test": raw["validation"]}
    # Without the option MNLI follows the large-task rule; test is the matched dev set.
    default = paper_splits("mnli", raw)
    assert len(default["validation"]) == 1000 and default["test"] == raw["validation"]


def test_mnli_option_errors():
    with pytest.raises(ValueError, match="only applies to mnli, not rte"):
        paper_splits("rte", SMALL_RAW, mnli_mismatched_validation=True)
    with pytest.raises(ValueError, match=r"missing split\(s\) \['validation_mismatched'\]"):
        paper_splits("mnli", LARGE_RAW, mnli_mismatched_validation=True)


def test_missing_and_too_small_splits():
    with pytest.raises(ValueError, match=r"missing split\(s\) \['validation'\]; expected \['train', 'validation'\]"):
        paper_splits("rte", {"train": rows("t", 5)})
    with pytest.raises(ValueError, match="dev set has 1 rows; at least 2"):
        paper_splits("stsb", {"train": rows("t", 5), "validation": rows("d", 1)})
    with pytest.raises(ValueError, match="training set has 1000 rows; more than 1000"):
        paper_splits("qqp", {"train": rows("t", 1000), "validation": rows("d", 5)})
