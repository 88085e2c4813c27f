"""GLUE data, split protocol and metrics for the ProPETL experiments.

This subpackage only depends on the standard library, numpy, scipy and
scikit-learn (``datasets`` is imported lazily for online loading), so it can be
used without the model code.
"""

from .metrics import (
    accuracy,
    compute_glue_metrics,
    f1,
    main_metric,
    matthews_corrcoef,
    paper_average,
    pearson,
    spearmanr,
)
from .splits import DEFAULT_SPLIT_SEED, LARGE_TASK_VALIDATION_SIZE, paper_splits
from .tasks import (
    GLUE_TASKS,
    TASK_NAMES,
    GlueDataError,
    GlueTask,
    get_task,
    load_glue_dir,
    load_glue_online,
    read_glue_tsv,
)
from .text_files import load_text_files

__all__ = [
    "DEFAULT_SPLIT_SEED",
    "GLUE_TASKS",
    "LARGE_TASK_VALIDATION_SIZE",
    "TASK_NAMES",
    "GlueDataError",
    "GlueTask",
    "accuracy",
    "compute_glue_metrics",
    "f1",
    "get_task",
    "load_glue_dir",
    "load_glue_online",
    "load_text_files",
    "main_metric",
    "matthews_corrcoef",
    "paper_average",
    "paper_splits",
    "pearson",
    "read_glue_tsv",
    "spearmanr",
]
