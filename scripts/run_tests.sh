#!/usr/bin/env bash
# Sets the project up, then runs the whole test suite (no network needed beyond PyPI for the install).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 -m pytest tests
