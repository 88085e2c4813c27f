#!/usr/bin/env bash
# Sets the project up, then runs the whole test suite (no network needed beyond PyPI for the install).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The PEFT export tests need the optional peer library; only the test run installs it.
python3 -m pip install -q peft==0.21.2
python3 -m pytest tests
