"""Benchmarks: each module measures one part against a baseline measured in the same run.

Run one with ``python -m bench.NAME``, all with ``python -m bench`` (``make bench``); results
and the machine they ran on are written down in ``docs/benchmarks.md``.
"""
