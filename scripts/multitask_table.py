#!/usr/bin/env python
"""The multi-task comparison table of docs/results.md from result folders; see
``propetl_adapters.reports.multitask_table`` for the columns.

    python scripts/multitask_table.py --multitask outputs/evidence/multitask/proadapter_hybrid/seed42 \
        outputs/evidence/multitask/seq_bn_shared/seed42 \
        --single rte=outputs/evidence/rte/proadapter/seed42 mrpc=... --single_label "single-task ProAdapter"
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from propetl_adapters.reports.multitask_table import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
