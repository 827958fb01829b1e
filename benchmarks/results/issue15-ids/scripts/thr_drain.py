"""4-slot thread worker drain of pre-inserted SQLite jobs (lines appended to a file), v4 vs v7 ids."""

import os
import sys
import tempfile
import time
from pathlib import Path

import queuelab.submission as submission
from queuelab import Queue, Submission
from queuelab.bench.peers.body import drain_rate, wait_for_lines
from queuelab.bench.peers.queuelab_app import TASK, append_line

_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def v4_ids(count):
    digits = os.urandom(16 * count).hex()
    return [
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
        for h in (digits[s : s + 32] for s in range(0, 32 * count, 32))
    ]


V7 = submission.new_ids


def one(ids, n, pre):
    submission.new_ids = ids
    d = Path(tempfile.mkdtemp())
    path = d / "lines.txt"
    q = Queue(f"sqlite:///{d}/q.db")
    q.task(name=TASK)(append_line.fn)
    subs = [Submission(task=TASK, payload={"path": str(path)}) for _ in range(n)]
    if pre:
        q.submit_many(subs)
    c = time.process_time()
    with q.worker(4):
        if not pre:
            q.submit_many(subs)
        wait_for_lines(path, n, 300)
    cpu = (time.process_time() - c) / n * 1e6
    q.close()
    return drain_rate(path, n), cpu


if __name__ == "__main__":
    rounds, n, pre = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "pre"
    res = {"v4": [], "v7": []}
    for r in range(rounds):
        for name in ["v4", "v7"] if r % 2 == 0 else ["v7", "v4"]:
            res[name].append(one(v4_ids if name == "v4" else V7, n, pre))
    for name, v in res.items():
        rates = sorted(x[0] for x in v)
        cpus = sorted(x[1] for x in v)
        print(
            name,
            "pre" if pre else "overlap",
            "jobs/s median",
            round(rates[len(rates) // 2]),
            [round(x) for x in rates],
            "cpu µs/job",
            round(cpus[len(cpus) // 2], 1),
        )
