"""Benchmarks of ProPETL against plain PETL (see run.py)."""
