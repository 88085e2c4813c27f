"""Score per stored byte: ProPETL against the PETL methods users pick today, on one protocol (issue 16, part 2).

Every method trains on all-MiniLM-L6-v2 and real GLUE (STS-B, then MRPC) with the protocol of docs/results.md:
SPEC §3 splits, batch 32, warm-up 0.1, weight decay 0.1, linear schedule, bf16 autocast on the CPU, evaluation
every epoch and the best epoch kept by validation, the same one-layer classification head (its bytes reported
apart), the same seeds, and a small learning-rate grid per method; the lr is chosen on validation and the
test score is reported. AdapterHub and ProPETL methods run through run_glue.py's ``run``; PEFT methods
through ``peft_runner`` (the same arguments, data, head and optimizer; only the PEFT layers differ). Each
method's bytes are measured on disk in its own saving format (docs/frontier.md says which).

    # what would run, and what is already done
    python -m benchmarks.frontier --out_dir outputs/frontier --dry_run
    # a smoke check: every method, one lr, three steps on a few examples of STS-B (scores mean nothing)
    python -m benchmarks.frontier --out_dir /tmp/frontier_smoke --tasks stsb --seeds 42 --max_steps 3 \\
        --max_train_samples 96 --max_eval_samples 64 \\
        --lr_grid 1e-3 peft_vera_r1024=2e-2 peft_vblora=1e-2 peft_fourierft_n1000=5e-2
    # the full frontier: the grid on seed 42, seeds 43 and 44 at the lr chosen on seed 42's validation
    # (130 runs; about 21 h on this project's two cores as two streams of disjoint --methods: docs/frontier.md)
    OMP_NUM_THREADS=1 python -m benchmarks.frontier --out_dir outputs/frontier --tasks stsb mrpc \\
        --seeds 42 43 44 --search_seeds 42
    # the same with a token-mean head for every method (prefix methods learn little from [CLS]: docs/results.md)
    python -m benchmarks.frontier --out_dir outputs/frontier --pooling mean ...

One JSON record per run goes to ``<out_dir>/records/<run id>.json`` (written atomically; a run with a record
is skipped when the command is run again, so an interrupted frontier resumes), the trained folders to
``<out_dir>/runs/``, the table to ``<out_dir>/summary.md`` and one figure per task (test score against
bytes on disk, log x, Pareto frontier drawn; needs matplotlib) to ``<out_dir>/frontier_<task>.png``.
"""
