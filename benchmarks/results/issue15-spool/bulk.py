# q.submit_many of 1,000 jobs, 20 calls, SQLite: jobs/s.
import tempfile
import time

import queuelab
from queuelab.submission import Submission

d = tempfile.mkdtemp()
q = queuelab.Queue(f"sqlite:///{d}/q.db")
q.task(name="noop")(lambda **kw: None)
q.submit_many([Submission(task="noop", payload={"i": i}) for i in range(100)])
N = 20
k = 1000
t = time.perf_counter()
for _ in range(N):
    q.submit_many([Submission(task="noop", payload={"i": i}) for i in range(k)])
print(f"submit_many({k}) {N * k / (time.perf_counter() - t):.0f} jobs/s")
