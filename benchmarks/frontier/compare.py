"""Did a rerun reproduce? Pairs the records of two frontier folders by run id and tables what moved.

    python -m benchmarks.frontier.compare docs/runs/frontier_mrpc/records docs/runs/frontier_mrpc_amx/records

A seeded run repeats to the digit on one machine, but the same runs moved on another (MRPC, session 37: another
CPU, perhaps other package versions), so the table names each side's machine where its record has one.
"""

from __future__ import annotations

import argparse
import statistics
from typing import List, Optional, Sequence

from ._project import atomic_write_text
from .runner import read_records


def machine_label(record: dict) -> str:
    found = record.get("versions", {}).get("machine")
    if not found:
        return "not recorded"
    native = "+".join(found.get("bf16_instructions") or []) or "no native bf16"
    return found.get("cuda") or f"{found.get('cpu', '?')} ({native}, {found.get('torch_threads', '?')} threads)"


def _int8(record: dict) -> Optional[float]:
    return record.get("compact_test_scores", {}).get("compact_int8")


def paired_runs(first: Sequence[dict], second: Sequence[dict]) -> List[dict]:
    """One row per run id found in both folders, in run-id order."""
    by_id = {record["run_id"]: record for record in second}
    rows = []
    for a in sorted(first, key=lambda record: record["run_id"]):
        b = by_id.get(a["run_id"])
        if b is None:
            continue
        rows.append({"run_id": a["run_id"], "validation": (a["validation_score"], b["validation_score"]),
                     "test": (a["test_score"], b["test_score"]), "int8": (_int8(a), _int8(b)),
                     "machines": (machine_label(a), machine_label(b))})
    return rows


def _pair(values) -> str:
    first, second = values
    if first is None or second is None:
        return "–"
    return f"{first:.2f} → {second:.2f} ({second - first:+.2f})"


def markdown(rows: Sequence[dict], first_dir: str, second_dir: str) -> str:
    lines = [f"Records in both `{first_dir}` (first) and `{second_dir}` (second): {len(rows)}.", ""]
    if not rows:
        return "\n".join(lines) + "\n"
    machines = sorted({row["machines"] for row in rows})
    lines += [f"- machines: first {a}; second {b}" for a, b in machines] + [""]
    lines += ["| run | validation | test | int8 export test |", "|---|---:|---:|---:|"]
    lines += [f"| {row['run_id']} | {_pair(row['validation'])} | {_pair(row['test'])} | {_pair(row['int8'])} |"
              for row in rows]
    moves = [abs(row["test"][1] - row["test"][0]) for row in rows]
    same = sum(move == 0 for move in moves)
    lines += ["", f"Test score identical in {same} of {len(rows)} pairs; |change| mean {statistics.mean(moves):.2f}, "
              f"largest {max(moves):.2f}."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", help="a records folder (the earlier runs)")
    parser.add_argument("second", help="another records folder (the reruns)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    text = markdown(paired_runs(read_records(args.first), read_records(args.second)), args.first, args.second)
    print(text, end="")
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
