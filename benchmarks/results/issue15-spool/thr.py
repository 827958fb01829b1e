# N producer threads, one job a call, one SQLite file: jobs/s, CPU a submit, rows a shared write.
# Usage: python thr.py THREADS SUBMITS
import collections
import sys
import tempfile
import threading
import time

import queuelab

d = tempfile.mkdtemp()
q = queuelab.Queue(f"sqlite:///{d}/q.db")
q.task(name="noop")(lambda **kw: None)
T = int(sys.argv[1])
n = int(sys.argv[2])
for i in range(200):
    q.submit("noop", {"i": i})
g = q._runtime.jobs.group
sizes = collections.Counter()
orig = g._write
tw = []


def w(rows, now):
    sizes[len(rows)] += 1
    t = time.thread_time()
    r = orig(rows, now)
    tw.append(time.thread_time() - t)
    return r


g._write = w
bar = threading.Barrier(T + 1)


def run():
    q.submit("noop", {"i": -1})
    bar.wait()
    for i in range(n // T):
        q.submit("noop", {"i": i})


ts = [threading.Thread(target=run) for _ in range(T)]
for t in ts:
    t.start()
sizes.clear()
tw.clear()
bar.wait()
t0 = time.perf_counter()
c0 = time.process_time()
for t in ts:
    t.join()
w_ = time.perf_counter() - t0
c = time.process_time() - c0
writes = sum(sizes.values())
print(f"T={T} {n / w_:.0f}/s cpu/submit {c / n * 1e6:.0f}us writes {writes} rows/write {n / writes:.2f}")
print(
    f"  sizes {sorted(sizes.items())[:6]} write cpu {sum(tw) / len(tw) * 1e6:.0f}us/write,",
    f"{sum(tw) / n * 1e6:.0f}us/row",
)
