#!/usr/bin/env python
"""Print (and optionally write) Table 1 from a results tree of run_glue.py runs.

    python scripts/collect_results.py outputs/glue --output outputs/table1.md --paper

Same as ``propetl-table`` (``python -m propetl_adapters.reports.table``); see that module for the details.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from propetl_adapters.reports.table import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
