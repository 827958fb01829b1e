"""The benchmark suite, ``python -m queuelab.bench`` (``--help`` lists the flags).

Each scenario runs on SQLite and, given a URL, PostgreSQL, with slot threads and worker
processes; every throughput is shown beside the raw SQL floor measured in the same run
(:mod:`queuelab.bench.floor`) and as a fraction of it. Modules: ``scenarios`` (the
registry), ``core`` (enqueue, drain, latency, limits), ``growth``, ``fairness``, ``crash``,
``api``, ``floor``; ``report``, ``plots`` and ``machine`` write what a run found.
"""

from queuelab.extras import BENCH, require

# Before any bench module imports them: a missing package names the extra to install.
require(BENCH, extra="bench", feature="queuelab.bench")

from queuelab.bench.results import BenchError, Result, Series  # noqa: E402

__all__ = ["BenchError", "Result", "Series"]
