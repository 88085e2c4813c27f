"""Every project internal the frontier harness uses, imported in one place (so a package move is repointed here)."""

from propetl_adapters.atomic import atomic_write_json, atomic_write_text  # noqa: F401
from propetl_adapters.data.glue import GlueDataError, get_task, tokenize_split  # noqa: F401
from propetl_adapters.data.metrics import mean_and_std  # noqa: F401
from propetl_adapters.experiments.common import (  # noqa: F401
    ExperimentError, head_bytes, load_adapter_model, versions)
from propetl_adapters.experiments.glue import (  # noqa: F401
    add_task_head, limit_rows, load_task_data, parse_arguments, prepare_training_args, run, strip_prefix, trainer_metrics)
from propetl_adapters.heads import POOLINGS  # noqa: F401
from propetl_adapters.mask_io import MASK_FILE_NAME, read_mask_file  # noqa: F401
from propetl_adapters.storage import HEAD_FILES, bits_by_width, bls_bits, folder_bytes, storage_report  # noqa: F401
from propetl_adapters.training import NO_DECAY_TYPES  # noqa: F401
