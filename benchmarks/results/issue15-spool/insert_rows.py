# CPU of JobStore.insert for a batch of K rows (the rows built first), SQLite.
# Usage: python insert_rows.py K CALLS [prof]
import cProfile
import pstats
import sys
import tempfile
import time

import queuelab
from queuelab.submission import RowBuilder, Submission

k, calls = int(sys.argv[1]), int(sys.argv[2])
q = queuelab.Queue(f"sqlite:///{tempfile.mkdtemp()}/q.db")
q.task(name="noop")(lambda **kw: None)


def subs() -> list[Submission]:
    return [Submission(task="noop", payload={"i": i}) for i in range(k)]


def rows() -> tuple[float, list[dict]]:
    now = time.time()
    builder, task = RowBuilder(q.settings, now, k), q._runtime.tasks.get("noop")
    return now, [builder.row(s, task) for s in subs()]


for _ in range(100):
    q.submit_many(subs())
store = q._runtime.jobs
prepared = [rows() for _ in range(calls)]
profile = cProfile.Profile() if len(sys.argv) > 3 else None
if profile:
    profile.enable()
cpu = time.process_time()
for now, batch in prepared:
    store.insert(batch, now)
cpu = time.process_time() - cpu
if profile:
    profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(18)
print(f"k={k} {cpu / calls * 1e6:.0f}us/write {cpu / calls / k * 1e6:.0f}us/row")
