#!/usr/bin/env python
"""Train T5 with one PETL module (or full fine-tuning) on text-to-text GLUE (multi-task), XSum or WMT16 Ro-En.

    python run_seq2seq.py configs/glue/propetl_adapter_reduction12.json 42
    python run_seq2seq.py --model_name_or_path t5-base --tasks rte mrpc --adapter_config proadapter \
        --max_steps 20000 --eval_steps 2000 --output_dir outputs/t5

All flags: ``python run_seq2seq.py --help`` and docs/run_seq2seq.md. The work is done by
``propetl_adapters.experiments.seq2seq.run``.
"""

import sys

from propetl_adapters.experiments.seq2seq import main

if __name__ == "__main__":
    sys.exit(main())
