"""Old against new in one sitting: PostgreSQL drains (1, 2, 8 worker processes, 4 slot
threads, and prefetch 0) and the q.wait round trip.

Run once per checkout, alternating: ``PYTHONPATH=<checkout> python ab_drain.py <checkout>``
with QUEUELAB_TEST_POSTGRES_URL set (a worktree of the old commit beside this one).
"""

import json
import os
import statistics
import sys

RUNS = (
    ("1 proc", 1, "process", {}, 20000),
    ("2 procs", 2, "process", {}, 20000),
    ("4 threads", 4, "thread", {}, 20000),
    ("8 procs", 8, "process", {}, 20000),
    ("1 proc prefetch 0", 1, "process", {"prefetch": 0}, 3000),
    ("2 procs prefetch 0", 2, "process", {"prefetch": 0}, 3000),
)


def main():
    from queuelab.bench.core import drain_rate, wait_round_trips
    from queuelab.bench.harness import fresh_queue

    url = os.environ["QUEUELAB_TEST_POSTGRES_URL"]
    out = {}
    for label, workers, mode, options, n in RUNS:
        with fresh_queue("postgresql", url, **options) as q:
            out[label] = round(drain_rate(q, n, workers, mode))
    with fresh_queue("postgresql", url) as q:
        trips, woken = wait_round_trips(q, "thread", 200)
    out["wait trip p50 ms"] = round(statistics.median(trips), 2)
    out["end->wait p50 ms"] = round(statistics.median(woken), 2)
    print(sys.argv[1], json.dumps(out))


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    main()
