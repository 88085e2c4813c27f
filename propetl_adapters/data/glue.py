"""GLUE task registry and strict readers for the GLUE TSV files.

Every reader returns rows of the form
``{"sentence1": str, "sentence2": str | None, "label": int | float}``.
Class ids are positions in :attr:`GlueTask.labels`, which follow the label order
of the Hugging Face ``glue`` dataset, so rows read from disk and rows loaded
online carry the same ids.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import datasets

Row = dict[str, Any]
PathLike = str | os.PathLike[str]

STSB_SCORE_RANGE = (0.0, 5.0)


class GlueDataError(ValueError):
    """A data file is missing, empty or does not have the expected format."""


@dataclass(frozen=True)
class GlueTask:
    """Static description of one GLUE task.

    Attributes:
        name: Short task name used throughout the project (``"sst2"``).
        folder: Folder of the task inside a GLUE data directory (``"SST-2"``).
        text_columns: Header names of the one or two text columns in the TSV files.
        label_column: Header name of the label (or score) column.
        labels: Label strings as written in the TSV files; the class id of a label is
            its position. ``None`` for the regression task STS-B.
        label_names: Human-readable class names (the Hugging Face ``glue`` names),
            aligned with ``labels``; ``None`` for STS-B.
        metrics: Metric keys reported for the task, in reporting order.
        main_metric: The metric key used for model selection.
        paper_epochs: Training epochs used in the ProPETL paper.
        small: ``True`` for tasks with fewer than 10k training examples; they get the
            dev-halving split protocol (see :mod:`propetl_adapters.data.splits`).
        hf_config: Config name for ``datasets.load_dataset("glue", hf_config)``.
        hf_text_columns: Names of the text features in the Hugging Face dataset.
        eval_files: ``(split name, file name)`` pairs for the labelled dev files.
        hf_eval_splits: ``(split name, Hugging Face split)`` pairs matching ``eval_files``.
        fixed_header: Column names for files that have no header line (CoLA).
    """

    name: str
    folder: str
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...] | None
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    main_metric: str
    paper_epochs: int
    small: bool
    hf_config: str
    hf_text_columns: tuple[str, ...]
    eval_files: tuple[tuple[str, str], ...] = (("validation", "dev.tsv"),)
    hf_eval_splits: tuple[tuple[str, str], ...] = (("validation", "validation"),)
    fixed_header: tuple[str, ...] | None = None

    @property
    def is_regression(self) -> bool:
        """Whether the task predicts a real-valued score instead of a class."""
        return self.labels is None

    @property
    def num_labels(self) -> int:
        """Size of the model output: number of classes, or 1 for regression."""
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        """Whether examples consist of two sentences."""
        return len(self.text_columns) == 2

    @property
    def tsv_files(self) -> tuple[str, ...]:
        """Names of the labelled TSV files in the task folder."""
        return ("train.tsv", *(filename for _, filename in self.eval_files))

    @property
    def hf_dataset(self) -> tuple[str, str]:
        """Arguments for ``datasets.load_dataset``."""
        return ("glue", self.hf_config)


_BINARY = ("0", "1")
_ENTAILMENT = ("entailment", "not_entailment")
_NLI = ("entailment", "neutral", "contradiction")

GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask(
            name="cola", folder="CoLA", text_columns=("sentence",), label_column="label",
            labels=_BINARY, label_names=("unacceptable", "acceptable"),
            metrics=("matthews_correlation",), main_metric="matthews_correlation",
            paper_epochs=20, small=True, hf_config="cola", hf_text_columns=("sentence",),
            fixed_header=("source", "label", "original_label", "sentence"),
        ),
        GlueTask(
            name="sst2", folder="SST-2", text_columns=("sentence",), label_column="label",
            labels=_BINARY, label_names=("negative", "positive"),
            metrics=("accuracy",), main_metric="accuracy",
            paper_epochs=10, small=False, hf_config="sst2", hf_text_columns=("sentence",),
        ),
        GlueTask(
            name="mrpc", folder="MRPC", text_columns=("#1 String", "#2 String"),
            label_column="Quality", labels=_BINARY, label_names=("not_equivalent", "equivalent"),
            metrics=("accuracy", "f1"), main_metric="f1",
            paper_epochs=20, small=True, hf_config="mrpc",
            hf_text_columns=("sentence1", "sentence2"),
        ),
        GlueTask(
            name="stsb", folder="STS-B", text_columns=("sentence1", "sentence2"),
            label_column="score", labels=None, label_names=None,
            metrics=("pearson", "spearmanr"), main_metric="pearson",
            paper_epochs=20, small=True, hf_config="stsb",
            hf_text_columns=("sentence1", "sentence2"),
        ),
        GlueTask(
            name="qqp", folder="QQP", text_columns=("question1", "question2"),
            label_column="is_duplicate", labels=_BINARY, label_names=("not_duplicate", "duplicate"),
            metrics=("accuracy", "f1"), main_metric="f1",
            paper_epochs=10, small=False, hf_config="qqp",
            hf_text_columns=("question1", "question2"),
        ),
        GlueTask(
            name="mnli", folder="MNLI", text_columns=("sentence1", "sentence2"),
            label_column="gold_label", labels=_NLI, label_names=_NLI,
            metrics=("accuracy",), main_metric="accuracy",
            paper_epochs=10, small=False, hf_config="mnli",
            hf_text_columns=("premise", "hypothesis"),
            eval_files=(
                ("validation", "dev_matched.tsv"),
                ("validation_mismatched", "dev_mismatched.tsv"),
            ),
            hf_eval_splits=(
                ("validation", "validation_matched"),
                ("validation_mismatched", "validation_mismatched"),
            ),
        ),
        GlueTask(
            name="qnli", folder="QNLI", text_columns=("question", "sentence"),
            label_column="label", labels=_ENTAILMENT, label_names=_ENTAILMENT,
            metrics=("accuracy",), main_metric="accuracy",
            paper_epochs=10, small=False, hf_config="qnli",
            hf_text_columns=("question", "sentence"),
        ),
        GlueTask(
            name="rte", folder="RTE", text_columns=("sentence1", "sentence2"),
            label_column="label", labels=_ENTAILMENT, label_names=_ENTAILMENT,
            metrics=("accuracy",), main_metric="accuracy",
            paper_epochs=20, small=True, hf_config="rte",
            hf_text_columns=("sentence1", "sentence2"),
        ),
    )
}

TASK_NAMES: tuple[str, ...] = tuple(GLUE_TASKS)


def get_task(task: str | GlueTask) -> GlueTask:
    """Return the spec of ``task``.

    Names are matched case-insensitively and ignoring ``-``/``_``, so the folder
    names ``"SST-2"`` and ``"STS-B"`` work as well as ``"sst2"`` and ``"stsb"``.
    """
    if isinstance(task, GlueTask):
        return task
    key = task.lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task '{task}'; expected one of {list(TASK_NAMES)}")
    return GLUE_TASKS[key]


def read_glue_tsv(path: PathLike, task: str | GlueTask) -> list[Row]:
    """Read one labelled GLUE TSV file (train or dev) of ``task``.

    Columns are located by their header names (``task.text_columns`` and
    ``task.label_column``); CoLA has no header and uses ``task.fixed_header``.
    Fields are split on tabs only (``csv.QUOTE_NONE``) because GLUE text contains
    unbalanced double quotes. A UTF-8 byte-order mark (MRPC) is ignored and blank
    lines are skipped.

    Raises:
        GlueDataError: if the file is missing or has no data rows, a required column
            is absent, a row has the wrong number of fields, a label is not one of
            ``task.labels``, or an STS-B score is not a number in [0, 5]. The message
            names the file, the line (where there is one), what was found and what
            was expected.
    """
    spec = get_task(task)
    path = Path(path)
    if not path.is_file():
        expected = ", ".join(spec.tsv_files)
        raise GlueDataError(
            f"{path}: file not found; expected a GLUE {spec.folder} TSV file "
            f"(the task folder holds {expected})"
        )
    with io.StringIO(read_utf8(path), newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if spec.fixed_header is None:
            first = next(reader, None)
            if first is None:
                raise GlueDataError(f"{path}: file is empty; expected a {spec.folder} header line and data rows")
            header = [name.strip() for name in first]
        else:
            header = list(spec.fixed_header)
        text_idx, label_idx = _column_positions(path, spec, header)
        rows = [
            _make_row(path, reader.line_num, spec, header, fields, text_idx, label_idx)
            for fields in reader
            if fields  # blank line
        ]
    if not rows:
        raise GlueDataError(f"{path}: no data rows; expected {spec.folder} examples after the header")
    return rows


def read_utf8(path: Path) -> str:
    """The text of a data file (UTF-8, optional byte-order mark); other bytes are refused by file and line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:  # err.object lacks the byte-order mark, if there was one
        line = err.object.count(b"\n", 0, err.start) + 1
        offset = err.start + len(data) - len(err.object)
        raise GlueDataError(f"{path}, line {line}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                            f"{offset}); save the file as UTF-8") from None


def load_glue_dir(glue_dir: PathLike, task: str | GlueTask) -> dict[str, list[Row]]:
    """Read the labelled splits of ``task`` from a GLUE data directory.

    Reads ``<glue_dir>/<task.folder>/train.tsv`` and the dev files. Returns
    ``{"train": rows, "validation": rows}``; for MNLI ``"validation"`` is
    ``dev_matched.tsv`` and ``"validation_mismatched"`` is ``dev_mismatched.tsv``.
    """
    spec = get_task(task)
    folder = Path(glue_dir) / spec.folder
    splits = {"train": read_glue_tsv(folder / "train.tsv", spec)}
    for split, filename in spec.eval_files:
        splits[split] = read_glue_tsv(folder / filename, spec)
    return splits


def load_glue_online(task: str | GlueTask) -> dict[str, list[Row]]:
    """Load ``task`` with ``datasets.load_dataset("glue", config)``.

    Returns the same split names and row format as :func:`load_glue_dir`.

    Raises:
        GlueDataError: if the dataset cannot be loaded (typically: no internet
            access); the message suggests using ``--glue_dir`` instead.
    """
    spec = get_task(task)
    try:
        dataset = datasets.load_dataset(*spec.hf_dataset)
    except Exception as exc:  # network, hub and cache failures have many exception types
        files = ", ".join(f"{spec.folder}/{name}" for name in spec.tsv_files)
        raise GlueDataError(
            f"could not load GLUE task '{spec.name}' with datasets.load_dataset{spec.hf_dataset!r}: "
            f"{type(exc).__name__}: {exc}. Without internet access, pass --glue_dir pointing to a "
            f"GLUE data directory that contains {files}"
        ) from exc
    splits = {"train": _hf_rows(dataset["train"], spec)}
    for split, hf_split in spec.hf_eval_splits:
        splits[split] = _hf_rows(dataset[hf_split], spec)
    return splits


def _column_positions(path: Path, spec: GlueTask, header: list[str]) -> tuple[list[int], int]:
    """Find the text and label columns in ``header`` or raise a descriptive error."""
    wanted = [*spec.text_columns, spec.label_column]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise GlueDataError(
            f"{path}: missing column(s) {missing} for task {spec.name}; "
            f"expected a header containing {wanted}, found {header}"
        )
    return [header.index(name) for name in spec.text_columns], header.index(spec.label_column)


def _make_row(
    path: Path,
    line: int,
    spec: GlueTask,
    header: list[str],
    fields: list[str],
    text_idx: list[int],
    label_idx: int,
) -> Row:
    # A wrong field count usually means a stray tab, which would silently shift columns.
    if len(fields) != len(header):
        raise GlueDataError(
            f"{path}, line {line}: found {len(fields)} tab-separated fields, expected "
            f"{len(header)} ({spec.folder} columns {header})"
        )
    texts = [fields[i] for i in text_idx]
    return {
        "sentence1": texts[0],
        "sentence2": texts[1] if spec.is_pair else None,
        "label": _parse_label(fields[label_idx], spec, f"{path}, line {line}"),
    }


def _parse_label(raw: str, spec: GlueTask, where: str) -> int | float:
    value = raw.strip()
    if spec.labels is not None:
        if value not in spec.labels:
            raise GlueDataError(
                f"{where}: label '{raw}' in column '{spec.label_column}' is not a {spec.name} label; "
                f"expected one of {list(spec.labels)}"
            )
        return spec.labels.index(value)
    low, high = STSB_SCORE_RANGE
    try:
        score = float(value)
    except ValueError:
        score = math.nan
    if not low <= score <= high:  # also rejects nan
        raise GlueDataError(
            f"{where}: score '{raw}' in column '{spec.label_column}' is not valid; "
            f"expected a number between {low} and {high}"
        )
    return score


def _hf_rows(examples: Iterable[dict[str, Any]], spec: GlueTask) -> list[Row]:
    first, *rest = spec.hf_text_columns
    convert = float if spec.is_regression else int
    return [
        {
            "sentence1": example[first],
            "sentence2": example[rest[0]] if rest else None,
            "label": convert(example["label"]),
        }
        for example in examples
    ]


def tokenize_split(rows: list[Row], tokenizer, max_length: int, pad_to_max_length: bool, is_regression: bool):
    """A ``datasets.Dataset`` with input_ids, attention_mask (token_type_ids) and labels."""
    pair = any(row["sentence2"] is not None for row in rows)
    columns = {"sentence1": [row["sentence1"] for row in rows],
               "labels": [float(row["label"]) if is_regression else int(row["label"]) for row in rows]}
    if pair:
        columns["sentence2"] = [row["sentence2"] or "" for row in rows]
    dataset = datasets.Dataset.from_dict(columns)

    def encode(batch):
        texts = (batch["sentence1"], batch["sentence2"]) if pair else (batch["sentence1"],)
        return tokenizer(*texts, truncation=True, max_length=max_length,
                         padding="max_length" if pad_to_max_length else False)

    text_columns = ["sentence1", "sentence2"] if pair else ["sentence1"]
    return dataset.map(encode, batched=True, remove_columns=text_columns, desc="tokenizing")
