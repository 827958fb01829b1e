# P producer processes submitting one job per call to one SQLite file: jobs/s, CPU per submit.
# DROP=index,index drops indexes of a copy first (an experiment, not a supported schema);
# START=spawn|fork; KEEP=1 keeps the parent's queue open.  Usage: python producers.py PROCESSES SUBMITS_EACH
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time

import queuelab


def run(path, n, bar):
    q = queuelab.Queue(f"sqlite:///{path}")
    q.task(name="noop")(lambda **kw: None)
    for i in range(200):
        q.submit("noop", {"i": i})
    bar.wait()
    for i in range(n):
        q.submit("noop", {"i": i})


if __name__ == "__main__":
    mp.set_start_method(os.environ.get("START", "fork"))
    P = int(sys.argv[1])
    n = int(sys.argv[2])
    d = tempfile.mkdtemp()
    path = f"{d}/q.db"
    q0 = queuelab.Queue(f"sqlite:///{path}")
    q0.task(name="noop")(lambda **kw: None)
    q0.submit("noop", {})
    (None if os.environ.get("KEEP") else q0.close())
    import sqlite3

    c = sqlite3.connect(path)
    for ix in filter(None, os.environ.get("DROP", "").split(",")):
        c.execute(f"DROP INDEX {ix}")
    c.commit()
    c.close()
    bar = mp.Barrier(P + 1)
    ps = [mp.Process(target=run, args=(path, n, bar)) for i in range(P)]
    for p in ps:
        p.start()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    bar.wait()
    t = time.perf_counter()
    for p in ps:
        p.join()
    w = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = r1.ru_utime + r1.ru_stime
    print(
        f"P={P} rate {P * n / w:.0f}/s  cpu/submit {cpu / (P * (n + 200)) * 1e6:.0f}us (incl startup)  "
        f"cpu util {cpu / w:.2f} cores  vcsw {r1.ru_nvcsw} ivcsw {r1.ru_nivcsw}"
    )
