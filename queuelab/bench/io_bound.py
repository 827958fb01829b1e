"""I/O-bound jobs: async tasks on a worker's event loop against sync tasks in its slot
threads. Every job waits ``WAIT_SECONDS`` (``await asyncio.sleep`` or ``time.sleep``) and
does nothing else, so the drain rate is how many waits a worker overlaps, less what each
job costs the queue. One worker (thread mode) drains pre-enqueued jobs; the rate is the
stored times' (first start to last finish), as in the drain scenario."""

from __future__ import annotations

import asyncio
import time

from queuelab.bench.harness import drain_rate_of, drain_timeout, expect_completed, fresh_queue, wait_idle
from queuelab.bench.plan import Context
from queuelab.bench.results import Finding, Result
from queuelab.queue import Queue
from queuelab.submission import Submission

WAIT_SECONDS = 0.05
JOBS, QUICK_JOBS = 2000, 400
ASYNC_CONCURRENCY = 100
THREADS = (8, 32)


def io_bound(ctx: Context, kind: str) -> list[Finding]:
    n = QUICK_JOBS if ctx.quick else JOBS
    cases = [("async", ASYNC_CONCURRENCY)] + [("threads", k) for k in THREADS]
    found: list[Finding] = []
    for how, width in cases:
        with fresh_queue(kind, ctx.postgres_url) as q:
            rate = drain_waits(q, n, how, width)
        case = f"{how}: {width} at once, jobs of {WAIT_SECONDS * 1000:g} ms of waiting"
        found.append(
            Result(
                database=kind,
                scenario="io",
                case=case,
                metric="throughput",
                value=rate,
                unit="jobs/s",
                mode="thread",
                workers=1,
                jobs=n,
            )
        )
    return found


def drain_waits(q: Queue, n: int, how: str, width: int) -> float:
    """Jobs per second for ``n`` waits, run as coroutines (``how="async"``, ``width`` at
    once on one event loop) or in ``width`` slot threads."""

    @q.task(name="wait_async")
    async def wait_async() -> None:
        await asyncio.sleep(WAIT_SECONDS)

    @q.task(name="wait_sync")
    def wait_sync() -> None:
        time.sleep(WAIT_SECONDS)

    task = "wait_async" if how == "async" else "wait_sync"
    q.submit_many(Submission(task=task) for _ in range(n))
    pool = q.worker(width if how == "threads" else 1, async_concurrency=width if how == "async" else None)
    with pool:
        wait_idle(q, drain_timeout(n) + n * WAIT_SECONDS)
    expect_completed(q, n)
    return drain_rate_of(q, n)
