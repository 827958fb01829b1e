"""Old against new in one sitting: submit-to-start p50 (thread, process), the q.wait round
trip and its part from the job's end, and q.get 20 ms after the last, on both databases.

Run once per checkout, alternating: ``PYTHONPATH=<checkout> python ab_latency.py <checkout>``
with QUEUELAB_TEST_POSTGRES_URL set (a worktree of the old commit beside this one).
"""

import json
import os
import statistics
import sys
import time


def get_after_idle(q, n=100):
    job = q.submit("simulate")
    out = []
    for _ in range(n):
        time.sleep(0.02)
        began = time.perf_counter()
        q.get(job.id)
        out.append(1000 * (time.perf_counter() - began))
    return out


def main():
    from queuelab.bench.core import submit_to_start, wait_round_trips
    from queuelab.bench.harness import fresh_queue

    url = os.environ["QUEUELAB_TEST_POSTGRES_URL"]
    res = {}
    for kind in ("postgresql", "sqlite"):
        k = kind[:2]
        for mode in ("thread", "process"):
            with fresh_queue(kind, url) as q:
                res[f"{k} start p50 {mode[:4]}"] = round(statistics.median(submit_to_start(q, mode, 200, 25.0)), 2)
        with fresh_queue(kind, url) as q:
            trips, woken = wait_round_trips(q, "thread", 200)
            res[f"{k} wait trip"] = round(statistics.median(trips), 2)
            res[f"{k} end->wait"] = round(statistics.median(woken), 2)
            res[f"{k} get idle"] = round(statistics.median(get_after_idle(q)), 2)
    print(sys.argv[1].split("/")[-1], json.dumps(res))


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    main()
