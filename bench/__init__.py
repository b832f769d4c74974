"""garde's benchmarks: one module per part, each runnable as ``python -m bench.<part>``.

Results (with the machine and the baseline measured in the same run) go to
``docs/benchmarks.md``. Benchmarks target loopback only and stop by themselves.
"""
