"""Tests for the GLUE task registry, the GLUE TSV readers and the user-file readers."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from propetl_adapters.data import glue as glue_module
from propetl_adapters.data.glue import (
    GLUE_TASKS,
    TASK_NAMES,
    GlueDataError,
    get_task,
    load_glue_dir,
    load_glue_online,
    read_glue_tsv,
)
from propetl_adapters.data.text_files import load_text_files

REAL_GLUE_DIR = Path(__file__).resolve().parents[3] / "shared" / "glue"  # ../shared/glue, as CI lays it out

# ---------------------------------------------------------------------------
# Tiny GLUE-format files
# ---------------------------------------------------------------------------

MNLI_PREFIX = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
               "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]
HEADERS = {
    "cola": None,
    "sst2": ["sentence", "label"],
    "mrpc": ["\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
    "stsb": ["index", "genre", "filename", "year", "old_index", "source1", "source2",
             "sentence1", "sentence2", "score"],
    "qqp": ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
    "qnli": ["index", "question", "sentence", "label"],
    "rte": ["index", "sentence1", "sentence2", "label"],
    "mnli": MNLI_PREFIX + ["label1", "gold_label"],
}
MNLI_DEV_HEADER = MNLI_PREFIX + ["label1", "label2", "label3", "label4", "label5", "gold_label"]


def layout(task: str, i: int, s1: str, s2: str, label: str, dev: bool) -> list[str]:
    """Fields of one data line in the GLUE format of ``task``."""
    if task == "cola":
        return ["gj04", label, "" if label == "1" else "*", s1]
    if task == "sst2":
        return [s1, label]
    if task == "mrpc":
        return [label, str(1000 + i), str(2000 + i), s1, s2]
    if task == "stsb":
        return [str(i), "main-captions", "MSRvid", "2012test", f"{i:04d}", "none", "none", s1, s2, label]
    if task == "qqp":
        return [str(i), str(2 * i), str(2 * i + 1), s1, s2, label]
    if task in ("qnli", "rte"):
        return [str(i), s1, s2, label]
    parses = ["( ( A ) )", "( ( B ) )", "(ROOT (S A))", "(ROOT (S B))"]
    labels = [label] * (5 if dev else 1)
    return [str(i), "31193", f"{i}e", "fiction", *parses, s1, s2, *labels, label]


def write_lines(path: Path, lines: list[list[str]], trailing_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join("\t".join(fields) for fields in lines)
    path.write_text(text + ("\n" if trailing_newline else ""), encoding="utf-8")
    return path


def make_split(path: Path, task: str, n: int, dev: bool = False, offset: int = 0) -> list[dict]:
    """Write ``n`` examples of ``task`` to ``path``; return the rows the reader should produce."""
    spec = get_task(task)
    lines, expected = [], []
    for i in range(offset, offset + n):
        # Bare double quotes occur in real GLUE text and must survive QUOTE_NONE.
        s1 = f'" first sentence {i}' if i % 5 == 0 else f"first sentence {i}"
        s2 = f'second "sentence {i}'
        if spec.is_regression:
            label_text, label = f"{(i % 11) * 0.5:.3f}", (i % 11) * 0.5
        else:
            label = i % spec.num_labels
            label_text = spec.labels[label]
        lines.append(layout(task, i, s1, s2, label_text, dev))
        expected.append({"sentence1": s1, "sentence2": s2 if spec.is_pair else None, "label": label})
    header = MNLI_DEV_HEADER if (task == "mnli" and dev) else HEADERS[task]
    # Real CoLA dev.tsv has no trailing newline.
    write_lines(path, ([header] if header else []) + lines, trailing_newline=task != "cola")
    return expected


def make_glue_dir(root: Path, task: str, n_train: int = 30, n_dev: int = 24) -> dict[str, list[dict]]:
    spec = get_task(task)
    folder = root / spec.folder
    expected = {"train": make_split(folder / "train.tsv", task, n_train)}
    for k, (split, filename) in enumerate(spec.eval_files):
        expected[split] = make_split(folder / filename, task, n_dev, dev=True, offset=1000 * (k + 1))
    return expected


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def test_registry_has_the_eight_tasks_with_paper_settings():
    assert TASK_NAMES == ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")
    epochs = {name: spec.paper_epochs for name, spec in GLUE_TASKS.items()}
    assert epochs == {"cola": 20, "rte": 20, "mrpc": 20, "stsb": 20,
                      "sst2": 10, "qnli": 10, "qqp": 10, "mnli": 10}
    assert {name for name, spec in GLUE_TASKS.items() if spec.small} == {"cola", "rte", "mrpc", "stsb"}
    folders = {name: spec.folder for name, spec in GLUE_TASKS.items()}
    assert folders == {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B",
                       "qqp": "QQP", "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE"}


def test_registry_labels_metrics_and_hf_names():
    for name, spec in GLUE_TASKS.items():
        assert spec.hf_dataset == ("glue", name)
        assert spec.main_metric in spec.metrics
        assert len(spec.hf_text_columns) == len(spec.text_columns)
    stsb = get_task("stsb")
    assert stsb.is_regression and stsb.labels is None and stsb.num_labels == 1
    assert get_task("mnli").labels == ("entailment", "neutral", "contradiction")
    assert get_task("rte").labels == ("entailment", "not_entailment")
    assert get_task("cola").labels == ("0", "1") and not get_task("cola").is_pair
    assert get_task("mrpc").metrics == ("accuracy", "f1")
    assert get_task("stsb").metrics == ("pearson", "spearmanr")
    assert get_task("cola").metrics == ("matthews_correlation",)
    assert get_task("mnli").tsv_files == ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv")


@pytest.mark.parametrize("alias, name", [("SST-2", "sst2"), ("STS-B", "stsb"), ("CoLA", "cola"), ("q_n_l_i", "qnli")])
def test_get_task_accepts_folder_names(alias, name):
    assert get_task(alias) is GLUE_TASKS[name]
    assert get_task(GLUE_TASKS[name]) is GLUE_TASKS[name]


def test_get_task_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"unknown GLUE task 'wnli'.*'cola'"):
        get_task("wnli")


# ---------------------------------------------------------------------------
# Parsing the GLUE formats
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASK_NAMES)
def test_load_glue_dir_parses_every_format(tmp_path, task):
    expected = make_glue_dir(tmp_path, task)
    loaded = load_glue_dir(tmp_path, task)
    assert loaded == expected
    wanted_splits = {"train", "validation"} | ({"validation_mismatched"} if task == "mnli" else set())
    assert set(loaded) == wanted_splits


def test_mrpc_byte_order_mark_is_ignored(tmp_path):
    make_glue_dir(tmp_path, "mrpc")
    assert (tmp_path / "MRPC" / "dev.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_glue_tsv(tmp_path / "MRPC" / "dev.tsv", "mrpc")[0]["label"] == 0


def test_blank_lines_are_skipped(tmp_path):
    path = write_lines(tmp_path / "dev.tsv", [["sentence", "label"], ["good", "1"], [], ["bad", "0"], []])
    assert read_glue_tsv(path, "sst2") == [
        {"sentence1": "good", "sentence2": None, "label": 1},
        {"sentence1": "bad", "sentence2": None, "label": 0},
    ]


# ---------------------------------------------------------------------------
# Bad GLUE input
# ---------------------------------------------------------------------------


def test_glue_tsv_with_bytes_that_are_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_bytes(b"sentence\tlabel\ngood\t1\ncaf\xe9\t0\n")
    with pytest.raises(GlueDataError, match=r"dev\.tsv, line 3: not UTF-8 text \(byte 0xe9 at offset 25\)"):
        read_glue_tsv(path, "sst2")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # after a byte-order mark: the same line, 3 bytes on
    with pytest.raises(GlueDataError, match=r"dev\.tsv, line 3: not UTF-8 text \(byte 0xe9 at offset 28\)"):
        read_glue_tsv(path, "sst2")


def test_missing_file_names_the_path_and_expected_files(tmp_path):
    with pytest.raises(GlueDataError) as info:
        load_glue_dir(tmp_path, "rte")
    message = str(info.value)
    assert str(tmp_path / "RTE" / "train.tsv") in message
    assert "not found" in message and "dev.tsv" in message


def test_missing_mnli_mismatched_file_is_reported(tmp_path):
    make_glue_dir(tmp_path, "mnli")
    (tmp_path / "MNLI" / "dev_mismatched.tsv").unlink()
    with pytest.raises(GlueDataError, match="dev_mismatched.tsv: file not found"):
        load_glue_dir(tmp_path, "mnli")


@pytest.mark.parametrize("task", ["sst2", "cola"])
def test_empty_file(tmp_path, task):
    path = tmp_path / "train.tsv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(GlueDataError) as info:
        read_glue_tsv(path, task)
    assert str(path) in str(info.value)
    assert "empty" in str(info.value) or "no data rows" in str(info.value)


def test_header_only_file_has_no_data_rows(tmp_path):
    path = write_lines(tmp_path / "dev.tsv", [HEADERS["rte"]])
    with pytest.raises(GlueDataError, match=r"dev\.tsv: no data rows"):
        read_glue_tsv(path, "rte")


def test_missing_column_names_found_and_expected_columns(tmp_path):
    lines = [["index", "premise", "sentence2", "label"], ["0", "a", "b", "entailment"]]
    path = write_lines(tmp_path / "train.tsv", lines)
    with pytest.raises(GlueDataError) as info:
        read_glue_tsv(path, "rte")
    message = str(info.value)
    assert str(path) in message
    assert "['sentence1']" in message  # what is missing
    assert "['sentence1', 'sentence2', 'label']" in message  # what was expected
    assert "premise" in message  # what was found


def test_wrong_task_for_file_is_a_column_error(tmp_path):
    make_glue_dir(tmp_path, "sst2")
    with pytest.raises(GlueDataError, match=r"missing column\(s\) \['question1', 'question2', 'is_duplicate'\]"):
        read_glue_tsv(tmp_path / "SST-2" / "train.tsv", "qqp")


def test_wrong_field_count_names_the_line(tmp_path):
    lines = [HEADERS["rte"], ["0", "a", "b", "entailment"], ["1", "a", "b\tc", "entailment"]]
    path = write_lines(tmp_path / "train.tsv", lines)
    with pytest.raises(GlueDataError, match=r"train\.tsv, line 3: found 5 tab-separated fields, expected 4"):
        read_glue_tsv(path, "rte")


def test_cola_row_with_wrong_width(tmp_path):
    path = write_lines(tmp_path / "dev.tsv", [["gj04", "1", "", "fine"], ["gj04", "1", "only three"]])
    with pytest.raises(GlueDataError, match=r"line 2: found 3 tab-separated fields, expected 4"):
        read_glue_tsv(path, "cola")


@pytest.mark.parametrize(
    "task, bad_label, expected",
    [
        ("rte", "neutral", "['entailment', 'not_entailment']"),
        ("mnli", "-", "['entailment', 'neutral', 'contradiction']"),
        ("cola", "2", "['0', '1']"),
        ("sst2", "positive", "['0', '1']"),
    ],
)
def test_bad_label_names_file_line_label_and_expected_set(tmp_path, task, bad_label, expected):
    make_glue_dir(tmp_path, task, n_train=5)
    path = tmp_path / get_task(task).folder / "train.tsv"
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    bad_index = 3  # data line 3: file line 4 with a header, 3 without
    label_pos = -1 if task in ("rte", "mnli", "sst2") else 1
    lines[bad_index][label_pos] = bad_label
    write_lines(path, lines)
    with pytest.raises(GlueDataError) as info:
        read_glue_tsv(path, task)
    message = str(info.value)
    assert f"{path}, line {bad_index + 1}" in message
    assert f"label '{bad_label}'" in message
    assert expected in message


@pytest.mark.parametrize("score", ["five", "7.5", "nan", ""])
def test_bad_stsb_score(tmp_path, score):
    row = ["0", "g", "f", "y", "0000", "none", "none", "a", "b", score]
    path = write_lines(tmp_path / "dev.tsv", [HEADERS["stsb"], row])
    with pytest.raises(GlueDataError) as info:
        read_glue_tsv(path, "stsb")
    message = str(info.value)
    assert f"{path}, line 2: score '{score}' in column 'score'" in message
    assert "expected a number between 0.0 and 5.0" in message


# ---------------------------------------------------------------------------
# Online loading (the hub is replaced by a fake `datasets` module in propetl_adapters.data.glue)
# ---------------------------------------------------------------------------


def fake_datasets(monkeypatch, load_dataset) -> list[tuple]:
    calls: list[tuple] = []

    def recording_load_dataset(*args):
        calls.append(args)
        return load_dataset(*args)

    monkeypatch.setattr(glue_module, "datasets", types.SimpleNamespace(load_dataset=recording_load_dataset))
    return calls


def test_load_glue_online_wraps_failures_with_glue_dir_hint(monkeypatch):
    def offline(*args):
        raise ConnectionError("Couldn't reach 'glue' on the Hub")

    fake_datasets(monkeypatch, offline)
    with pytest.raises(GlueDataError) as info:
        load_glue_online("rte")
    message = str(info.value)
    assert "--glue_dir" in message and "RTE/train.tsv" in message and "RTE/dev.tsv" in message
    assert "ConnectionError" in message
    assert isinstance(info.value.__cause__, ConnectionError)


def test_load_glue_online_converts_hf_rows(monkeypatch):
    def example(i):
        return {"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3, "idx": i}

    hub = {
        "train": [example(0), example(1)],
        "validation_matched": [example(2)],
        "validation_mismatched": [example(3)],
        "test_matched": [],
    }
    calls = fake_datasets(monkeypatch, lambda *args: hub)
    loaded = load_glue_online("mnli")
    assert calls == [("glue", "mnli")]
    assert loaded == {
        "train": [
            {"sentence1": "p0", "sentence2": "h0", "label": 0},
            {"sentence1": "p1", "sentence2": "h1", "label": 1},
        ],
        "validation": [{"sentence1": "p2", "sentence2": "h2", "label": 2}],
        "validation_mismatched": [{"sentence1": "p3", "sentence2": "h3", "label": 0}],
    }


def test_load_glue_online_single_sentence_regression_labels(monkeypatch):
    hub = {
        "train": [{"sentence1": "a", "sentence2": "b", "label": 3.2}],
        "validation": [{"sentence1": "c", "sentence2": "d", "label": 4}],
    }
    fake_datasets(monkeypatch, lambda *args: hub)
    loaded = load_glue_online("stsb")
    assert loaded["validation"] == [{"sentence1": "c", "sentence2": "d", "label": 4.0}]
    assert isinstance(loaded["validation"][0]["label"], float)


# ---------------------------------------------------------------------------
# Real GLUE files
# ---------------------------------------------------------------------------

REAL_COUNTS = {
    "cola": (8551, 1043),
    "sst2": (67349, 872),
    "mrpc": (3668, 408),
    "stsb": (5749, 1500),
    "rte": (2490, 277),
}


@pytest.mark.skipif(not REAL_GLUE_DIR.is_dir(), reason=f"{REAL_GLUE_DIR} not available")
@pytest.mark.parametrize("task", sorted(REAL_COUNTS))
def test_real_glue_files_row_counts(task):
    loaded = load_glue_dir(REAL_GLUE_DIR, task)
    assert (len(loaded["train"]), len(loaded["validation"])) == REAL_COUNTS[task]
    spec = get_task(task)
    for row in loaded["validation"]:
        assert row["sentence1"] and (row["sentence2"] is not None) == spec.is_pair
        if spec.is_regression:
            assert 0.0 <= row["label"] <= 5.0
        else:
            assert row["label"] in range(spec.num_labels)


# ---------------------------------------------------------------------------
# User CSV / TSV / JSON / JSON-lines files
# ---------------------------------------------------------------------------


def test_csv_files_with_quoting_and_inferred_labels(tmp_path):
    train = tmp_path / "train.csv"
    content = 'text,extra,label\n"hello, world",x,pos\nbye,y,neg\n"a ""quoted"" word",z,neutral\n'
    train.write_text(content, encoding="utf-8")
    dev = tmp_path / "dev.csv"
    dev.write_text("label,text\npos,fine\n", encoding="utf-8")
    splits, labels = load_text_files({"train": train, "validation": dev}, ["text"])
    assert labels == ["neg", "neutral", "pos"]
    assert splits["train"] == [
        {"sentence1": "hello, world", "sentence2": None, "label": 2},
        {"sentence1": "bye", "sentence2": None, "label": 0},
        {"sentence1": 'a "quoted" word', "sentence2": None, "label": 1},
    ]
    assert splits["validation"] == [{"sentence1": "fine", "sentence2": None, "label": 2}]


def test_json_array_jsonl_and_tsv_pairs(tmp_path):
    train = tmp_path / "train.json"
    train.write_text(json.dumps([{"a": "x1", "b": "y1", "y": 1}, {"a": "x2", "b": "y2", "y": 0}]), encoding="utf-8")
    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"a": "x3", "b": "y3", "y": 1}\n\n{"a": "x4", "b": "y4", "y": "0"}\n', encoding="utf-8")
    test = tmp_path / "test.tsv"
    test.write_text('a\tb\ty\n"x5\ty5\t1\n', encoding="utf-8")
    splits, labels = load_text_files({"train": train, "validation": dev, "test": test}, ["a", "b"], "y")
    assert labels == ["0", "1"]
    assert splits["validation"] == [
        {"sentence1": "x3", "sentence2": "y3", "label": 1},
        {"sentence1": "x4", "sentence2": "y4", "label": 0},
    ]
    assert splits["test"] == [{"sentence1": '"x5', "sentence2": "y5", "label": 1}]


def test_json_file_holding_json_lines(tmp_path):
    train = tmp_path / "train.json"
    train.write_text('{"t": "a", "label": 2.5}\n{"t": "b", "label": "1"}\n', encoding="utf-8")
    splits, labels = load_text_files({"train": train}, ["t"], is_regression=True)
    assert labels is None
    assert [row["label"] for row in splits["train"]] == [2.5, 1.0]


def test_text_file_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(GlueDataError, match=r"nope\.csv: file not found"):
        load_text_files({"train": tmp_path / "nope.csv"}, ["text"])
    other = tmp_path / "train.parquet"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(GlueDataError, match=r"unsupported file type '\.parquet'; expected one of \['\.csv'"):
        load_text_files({"train": other}, ["text"])


@pytest.mark.parametrize(
    "name, content",
    [("train.csv", ""), ("train.jsonl", "\n\n"), ("train.csv", "text,label\n"), ("train.json", "[]")],
)
def test_text_file_empty(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GlueDataError) as info:
        load_text_files({"train": path}, ["text"])
    assert str(path) in str(info.value)
    assert "empty" in str(info.value) or "no data rows" in str(info.value)
    assert "['text', 'label']" in str(info.value)


def test_text_file_missing_column(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("sentence,label\nhi,1\n", encoding="utf-8")
    with pytest.raises(GlueDataError) as info:
        load_text_files({"train": train}, ["text"])
    message = str(info.value)
    assert str(train) in message and "missing column(s) ['text']" in message
    assert "expected ['text', 'label']" in message and "found header ['sentence', 'label']" in message

    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text('{"text": "a", "label": 1}\n{"text": "b"}\n', encoding="utf-8")
    expected = r"train\.jsonl, line 2: missing column\(s\) \['label'\]; expected \['text', 'label'\], found \['text'\]"
    with pytest.raises(GlueDataError, match=expected):
        load_text_files({"train": jsonl}, ["text"])


def test_text_file_label_not_in_train_labels(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\na,pos\nb,neg\n", encoding="utf-8")
    dev = tmp_path / "dev.csv"
    dev.write_text("text,label\nc,pos\nd,neutral\n", encoding="utf-8")
    with pytest.raises(GlueDataError) as info:
        load_text_files({"train": train, "validation": dev}, ["text"])
    message = str(info.value)
    assert f"{dev}, line 3" in message and "label 'neutral'" in message and "['neg', 'pos']" in message


def test_text_file_bad_values(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\na,1.5\nb,high\n", encoding="utf-8")
    not_a_number = r"line 3: label 'high' in column 'label' is not valid; expected a finite number"
    with pytest.raises(GlueDataError, match=not_a_number):
        load_text_files({"train": train}, ["text"], is_regression=True)
    train.write_text("text,label\na,1\nb\n", encoding="utf-8")
    with pytest.raises(GlueDataError, match=r"line 3: found 1 fields, expected 2"):
        load_text_files({"train": train}, ["text"])
    train.write_text("text,label\na,1,extra\n", encoding="utf-8")
    with pytest.raises(GlueDataError, match=r"line 2: found 3 fields, expected 2"):
        load_text_files({"train": train}, ["text"])
    train.write_text("text,label\na,\n", encoding="utf-8")
    with pytest.raises(GlueDataError, match=r"line 2: empty value in label column 'label'"):
        load_text_files({"train": train}, ["text"])
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text('{"text": 3, "label": 1}\n', encoding="utf-8")
    with pytest.raises(GlueDataError, match=r"line 1: column 'text' has 3; expected a string"):
        load_text_files({"train": jsonl}, ["text"])
    jsonl.write_text('{"text": "a", "label": 1}\n{"text": \n', encoding="utf-8")
    with pytest.raises(GlueDataError, match=r"train\.jsonl, line 2: invalid JSON"):
        load_text_files({"train": jsonl}, ["text"])
    as_object = tmp_path / "train.json"
    as_object.write_text('{"data": []}', encoding="utf-8")
    with pytest.raises(GlueDataError, match=r"found a JSON dict; expected an array of objects or JSON lines"):
        load_text_files({"train": as_object}, ["text"])


def test_text_file_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="'train' file is required"):
        load_text_files({"validation": tmp_path / "dev.csv"}, ["text"])
    with pytest.raises(ValueError, match="one or two text columns"):
        load_text_files({"train": tmp_path / "train.csv"}, ["a", "b", "c"])


@pytest.mark.parametrize("name", ["train.csv", "train.tsv", "train.jsonl"])
def test_text_file_with_bytes_that_are_not_utf8_names_the_file_and_line(tmp_path, name):
    path = tmp_path / name
    sep = b"\t" if name.endswith(".tsv") else b","
    content = b"text" + sep + b"label\na" + sep + b"1\n\xff\xfe" + sep + b"0\n"
    if name.endswith(".jsonl"):
        content = b'{"text": "a", "label": 1}\n{"text": "\xff", "label": 0}\n'
    path.write_bytes(content)
    with pytest.raises(GlueDataError, match=rf"{name}, line \d: not UTF-8 text \(byte 0xff at offset \d+\)"):
        load_text_files({"train": path}, ["text"])
