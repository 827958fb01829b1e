# CPU and wall time inside the SQLite write lock per submit, P processes on one file (or SEP=1: a file each).
# Usage: python hold.py PROCESSES SUBMITS_EACH   (PYTHONPATH at the checkout to measure)
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

import queuelab
from queuelab.store import write_lock as wl


def run(path, n, out):
    held = []
    waits = []
    cpu = []
    orig_enter, orig_exit = wl.WriteLock.__enter__, wl.WriteLock.__exit__
    st = {}

    def enter(self):
        t = time.perf_counter()
        orig_enter(self)
        st["t"] = time.perf_counter()
        st["c"] = time.thread_time()
        waits.append(st["t"] - t)

    def exit_(self, *a):
        r = orig_exit(self, *a)
        held.append(time.perf_counter() - st["t"])
        cpu.append(time.thread_time() - st["c"])
        return r

    wl.WriteLock.__enter__, wl.WriteLock.__exit__ = enter, exit_
    q = queuelab.Queue(f"sqlite:///{path}")
    q.task(name="noop")(lambda **kw: None)
    for i in range(200):
        q.submit("noop", {"i": i})
    held.clear()
    waits.clear()
    cpu.clear()
    t = time.perf_counter()
    for i in range(n):
        q.submit("noop", {"i": i})
    w = time.perf_counter() - t
    out.put(
        (
            n / w,
            statistics.median(held) * 1e6,
            statistics.mean(held) * 1e6,
            statistics.median(waits) * 1e6,
            statistics.mean(waits) * 1e6,
            sum(held) / w,
            statistics.median(cpu) * 1e6,
            statistics.mean(cpu) * 1e6,
        )
    )


if __name__ == "__main__":
    mp.set_start_method("spawn")
    P = int(sys.argv[1])
    n = int(sys.argv[2])
    d = tempfile.mkdtemp()
    path = f"{d}/q.db"
    q = queuelab.Queue(f"sqlite:///{path}")
    q.submit("x", {}) if False else None
    out = mp.Queue()
    ps = [mp.Process(target=run, args=((path + str(i)) if os.environ.get("SEP") else path, n, out)) for i in range(P)]
    t = time.perf_counter()
    for p in ps:
        p.start()
    res = [out.get() for _ in ps]
    for p in ps:
        p.join()
    for r in res:
        rate, held_med, held_mean, wait_med, wait_mean, busy, cpu_med, cpu_mean = r
        print(
            f"rate {rate:.0f} held med {held_med:.0f} mean {held_mean:.0f} wait med {wait_med:.0f} "
            f"mean {wait_mean:.0f} busy {busy:.2f} cpu med {cpu_med:.0f} mean {cpu_mean:.0f}"
        )
    print("total", sum(r[0] for r in res))
