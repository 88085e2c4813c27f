"""Encoder-decoder experiments: text-to-text tasks, their data and ``run_seq2seq.py``."""
