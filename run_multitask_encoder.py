#!/usr/bin/env python
"""Multi-task GLUE on an encoder with one head per task (hybrid ProPETL masks, a shared plain adapter, or
full fine-tuning).

    python run_multitask_encoder.py --model_name_or_path MODEL --glue_dir GLUE --tasks rte mrpc stsb \
        --adapter_config proadapter --mask_learning_rate 3e-3 --learning_rate 3e-4 --max_steps 2000 \
        --eval_steps 500 --output_dir outputs/multitask/proadapter

``--help`` lists the flags; the work is done by ``propetl_adapters.experiments.multitask_encoder.run``.
"""

import sys

from propetl_adapters.experiments.multitask_encoder import main

if __name__ == "__main__":
    sys.exit(main())
