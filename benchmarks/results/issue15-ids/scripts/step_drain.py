"""CPU per job of a one-slot Worker.step drain of pre-inserted SQLite jobs, v4 vs v7 ids."""

import os
import sys
import tempfile
import time

import queuelab.submission as submission
from queuelab import Queue, Submission
from queuelab.runtime.worker import Worker
from queuelab.testing import internals

_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def v4_ids(count):
    digits = os.urandom(16 * count).hex()
    return [
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
        for h in (digits[s : s + 32] for s in range(0, 32 * count, 32))
    ]


V7 = submission.new_ids


def one(ids, n, kind):
    submission.new_ids = ids
    d = tempfile.mkdtemp()
    url = f"sqlite:///{d}/q.db" if kind == "sqlite" else None
    q = Queue(url)
    q.task(name="noop")(lambda: None)
    t = time.process_time()
    for _i in range(0, n, 1000):
        q.submit_many([Submission(task="noop") for _ in range(1000)])
    ins = (time.process_time() - t) / n * 1e6
    w = Worker(internals(q), concurrency=1, prefetch=100)
    c = time.process_time()
    done = 0
    while done < n:
        done += len(w.step())
    w.flush()
    cpu = (time.process_time() - c) / n * 1e6
    q.close()
    return cpu, ins


if __name__ == "__main__":
    rounds, n = int(sys.argv[1]), int(sys.argv[2])
    res = {"v4": [], "v7": []}
    for r in range(rounds):
        for name in ["v4", "v7"] if r % 2 == 0 else ["v7", "v4"]:
            res[name].append(one(v4_ids if name == "v4" else V7, n, "sqlite"))
    for name, v in res.items():
        cpus = sorted(x[0] for x in v)
        ins = sorted(x[1] for x in v)
        print(
            name,
            "step drain cpu µs/job",
            round(cpus[len(cpus) // 2], 1),
            [round(x, 1) for x in cpus],
            "| insert cpu µs/row",
            round(ins[len(ins) // 2], 1),
            [round(x, 1) for x in ins],
        )
