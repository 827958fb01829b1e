"""The core scenarios: enqueue (one call per job, from one caller, threads or processes;
and in bulk), drain (pre-enqueued no-op jobs, 1 to 8 slot threads or worker processes),
submit-to-start latency with an idle worker, and the cost of a submission under a rate
limiter."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import sqlalchemy as sa

from queuelab.bench.floor import BATCH_INSERT
from queuelab.bench.harness import (
    drain_rate_of,
    drain_timeout,
    enqueue_noop,
    expect_completed,
    fresh_queue,
    running_pool,
    wait_idle,
)
from queuelab.bench.plan import Context
from queuelab.bench.results import (
    DRAIN_PREFETCH,
    ENQUEUE_BULK,
    ENQUEUE_ONE,
    BenchError,
    Finding,
    Result,
    drain_case,
    latency_case,
    per_second,
    percentile,
)
from queuelab.queue import Queue
from queuelab.runtime.pool import Mode
from queuelab.store.schema import jobs

PRODUCERS = 4
MODES: tuple[Mode, ...] = ("thread", "process")


# -- enqueue ------------------------------------------------------------------------------


def enqueue(ctx: Context, kind: str) -> list[Finding]:
    n = ctx.sizes.jobs
    found: list[Finding] = []
    with fresh_queue(kind, ctx.postgres_url) as q:
        q.submit("simulate")  # warm: the connection, the compiled statements
        rate = _timed_rate(n, lambda: _submit_each(q, n))
        found.append(_enqueue_result(kind, ENQUEUE_ONE, rate, n, "", 1, "insert/1"))
    for mode in MODES:
        with fresh_queue(kind, ctx.postgres_url) as q:
            rate = _producers(q, n, mode)
            case = f"one call per job, {PRODUCERS} producer {mode}{'es' if mode == 'process' else 's'}"
            found.append(_enqueue_result(kind, case, rate, n, mode, PRODUCERS, "insert/1"))
    bulk = ctx.sizes.bulk_jobs
    with fresh_queue(kind, ctx.postgres_url) as q:
        enqueue_noop(q, 2)  # warm, as above
        rate = _timed_rate(bulk, lambda: enqueue_noop(q, bulk, batch=BATCH_INSERT))
        found.append(_enqueue_result(kind, ENQUEUE_BULK, rate, bulk, "", 1, "insert/batch"))
    return found


def _enqueue_result(kind: str, case: str, rate: float, n: int, mode: str, workers: int, floor: str) -> Result:
    return Result(
        database=kind,
        scenario="enqueue",
        case=case,
        metric="throughput",
        value=rate,
        unit="jobs/s",
        mode=mode,
        workers=workers,
        jobs=n,
        floor_key=floor,
    )


def _timed_rate(n: int, work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return per_second(n, time.perf_counter() - started)


def _submit_each(q: Queue, n: int) -> None:
    for _ in range(n):
        q.submit("simulate")


def _producers(q: Queue, n: int, mode: Mode) -> float:
    """``n`` single submits shared by PRODUCERS threads or processes, timed from a common
    start (each has opened its connection and submitted once before it)."""
    share = [n // PRODUCERS + (i < n % PRODUCERS) for i in range(PRODUCERS)]
    run = _thread_producers if mode == "thread" else _process_producers
    started, ends = run(q, share)
    _expect_jobs(q, n + PRODUCERS)
    return per_second(n, max(ends) - started)


def _thread_producers(q: Queue, share: list[int]) -> tuple[float, list[float]]:
    barrier = threading.Barrier(len(share) + 1)
    ends: list[float] = []
    threads = [threading.Thread(target=_produce_thread, args=(q, k, barrier, ends)) for k in share]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.time()
    for t in threads:
        t.join()
    return started, ends


def _process_producers(q: Queue, share: list[int]) -> tuple[float, list[float]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(share) + 1)
    out = ctx.SimpleQueue()
    args = [(q.settings.database_url, k, barrier, out) for k in share]
    procs = [ctx.Process(target=_produce_process, args=a) for a in args]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    started = time.time()
    ends = [float(out.get()) for _ in procs]
    for p in procs:
        p.join()
    return started, ends


def _produce_thread(q: Queue, n: int, barrier: threading.Barrier, ends: list[float]) -> None:
    q.submit("simulate")  # warm: a pooled connection of its own
    barrier.wait()
    _submit_each(q, n)
    ends.append(time.time())


def _produce_process(url: str, n: int, barrier: Any, out: Any) -> None:
    q = Queue(url)
    q.submit("simulate")  # warm: the engine, the connection, the compiled statements
    barrier.wait()
    _submit_each(q, n)
    out.put(time.time())
    q.close()


def _expect_jobs(q: Queue, n: int) -> None:
    with q.database.read() as conn:
        found = int(conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one())
    if found != n:
        raise BenchError(f"expected {n} stored jobs, found {found}")


# -- drain --------------------------------------------------------------------------------


def drain(ctx: Context, kind: str) -> list[Finding]:
    runs: list[tuple[Mode, int, int | None]] = [
        (mode, workers, None) for mode in MODES for workers in ctx.sizes.workers
    ]
    runs += [("process", workers, DRAIN_PREFETCH) for workers in ctx.sizes.workers if workers <= 2]
    found: list[Finding] = []
    for mode, workers, prefetch in runs:
        options = {} if prefetch is None else {"prefetch": prefetch}
        # One job a turn (prefetch 0) drains at 1,000-3,000 jobs/s: its shorter run suffices.
        n = ctx.sizes.drain_jobs if prefetch is None else ctx.sizes.jobs
        with fresh_queue(kind, ctx.postgres_url, **options) as q:
            rate = drain_rate(q, n, workers, mode)
        found.append(
            Result(
                database=kind,
                scenario="drain",
                case=drain_case(workers, mode, prefetch),
                metric="throughput",
                value=rate,
                unit="jobs/s",
                mode=mode,
                workers=workers,
                jobs=n,
                floor_key="turn/batch" if prefetch is None else drain_floor(workers, mode),
            )
        )
    return found


def drain_floor(workers: int, mode: Mode) -> str:
    """A worker process has one slot: one job per transaction. A thread pool's dispatcher
    acks and claims for all its k slots in one transaction: k jobs per transaction."""
    return "turn/1" if mode == "process" else f"turn/{workers}"


def drain_rate(q: Queue, n: int, workers: int, mode: Mode) -> float:
    """Jobs per second from the first job's start to the last finish (the stored times, as
    the lab's ``drain_rate``), the workers up and idle when the jobs arrive."""
    with running_pool(q, workers, mode):
        enqueue_noop(q, n, batch=n)  # one transaction: every job visible at once
        wait_idle(q, drain_timeout(n))
    expect_completed(q, n)
    return drain_rate_of(q, n)


# -- latency ------------------------------------------------------------------------------


def latency(ctx: Context, kind: str) -> list[Finding]:
    """Submit to start with an idle worker; and ``Queue.wait``: a submit and a wait for
    its result, one job at a time (the round trip), and the part of it from the job's end
    to the wait's return (what waking the waiter costs, the worker's ack included)."""
    found: list[Finding] = []
    for mode in MODES:
        with fresh_queue(kind, ctx.postgres_url) as q:
            waits = submit_to_start(q, mode, ctx.sizes.latency_jobs, ctx.sizes.latency_rate)
        with fresh_queue(kind, ctx.postgres_url) as q:
            trips, woken = wait_round_trips(q, mode, ctx.sizes.latency_jobs)
        for case, sample in (
            (latency_case(mode), waits),
            (f"submit + wait(): {latency_case(mode)}", trips),
            (f"job end to wait() return: {latency_case(mode)}", woken),
        ):
            found.extend(
                Result(
                    database=kind,
                    scenario="latency",
                    case=case,
                    metric=f"p{p}",
                    value=percentile(sample, p),
                    unit="ms",
                    mode=mode,
                    workers=1,
                    jobs=len(sample),
                )
                for p in (50, 95, 99)
            )
    return found


def wait_round_trips(q: Queue, mode: Mode, n: int) -> tuple[list[float], list[float]]:
    """Milliseconds of ``n`` submit-then-wait round trips, one job at a time, and of each
    one's part from the job's recorded end to the wait's return."""
    trips, woken = [], []
    with running_pool(q, 1, mode):
        q.wait(q.submit("simulate"), timeout=120)  # the worker is up
        for _ in range(n):
            began = time.perf_counter()
            done = q.wait(q.submit("simulate"), timeout=120)
            trips.append(1000 * (time.perf_counter() - began))
            assert done.finished_at is not None
            woken.append(1000 * (time.time() - done.finished_at.timestamp()))
    return trips, woken


def submit_to_start(q: Queue, mode: Mode, n: int, rate: float) -> list[float]:
    """Milliseconds from submit to start for ``n`` jobs submitted ``1/rate`` apart to one
    idle worker (the first job, submitted before, only proves the worker is up)."""
    with running_pool(q, 1, mode):
        warm = q.submit("simulate")
        wait_idle(q, 120)
        time.sleep(0.5)  # deliberate: the worker has gone idle, the state being measured
        started = time.perf_counter()
        for i in range(n):
            pause = started + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            q.submit("simulate")
        wait_idle(q, drain_timeout(n))
    query = sa.select(jobs.c.started_at - jobs.c.created_at).where(jobs.c.id != warm.id)
    with q.database.read() as conn:
        return [1000 * float(w) for w in conn.execute(query).scalars()]


# -- limits -------------------------------------------------------------------------------


def limits(ctx: Context, kind: str) -> list[Finding]:
    """Single submits from 100 users, with no rate limit, the SQL limiter, and (given
    ``--redis``) the Redis limiter; the limit is high enough never to refuse."""
    n = max(1, ctx.sizes.jobs // 2)
    limiters: list[tuple[str, dict[str, str]]] = [("no rate limit", {}), ("SQL rate limiter", {})]
    if ctx.redis_url:
        limiters.append(("Redis rate limiter", {"redis_url": ctx.redis_url}))
    found: list[Finding] = []
    for label, options in limiters:
        with fresh_queue(kind, ctx.postgres_url, **options) as q:
            if label != "no rate limit":
                q.set_limits(rate_limit="1000000/hour")
            q.submit("simulate", user_id="warm")  # warm: connection, statements, limits cache
            rate = _timed_rate(n, partial(_submit_users, q, n))
        found.append(
            Result(
                database=kind,
                scenario="limits",
                case=f"one call per job, 100 users, {label}",
                metric="throughput",
                value=rate,
                unit="jobs/s",
                workers=1,
                jobs=n,
                floor_key="insert/1",
            )
        )
    return found


def _submit_users(q: Queue, n: int) -> None:
    for i in range(n):
        q.submit("simulate", user_id=f"user{i % 100}")
