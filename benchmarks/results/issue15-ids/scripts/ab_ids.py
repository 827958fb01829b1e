"""A/B: random v4 job ids against time-ordered v7, same code otherwise (new_ids swapped)."""

import os
import sys
import time

import queuelab.submission as submission
from queuelab.bench.harness import fresh_queue
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


def one(kind, ids, history, singles, bulks):
    submission.new_ids = ids
    out = {}
    with fresh_queue(kind, PG) as q:
        q.task(name="append_line")(lambda line="": None)
        subs = [Submission(task="append_line", payload={"line": "x"}) for _ in range(1000)]
        for _ in range(history // 1000):
            q.submit_many(subs)
        if singles:
            t = time.perf_counter()
            c = time.process_time()
            for _ in range(singles):
                q.submit("append_line", {"line": "x"})
            out["single/s"] = singles / (time.perf_counter() - t)
            out["single cpu µs"] = (time.process_time() - c) / singles * 1e6
        t = time.perf_counter()
        for _ in range(bulks):
            q.submit_many(subs)
        out["bulk/s"] = bulks * 1000 / (time.perf_counter() - t)
    return out


if __name__ == "__main__":
    kind = sys.argv[1]
    rounds = int(sys.argv[2])
    history = int(sys.argv[3])
    singles = 3000 if kind == "sqlite" else 0
    res = {"v4": [], "v7": []}
    for r in range(rounds):
        order = ["v4", "v7"] if r % 2 == 0 else ["v7", "v4"]
        for name in order:
            res[name].append(one(kind, v4_ids if name == "v4" else V7, history, singles, 20))
            print(r, name, {k: round(v) for k, v in res[name][-1].items()}, flush=True)
    for name, rows in res.items():
        for key in rows[0]:
            vals = sorted(x[key] for x in rows)
            print(kind, name, key, "median", round(vals[len(vals) // 2]), "all", [round(v) for v in vals])
