#!/usr/bin/env python
"""Train and evaluate one PETL method (or full fine-tuning) on a GLUE task or on own text files.

    python run_glue.py --model_name_or_path roberta-base --task_name rte --glue_dir data/glue \
        --train_adapter --adapter_config proadapter --density 0.5 --mask_learning_rate 3e-3 \
        --learning_rate 1e-4 --weight_decay 0.1 --paper_epochs --output_dir results/rte

    python run_glue.py args.json      # the same arguments as one JSON object

All flags: ``python run_glue.py --help`` and docs/run_glue.md. The work is done by
``propetl_adapters.experiments.glue.run``.
"""

import sys

from propetl_adapters.experiments.glue import main

if __name__ == "__main__":
    sys.exit(main())
