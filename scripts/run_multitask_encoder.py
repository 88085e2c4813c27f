#!/usr/bin/env python
"""Multi-task GLUE on an encoder with one head per task (hybrid ProPETL masks, a shared plain adapter, or
full fine-tuning). ``--help`` lists the flags; the work is done by
``propetl_adapters.glue.multitask_experiment.run``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from propetl_adapters.glue.multitask_experiment import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
