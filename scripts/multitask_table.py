#!/usr/bin/env python
"""The multi-task comparison table of docs/results.md from result folders; see
``propetl_adapters.reports.multitask_table`` for the columns.

    python scripts/multitask_table.py --multitask docs/runs/fixed/multitask/proadapter_hybrid \
        docs/runs/fixed/multitask/seq_bn_shared \
        --single rte=docs/runs/fixed/rte/proadapter mrpc=... --single_label "single-task ProAdapter"
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from propetl_adapters.reports.multitask_table import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
