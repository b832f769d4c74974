"""Benchmarks: one module per part (``python -m bench.<part>``); ``python -m bench`` runs all."""
