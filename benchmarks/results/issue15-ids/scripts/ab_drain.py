"""A/B on the new code: random v4 job ids against v7, PG (or SQLite) drain as the peers scenario runs it."""

import os
import sys
import tempfile
import time
from pathlib import Path

import queuelab.submission as submission
from queuelab.bench.harness import fresh_queue, running_pool
from queuelab.bench.peers.body import drain_rate, wait_for_lines
from queuelab.bench.peers.queuelab_app import append_line
from queuelab.bench.peers.scenario import TASK
from queuelab.submission import Submission

_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def v4_ids(count):
    digits = os.urandom(16 * count).hex()
    return [
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
        for h in (digits[s : s + 32] for s in range(0, 32 * count, 32))
    ]


V7 = submission.new_ids
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def drain(kind, ids, n, workers, mode, work):
    submission.new_ids = ids
    path = work / f"d-{time.monotonic_ns()}.txt"
    with fresh_queue(kind, PG) as q:
        q.task(name=TASK)(append_line.fn)
        with running_pool(q, workers, mode):
            q.submit_many(Submission(task=TASK, payload={"path": str(path)}) for _ in range(n))
            wait_for_lines(path, n, 300)
    return drain_rate(path, n)


if __name__ == "__main__":
    kind, rounds, n, workers, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    work = Path(tempfile.mkdtemp())
    res = {"v4": [], "v7": []}
    for r in range(rounds):
        for name in ["v4", "v7"] if r % 2 == 0 else ["v7", "v4"]:
            res[name].append(drain(kind, v4_ids if name == "v4" else V7, n, workers, mode, work))
            print(r, name, round(res[name][-1]), flush=True)
    for name, v in res.items():
        v = sorted(v)
        print(kind, workers, mode, name, "median", round(v[len(v) // 2]), [round(x) for x in v])
