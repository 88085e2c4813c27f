#!/usr/bin/env python
"""The same as ``python run_multitask_encoder.py`` (the runner at the repository root), kept at this path for
the scripts and documents that call it."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from propetl_adapters.experiments.multitask_encoder import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
