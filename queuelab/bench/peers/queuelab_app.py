"""queuelab's side of the peer comparison: the shared body as a queuelab task, defined at
module level so that a spawned worker process can import it (the bench registers it on each
fresh queue with ``q.task(name=TASK)(append_line.fn)``)."""

from __future__ import annotations

from queuelab.bench.peers import body
from queuelab.queue import Queue

TASK = "append_line"
app = Queue()  # opens nothing until used: only the task below is taken from it


@app.task(name=TASK)
def append_line(path: str) -> None:
    body.append_line(path)
