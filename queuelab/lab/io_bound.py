"""I/O-bound jobs in the lab: a burst of jobs that only wait, drained by one worker either as
coroutines on its event loop (``await asyncio.sleep``) or in its slot threads
(``time.sleep``). The bench's ``io`` scenario measures the same drain at fixed sizes; here
the wait and the sizes are arguments, and the result is the lab's timeline summary, whose
``drain_rate`` is the bench's figure (first start to last finish, from the stored times).

    from queuelab.lab import io_bound
    io_bound.drain_waits(q, 400, how="async", width=100, wait_seconds=0.05)["drain_rate"]

Each drain submits to a queue of its own (``lab-<id>``) served by a worker of its own, so
drains can share a database with each other and with other work.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from queuelab import bounds
from queuelab.errors import InvalidArgument
from queuelab.lab import frames
from queuelab.lab.experiment import SUBMIT_CHUNK, TERMINAL, summarize
from queuelab.queue import Queue
from queuelab.submission import Submission

if TYPE_CHECKING:
    import pandas as pd

How = Literal["async", "threads"]
HOWS: tuple[How, ...] = ("async", "threads")
WAIT_ASYNC, WAIT_SYNC = "lab_wait_async", "lab_wait_sync"
POLL_SECONDS = 0.02  # how often the drain is checked (the rate is read from stored times)


async def wait_async(seconds: float) -> None:
    await asyncio.sleep(seconds)


def wait_sync(seconds: float) -> None:
    time.sleep(seconds)


def drain_waits(
    q: Queue, jobs: int, *, how: How, width: int, wait_seconds: float, time_limit: float = 300.0
) -> pd.Series:
    """Submit ``jobs`` jobs that each wait ``wait_seconds``, then drain them with one worker
    (thread mode): ``how="async"`` runs them as coroutines, ``width`` at once on its event
    loop; ``how="threads"`` in ``width`` slot threads. Returns the run's summary (see
    :func:`~queuelab.lab.experiment.summarize`) with ``how``, ``width``, ``wait_ms`` and
    ``ceiling``: the jobs/s of ``width`` waits perfectly overlapped, with no queue cost."""
    bounds.whole("jobs", jobs, 1)
    bounds.one_of("how", how, HOWS)
    bounds.whole("width", width, 1, bounds.MAX_ASYNC_CONCURRENCY if how == "async" else bounds.MAX_CONCURRENCY)
    if not 0 < wait_seconds <= 60 or not time_limit > 0:
        raise InvalidArgument(f"wait_seconds must be in (0, 60] and time_limit > 0, got {wait_seconds}, {time_limit}")
    task = _register(q, how)
    queue = f"lab-{uuid.uuid4().hex[:8]}"
    q.open()
    submission = Submission(task=task, payload={"seconds": wait_seconds}, queue=queue)
    for offset in range(0, jobs, SUBMIT_CHUNK):
        q.submit_many([submission] * min(SUBMIT_CHUNK, jobs - offset))
    threads, coroutines = (1, width) if how == "async" else (width, None)
    with q.worker(threads, queues=[queue], async_concurrency=coroutines):
        timed_out = not _drained(q, queue, jobs, time_limit)
    params = {"how": how, "width": width, "wait_ms": wait_seconds * 1000, "backend": q.dialect, "queue": queue}
    summary = summarize(frames.timeline(q, queue=queue), params, timed_out)
    summary["ceiling"] = width / wait_seconds
    return summary


def compare(
    q: Queue, jobs: int, cases: Sequence[tuple[How, int]], *, wait_seconds: float, repeat: int = 1
) -> pd.DataFrame:
    """:func:`drain_waits` for each ``(how, width)`` of ``cases``, ``repeat`` times each:
    one row per drain, with ``case`` naming it ("async 100", "threads 8")."""
    import pandas as pd

    bounds.whole("repeat", repeat, 1)
    rows = [
        {"case": f"{how} {width}", "repeat": r, **drain_waits(q, jobs, how=how, width=width, wait_seconds=wait_seconds)}
        for how, width in cases
        for r in range(repeat)
    ]
    return pd.DataFrame(rows)


def _register(q: Queue, how: How) -> str:
    """The waiting task for ``how``, registered on ``q`` (again, harmlessly, if it was)."""
    if how == "async":
        return q.task(name=WAIT_ASYNC)(wait_async).name
    return q.task(name=WAIT_SYNC)(wait_sync).name


def _drained(q: Queue, queue: str, jobs: int, time_limit: float) -> bool:
    """Wait until every job of ``queue`` has finished; False if ``time_limit`` passed first."""
    deadline = time.monotonic() + time_limit
    while sum(q.status_counts(queue).get(s, 0) for s in TERMINAL) < jobs:
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True
