"""The throughput benchmark (``benchmarks/throughput.py``), one module per job.

``spec`` (what a run measures, as one typed value) -> ``workloads`` (SummEval and PandaLM through
judgekit's set loaders) -> ``worker`` (one system in its own process, ``systems/``: one module
per system) with ``machine`` (memory, CPU and busy-machine probes) and ``profiling`` ->
``orchestrate`` (every system, one after the other, and the ratios) -> ``report`` (the tables).
"""
