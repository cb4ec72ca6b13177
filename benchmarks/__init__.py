"""judgekit's benchmarks: speed, bias controls and cascades measured on real data.

Each script runs from the repository root (``python benchmarks/throughput.py``) or as a module
(``python -m benchmarks.throughput``); ``tests/test_benchmarks.py`` imports every one of them so
that a change to judgekit's API breaks CI rather than the next benchmark run.
"""
