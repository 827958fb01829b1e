"""The benchmark suite, ``python -m queuelab.bench`` (``--help`` lists the flags).

Each scenario runs on SQLite and, given a URL, PostgreSQL, with slot threads and worker
processes; every throughput is shown beside the raw SQL floor measured in the same run
(:mod:`queuelab.bench.floor`) and as a fraction of it. Modules: ``scenarios`` (the
registry), ``core`` (enqueue, drain, latency, limits), ``growth``, ``fairness``, ``crash``,
``api``, ``floor``; ``report``, ``plots`` and ``machine`` write what a run found.
"""

from queuelab.bench.results import BenchError, Result, Series

__all__ = ["BenchError", "Result", "Series"]
