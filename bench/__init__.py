"""Benchmarks: one module per part, each runnable as ``python -m bench.NAME``."""
