"""The runner fixtures (tiny random BERT, GLUE TSV folder) for the scripts that start real runs."""

from tests.experiments.conftest import glue_dir, tiny_bert_dir  # noqa: F401  (fixtures)
