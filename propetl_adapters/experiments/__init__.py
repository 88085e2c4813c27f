"""The paper's experiments, built on the library: one run folder per run (``run_folder``), single-task GLUE
(``glue``, ``run_glue.py``), multi-task GLUE on an encoder (``multitask_encoder``, ``run_multitask_encoder.py``)
and T5 text-to-text runs (``seq2seq``, ``run_seq2seq.py``), with what they share (``common``, ``multitask``).

The library never imports this package; ``tests/test_layers.py`` checks it.
"""
