"""The data of the ProPETL experiments: GLUE tasks and their readers (``glue``), the paper's split protocol
(``splits``), the metrics (``metrics``), own CSV/JSON files (``text_files``) and the text-to-text tasks of T5
with their data (``text_tasks``, ``text_data``).

Nothing here imports the model code: the data layer sits below the library and the experiments.
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
from .glue import (
    GLUE_TASKS,
    TASK_NAMES,
    GlueDataError,
    GlueTask,
    get_task,
    load_glue_dir,
    load_glue_online,
    read_glue_tsv,
    tokenize_split,
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
    "tokenize_split",
]
