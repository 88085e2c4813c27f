"""The ProPETL paper's train/validation/test protocol for GLUE.

GLUE test labels are not public, so the paper evaluates on data carved out of
the labelled files. The split seed is separate from the training seed so that
runs with different training seeds are evaluated on identical splits.
"""

from __future__ import annotations

from typing import Mapping, Sequence, TypeVar

import numpy as np

from .glue import GlueTask, get_task

RowT = TypeVar("RowT")

DEFAULT_SPLIT_SEED = 42
LARGE_TASK_VALIDATION_SIZE = 1000


def paper_splits(
    task: str | GlueTask,
    raw: Mapping[str, Sequence[RowT]],
    seed: int = DEFAULT_SPLIT_SEED,
    *,
    mnli_mismatched_validation: bool = False,
) -> dict[str, list[RowT]]:
    """Build the paper's ``train``/``validation``/``test`` splits from GLUE data.

    ``validation`` is used for model selection and ``test`` for the reported score.
    All randomness comes from ``numpy.random.RandomState(seed).permutation(n)``,
    so the same ``seed`` and input always give the same splits.

    Small tasks (``task.small``: CoLA, RTE, MRPC, STS-B):
        ``train`` is ``raw["train"]`` unchanged. The dev set ``raw["validation"]``
        (n rows) is reordered by ``permutation(n)``; the first ``floor(n / 2)``
        rows of that order are ``validation`` and the remaining ``ceil(n / 2)``
        rows are ``test`` (for odd n the test half has one row more).

    Large tasks (SST-2, QNLI, QQP, MNLI):
        With ``perm = permutation(len(raw["train"]))``, the training rows at
        ``perm[:1000]`` (in that order) are held out as ``validation``; ``train`` is
        the remaining rows in their original file order. ``test`` is the full dev
        set ``raw["validation"]`` (for MNLI: the matched dev set).

    MNLI with ``mnli_mismatched_validation=True`` (used in the seq2seq setting):
        ``train`` is the full training set, ``validation`` is
        ``raw["validation_mismatched"]`` and ``test`` is the matched dev set; no
        training rows are held out and the seed is not used.

    Args:
        task: Task name or spec.
        raw: Splits as returned by ``load_glue_dir``/``load_glue_online``: needs
            ``"train"`` and ``"validation"`` (and ``"validation_mismatched"`` for the
            MNLI option).
        seed: Split seed, independent of the training seed.
        mnli_mismatched_validation: Select on MNLI mismatched dev (MNLI only).

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}`` as new lists.

    Raises:
        ValueError: if a required split is missing or too small, or the MNLI
            option is used with another task.
    """
    spec = get_task(task)
    if mnli_mismatched_validation and spec.name != "mnli":
        raise ValueError(f"mnli_mismatched_validation only applies to mnli, not {spec.name}")
    needed = ["train", "validation"] + (["validation_mismatched"] if mnli_mismatched_validation else [])
    missing = [name for name in needed if name not in raw]
    if missing:
        raise ValueError(f"{spec.name}: missing split(s) {missing}; expected {needed}, found {sorted(raw)}")
    train, dev = raw["train"], raw["validation"]

    if mnli_mismatched_validation:
        return {"train": list(train), "validation": list(raw["validation_mismatched"]), "test": list(dev)}

    rng = np.random.RandomState(seed)
    if spec.small:
        if len(dev) < 2:
            raise ValueError(f"{spec.name}: the dev set has {len(dev)} rows; at least 2 are needed to halve it")
        order = rng.permutation(len(dev))
        half = len(dev) // 2
        return {
            "train": list(train),
            "validation": [dev[i] for i in order[:half]],
            "test": [dev[i] for i in order[half:]],
        }

    if len(train) <= LARGE_TASK_VALIDATION_SIZE:
        raise ValueError(
            f"{spec.name}: the training set has {len(train)} rows; more than "
            f"{LARGE_TASK_VALIDATION_SIZE} are needed to hold out a validation set"
        )
    held_out = rng.permutation(len(train))[:LARGE_TASK_VALIDATION_SIZE]
    keep = np.ones(len(train), dtype=bool)
    keep[held_out] = False
    return {
        "train": [row for row, kept in zip(train, keep) if kept],
        "validation": [train[i] for i in held_out],
        "test": list(dev),
    }
