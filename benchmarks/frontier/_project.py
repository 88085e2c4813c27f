"""Every project internal the frontier harness uses, imported in one place (so a package move is repointed here)."""

from propetl_adapters.atomic import atomic_write_json, atomic_write_text  # noqa: F401
from propetl_adapters.glue.experiment import (  # noqa: F401
    ExperimentError, _limit, _prepare_training_args, head_bytes, load_adapter_model, load_task_data,
    parse_arguments, run, tokenize_split)
from propetl_adapters.glue.metrics import mean_and_std  # noqa: F401
from propetl_adapters.glue.tasks import GlueDataError  # noqa: F401
from propetl_adapters.serialization import save_compact  # noqa: F401
from propetl_adapters.storage import HEAD_FILES, bits_by_width, bls_bits, storage_report  # noqa: F401
from propetl_adapters.training import NO_DECAY_TYPES  # noqa: F401
