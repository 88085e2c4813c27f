"""Readers for user-provided CSV / TSV / JSON / JSON-lines classification data.

Rows come out in the same format as the GLUE readers
(``{"sentence1", "sentence2", "label"}``), so the rest of the pipeline does not
care where the data came from.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from .glue import GlueDataError, PathLike, Row, read_utf8

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")

# (location for error messages, e.g. "line 3", record as read from the file)
_Record = tuple[str, dict[str, Any]]


def load_text_files(
    files: Mapping[str, PathLike],
    text_columns: Sequence[str],
    label_column: str = "label",
    *,
    is_regression: bool = False,
) -> tuple[dict[str, list[Row]], list[str] | None]:
    """Read labelled splits from user files.

    Formats, chosen by file suffix:
        ``.csv``: comma-separated with a header line, standard CSV quoting.
        ``.tsv``: tab-separated with a header line, no quote handling (as GLUE).
        ``.jsonl``: one JSON object per line.
        ``.json``: a JSON array of objects, or JSON lines.

    For classification the label list is the sorted unique label strings of the
    ``"train"`` file (values are compared as strings, so JSON ``1`` and CSV ``"1"``
    agree); class ids are positions in that list, and labels of other splits must
    occur in it. With ``is_regression`` labels are parsed as finite floats and the
    returned label list is ``None``.

    Args:
        files: ``{split name: path}``; must contain ``"train"``.
        text_columns: Names of the one or two text columns (``sentence1``, ``sentence2``).
        label_column: Name of the label column.
        is_regression: Treat labels as real-valued scores.

    Returns:
        ``(splits, label_list)`` with ``splits = {split name: rows}``.

    Raises:
        ValueError: if ``files`` has no ``"train"`` entry or ``text_columns`` does
            not name one or two columns.
        GlueDataError: if a file is missing, empty, of an unsupported type or
            malformed, lacks a column, or has a label outside the train label set;
            the message names the file, the line or record, what was found and what
            was expected.
    """
    if "train" not in files:
        raise ValueError(f"a 'train' file is required (labels are inferred from it), got splits {sorted(files)}")
    if len(text_columns) not in (1, 2):
        raise ValueError(f"expected one or two text columns, got {list(text_columns)}")
    wanted = [*text_columns, label_column]
    records = {split: _read_records(Path(path), wanted) for split, path in files.items()}

    label_list = None
    if not is_regression:
        train_path = Path(files["train"])
        label_list = sorted({_label_text(train_path, where, rec, label_column) for where, rec in records["train"]})

    splits = {
        split: [
            _make_row(Path(files[split]), where, record, text_columns, label_column, label_list)
            for where, record in split_records
        ]
        for split, split_records in records.items()
    }
    return splits, label_list


def _read_records(path: Path, wanted: list[str]) -> list[_Record]:
    """Read all records of ``path``; check that each has the ``wanted`` columns."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise GlueDataError(
            f"{path}: unsupported file type '{path.suffix}'; expected one of {list(SUPPORTED_SUFFIXES)}"
        )
    if not path.is_file():
        raise GlueDataError(f"{path}: file not found")
    text = read_utf8(path)
    if not text.strip():
        raise GlueDataError(f"{path}: file is empty; expected records with columns {wanted}")
    if path.suffix.lower() in (".csv", ".tsv"):
        records = _delimited_records(path, text, wanted)
    else:
        records = _json_records(path, text)
    if not records:
        raise GlueDataError(f"{path}: no data rows; expected records with columns {wanted}")
    for where, record in records:
        missing = [name for name in wanted if name not in record]
        if missing:
            raise GlueDataError(
                f"{path}, {where}: missing column(s) {missing}; expected {wanted}, found {list(record)}"
            )
    return records


def _delimited_records(path: Path, text: str, wanted: list[str]) -> list[_Record]:
    if path.suffix.lower() == ".tsv":
        reader = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    missing = [name for name in wanted if name not in header]
    if missing:
        raise GlueDataError(f"{path}: missing column(s) {missing}; expected {wanted}, found header {header}")
    records = []
    for record in reader:
        where = f"line {reader.line_num}"
        # DictReader files surplus fields under the key None and fills short rows with None.
        surplus = len(record.pop(None, []))
        absent = sum(value is None for value in record.values())
        if surplus or absent:
            found = len(header) + surplus - absent
            raise GlueDataError(f"{path}, {where}: found {found} fields, expected {len(header)} (header {header})")
        records.append((where, record))
    return records


def _json_records(path: Path, text: str) -> list[_Record]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None  # not a single JSON document: read it as JSON lines
    if isinstance(data, list):
        located = [(f"record {i}", item) for i, item in enumerate(data, start=1)]
    elif data is not None and path.suffix.lower() == ".json":
        raise GlueDataError(f"{path}: found a JSON {type(data).__name__}; expected an array of objects or JSON lines")
    else:
        located = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                located.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise GlueDataError(
                    f"{path}, line {number}: invalid JSON ({exc.msg}); expected one JSON object per line"
                ) from exc
    for where, item in located:
        if not isinstance(item, dict):
            raise GlueDataError(f"{path}, {where}: found a JSON {type(item).__name__}; expected an object")
    return located


def _label_text(path: Path, where: str, record: dict[str, Any], label_column: str) -> str:
    value = record[label_column]
    if value is None or (isinstance(value, str) and not value.strip()):
        raise GlueDataError(f"{path}, {where}: empty value in label column '{label_column}'; expected a label")
    return str(value).strip()


def _make_row(
    path: Path,
    where: str,
    record: dict[str, Any],
    text_columns: Sequence[str],
    label_column: str,
    label_list: list[str] | None,
) -> Row:
    texts = []
    for column in text_columns:
        value = record[column]
        if not isinstance(value, str):
            raise GlueDataError(f"{path}, {where}: column '{column}' has {value!r}; expected a string")
        texts.append(value)
    label_text = _label_text(path, where, record, label_column)
    if label_list is not None:
        if label_text not in label_list:
            raise GlueDataError(
                f"{path}, {where}: label '{label_text}' in column '{label_column}' does not occur in the "
                f"train file; expected one of {label_list}"
            )
        label: int | float = label_list.index(label_text)
    else:
        try:
            label = float(label_text)
        except ValueError:
            label = math.nan
        if not math.isfinite(label):
            raise GlueDataError(
                f"{path}, {where}: label '{label_text}' in column '{label_column}' is not valid; "
                "expected a finite number (regression)"
            )
    return {"sentence1": texts[0], "sentence2": texts[1] if len(texts) == 2 else None, "label": label}
