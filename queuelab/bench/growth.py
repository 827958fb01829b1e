"""Growth: does a long history slow the queue down or grow the worker?

A drain with one worker process on an empty table, then on one already holding
``history_rows`` finished jobs (and their attempt rows), inserted with bulk SQL; each
beside the raw floor measured on that same table. Then one worker process works through a
long run while its resident memory is sampled: it must stay flat. A thread pool's memory
cannot be told apart from this process's, so growth uses worker processes only.
"""

from __future__ import annotations

import time
from dataclasses import replace

import sqlalchemy as sa

from queuelab.bench.floor import turn_case, turn_rate
from queuelab.bench.harness import (
    drain_timeout,
    enqueue_noop,
    expect_completed,
    first_start,
    fresh_queue,
    rss_mb,
    running_pool,
    unfinished,
    wait_idle,
)
from queuelab.bench.plan import Context
from queuelab.bench.results import GROWTH_RATIO, LONG_RUN_RSS, BenchError, Finding, Result, Series, per_second
from queuelab.queue import Queue
from queuelab.runtime.pool import ProcessPool

HISTORY_CHUNK = 250_000  # rows per INSERT ... SELECT
DAY = 86400.0
SAMPLE_SECONDS = 0.5


def growth(ctx: Context, kind: str) -> list[Finding]:
    found: list[Finding] = []
    rates: dict[str, float] = {}
    floors: dict[str, float] = {}
    for label, rows in (("empty", 0), ("history", ctx.sizes.history_rows)):
        what = "empty table" if not rows else f"{rows:,} finished jobs"
        with fresh_queue(kind, ctx.postgres_url) as q:
            if rows:
                fill_history(q, rows)
            rate, rss = drain_with_rss(q, ctx.sizes.growth_jobs, rows)
            floor = turn_rate(q, kind, ctx.sizes.growth_jobs, f"turn/1@{label}", f"{turn_case(1)}, {what}")
        rates[label], floors[label] = rate, floor.value
        drained = _result(kind, f"drain, 1 worker process, {what}", "throughput", rate, "jobs/s", ctx.sizes.growth_jobs)
        found += [
            replace(drained, floor_key=f"turn/1@{label}"),
            _result(kind, f"worker RSS (peak), {what}", "rss", rss, "MB", ctx.sizes.growth_jobs),
            floor,
        ]
    n = ctx.sizes.growth_jobs
    # Each drain is divided by the floor measured right after it on the same table, so a
    # change in the machine's load between the two cancels out: this is the growth figure.
    relative = (rates["history"] / floors["history"]) / (rates["empty"] / floors["empty"])
    found.append(_result(kind, GROWTH_RATIO, "ratio", relative, "x", n))
    found.append(
        _result(kind, "drain rate: with history / empty (raw)", "ratio", rates["history"] / rates["empty"], "x", n)
    )
    found.append(_result(kind, "raw floor: with history / empty", "ratio", floors["history"] / floors["empty"], "x"))
    return found + long_run(ctx, kind)


def _result(kind: str, case: str, metric: str, value: float, unit: str, jobs: int = 0) -> Result:
    mode = "process" if "worker" in case else ""
    return Result(
        database=kind,
        scenario="growth",
        case=case,
        metric=metric,
        value=value,
        unit=unit,
        mode=mode,
        workers=1 if mode else 0,
        jobs=jobs,
    )


# -- the history table --------------------------------------------------------------------

_COLUMNS = (
    "id, queue, task, payload, user_id, status, priority, fair_rank, run_at, attempts, max_retries, "
    "lease_seconds, result, forced, created_at, started_at, finished_at"
)
_VALUES = (
    "{id}, 'default', 'simulate', '{{}}', 'user' || (i % 100), :status, 0, i, :t0 + i * :step, 1, 3, "
    "30.0, :result, false, :t0 + i * :step, :t0 + i * :step + 0.001, :t0 + i * :step + 0.002"
)
_SQLITE_HISTORY = (
    "WITH RECURSIVE seq(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM seq WHERE i < :hi) "
    f"INSERT INTO queuelab_jobs ({_COLUMNS}) SELECT "
    + _VALUES.format(id="printf('00000000-0000-4000-8000-%012d', i)")
    + " FROM seq"
)
_POSTGRES_HISTORY = (
    f"INSERT INTO queuelab_jobs ({_COLUMNS}) SELECT "
    + _VALUES.format(id="'00000000-0000-4000-8000-' || lpad(CAST(i AS text), 12, '0')")
    + " FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS seq(i)"
)
_HISTORY_ATTEMPTS = (
    "INSERT INTO queuelab_attempts (job_id, number, worker_id, outcome, started_at, finished_at) "
    "SELECT id, 1, 'bench-history', 'COMPLETED', started_at, finished_at FROM queuelab_jobs"
)


def fill_history(q: Queue, rows: int, *, status: str = "COMPLETED", vacuum: bool = True) -> None:
    """``rows`` finished jobs (COMPLETED; FAILED ones no prune removes), each with its
    attempt row, finished over the last six days (so no worker prunes them meanwhile).
    PostgreSQL is then vacuumed and analysed, as its autovacuum would do after such a load
    (``vacuum=False``: only analysed, as a worker's maintenance does); SQLite gets nothing
    (queuelab never runs ANALYZE)."""
    db = q.database
    sql = sa.text(_SQLITE_HISTORY if db.is_sqlite else _POSTGRES_HISTORY)
    t0, step = time.time() - 6 * DAY, 5 * DAY / rows
    for lo in range(1, rows + 1, HISTORY_CHUNK):
        hi = min(rows, lo + HISTORY_CHUNK - 1)
        with db.write() as conn:
            values = {"lo": lo, "hi": hi, "t0": t0, "step": step, "result": '{"slept": 0}', "status": status}
            conn.execute(sql, values)
    with db.write() as conn:
        conn.execute(sa.text(_HISTORY_ATTEMPTS))
    if not db.is_sqlite:
        verb = "VACUUM ANALYZE" if vacuum else "ANALYZE"
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"{verb} queuelab_jobs"))
            conn.execute(sa.text(f"{verb} queuelab_attempts"))


# -- worker memory ------------------------------------------------------------------------


class RssSampler:
    """The RSS of a one-process pool's worker, read at most every ``every`` seconds."""

    def __init__(self, pool: ProcessPool, every: float = 0.1) -> None:
        self.pool = pool
        self.every = every
        self.samples: list[float] = []
        self.pid: int | None = None
        self._next = 0.0

    def __call__(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        self.read()

    def read(self) -> float | None:
        pids = self.pool.pids()
        if not pids:
            return None
        if self.pid is not None and pids[0] != self.pid:
            raise BenchError(f"the worker process {self.pid} was replaced by {pids[0]}: its memory is not comparable")
        self.pid = pids[0]
        rss = rss_mb(self.pid)
        if rss is not None:
            self.samples.append(rss)
        return rss


def _process_pool(q: Queue) -> ProcessPool:
    pool = q.worker(1, "process")
    assert isinstance(pool, ProcessPool)
    return pool


def drain_with_rss(q: Queue, n: int, history: int) -> tuple[float, float]:
    """Drain ``n`` jobs with one worker process; return its rate and its peak RSS."""
    since = time.time()
    with running_pool(q, 1, "process") as pool:
        assert isinstance(pool, ProcessPool)
        sampler = RssSampler(pool)
        enqueue_noop(q, n, batch=n)
        done = wait_idle(q, drain_timeout(n), on_tick=sampler)
        sampler.read()
    expect_completed(q, n + history)
    if not sampler.samples:
        raise BenchError("could not read the worker's memory")
    return per_second(n, done - first_start(q, since)), max(sampler.samples)


def long_run(ctx: Context, kind: str) -> list[Finding]:
    n, seconds = ctx.sizes.long_run_jobs, ctx.sizes.long_run_seconds
    with fresh_queue(kind, ctx.postgres_url) as q:
        enqueue_noop(q, n)
        points, ended = _sample_long_run(q, n, seconds)
        done = int(points[-1][0])
        rate = per_second(done, ended - first_start(q))
    early = next(rss for jobs, rss in points if jobs >= 0.1 * done)
    end = points[-1][1]
    what = f"1 worker process, {seconds:g} s, {n:,} jobs queued at a time, {done:,} done"
    return [
        replace(_result(kind, f"long run, {what}", "throughput", rate, "jobs/s", done), floor_key="turn/1"),
        _result(kind, f"worker RSS 10% into the long run, {what}", "rss", early, "MB", done),
        _result(kind, f"worker RSS at the end, {what}", "rss", end, "MB", done),
        _result(kind, LONG_RUN_RSS, "rss_change", 100 * (end - early) / early, "%", done),
        Series(kind, "worker RSS over a long run", "jobs done", "RSS (MB)", tuple(points)),
    ]


def _sample_long_run(q: Queue, n: int, seconds: float) -> tuple[list[tuple[float, float]], float]:
    """(jobs done, worker RSS) every SAMPLE_SECONDS for ``seconds``: a queue drained before
    then gets ``n`` more jobs, so the run lasts however fast the worker is."""
    pool = _process_pool(q)
    sampler = RssSampler(pool)
    points: list[tuple[float, float]] = []
    queued = n
    with pool:
        deadline = time.monotonic() + seconds
        while True:
            time.sleep(SAMPLE_SECONDS)
            done, rss, now = queued - unfinished(q), sampler.read(), time.time()
            if rss is not None and done > 0:
                points.append((float(done), rss))
            if time.monotonic() > deadline:
                break
            if done >= queued:
                enqueue_noop(q, n)
                queued += n
    if len(points) < 2:
        raise BenchError(f"the long run gave {len(points)} memory samples; it needs at least 2")
    return points, now
