#!/usr/bin/env bash
# The Table 1 pairs on all-MiniLM-L6-v2 at the paper's budget (20 epochs; SST-2 10 epochs on 10,000 rows;
# seeds 42 43 44), JOBS run_glue.py processes at a time, most useful runs first, until DEADLINE_S (issue 15).
# The protocol is scripts/evidence_minilm.sh's; the settings (TASKS, PAIRS, SEEDS, EPOCHS, OUTPUT_DIR, MODEL,
# GLUE_DIR, DEVICE, JOBS, THREADS, DEADLINE_S, COPY_TO, ARCHIVE, EXTRA_ARGS, DRY_RUN) are described in
# benchmarks/parallel_grid.py and by `bash scripts/gpu_table1.sh --help`. On a GPU machine: docs/gpu.md.
# A run folder with a DONE marker is skipped (the name is DONE_FILE of propetl_adapters/experiments/run_folder.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m benchmarks.parallel_grid "$@"
