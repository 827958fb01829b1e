"""What every scenario needs: a fresh database per measurement, no-op jobs, waiting for a
queue to drain, and a worker process's resident memory."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from queuelab.bench.results import SQLITE, BenchError, per_second
from queuelab.queue import Queue
from queuelab.runtime.pool import Mode, Pool
from queuelab.store.schema import IS_PENDING, IS_RUNNING, jobs, workers
from queuelab.submission import Submission

POLL_SECONDS = 0.02  # how often a drain is checked: its error on a multi-second run is <1%


@contextmanager
def fresh_queue(kind: str, postgres_url: str | None, **options: Any) -> Iterator[Queue]:
    """A queue on an empty database: a new SQLite file, or a new PostgreSQL schema (named
    by ``search_path`` in the URL) dropped afterwards."""
    if kind == SQLITE:
        with tempfile.TemporaryDirectory(prefix="queuelab-bench-") as folder:
            q = Queue(f"sqlite:///{os.path.join(folder, 'bench.db')}", **options)
            try:
                yield q
            finally:
                q.close()
        return
    if not postgres_url:
        raise BenchError("a PostgreSQL scenario needs --postgres URL")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    q = Queue(url.render_as_string(hide_password=False), **options)
    try:
        yield q
    finally:
        q.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def enqueue_noop(q: Queue, n: int, *, users: Sequence[str] = ("default",), batch: int = 5000) -> None:
    """``n`` no-op jobs in bulk (untimed set-up), users taking turns."""
    for offset in range(0, n, batch):
        count = min(batch, n - offset)
        q.submit_many(Submission(task="simulate", user_id=users[(offset + i) % len(users)]) for i in range(count))


def unfinished(q: Queue) -> int:
    """PENDING + RUNNING jobs, counted on the partial indexes."""
    with q.database.read() as conn:
        return int(conn.execute(_UNFINISHED).scalar_one())


_UNFINISHED = sa.select(
    sa.select(sa.func.count()).where(IS_PENDING).scalar_subquery()
    + sa.select(sa.func.count()).where(IS_RUNNING).scalar_subquery()
)
_BUSY = sa.select(sa.exists(sa.select(jobs.c.id).where(IS_PENDING)) | sa.exists(sa.select(jobs.c.id).where(IS_RUNNING)))


def wait_idle(q: Queue, timeout: float, on_tick: Callable[[], None] | None = None) -> float:
    """Wait until no job is PENDING or RUNNING (finished and acked: a finished job stays
    RUNNING until its ack commits); return that moment (epoch seconds). The test reads the
    partial indexes only, so polling stays cheap beside the workers."""
    deadline = time.monotonic() + timeout
    while True:
        with q.database.read() as conn:
            busy = conn.execute(_BUSY).scalar()
        if not busy:
            return time.time()
        if time.monotonic() > deadline:
            raise BenchError(f"the queue did not drain within {timeout:.0f}s: {status_counts(q)}")
        if on_tick is not None:
            on_tick()
        time.sleep(POLL_SECONDS)


def drain_timeout(n: int) -> float:
    """Generous: a drain slower than 10 jobs/s is broken, not slow."""
    return 60.0 + n / 10


def status_counts(q: Queue) -> dict[str, int]:
    with q.database.read() as conn:
        rows = conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
    return {str(status): int(n) for status, n in rows}


def expect_completed(q: Queue, n: int) -> None:
    """Every job in the database COMPLETED, and ``n`` of them."""
    counts = status_counts(q)
    if counts.get("COMPLETED", 0) != n or sum(counts.values()) != n:
        raise BenchError(f"expected {n} COMPLETED jobs, found {counts}")


def first_start(q: Queue, since: float = 0.0) -> float:
    """When the first job (started at ``since`` or later) started."""
    query = sa.select(sa.func.min(jobs.c.started_at)).where(jobs.c.started_at >= since)
    with q.database.read() as conn:
        started = conn.execute(query).scalar()
    if started is None:
        raise BenchError("no job has started")
    return float(started)


def drain_rate_of(q: Queue, n: int, since: float = 0.0) -> float:
    """Jobs per second of a drain, from the stored times: ``n`` jobs over the first start
    (at ``since`` or later) to the last finish. The lab's summary reports the same quantity
    as ``drain_rate`` (tests/lab/test_lab.py checks both on one run)."""
    query = sa.select(sa.func.max(jobs.c.finished_at)).where(jobs.c.started_at >= since)
    with q.database.read() as conn:
        finished = conn.execute(query).scalar()
    if finished is None:
        raise BenchError("no job has finished")
    return per_second(n, float(finished) - first_start(q, since))


def timeline(q: Queue) -> list[Any]:
    """One row per job: id, user_id, created_at, started_at, finished_at."""
    columns = (jobs.c.id, jobs.c.user_id, jobs.c.created_at, jobs.c.started_at, jobs.c.finished_at)
    with q.database.read() as conn:
        return list(conn.execute(sa.select(*columns)).all())


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MiB: psutil where it is installed, else
    ``/proc/<pid>/status``; None once the process is gone."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return _proc_rss_mb(pid)
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return None


def _proc_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def wait_started(q: Queue, timeout: float = 120.0) -> None:
    """Wait until some job has started: the workers are up and claiming."""
    deadline = time.monotonic() + timeout
    query = sa.select(sa.exists(sa.select(jobs.c.id).where(jobs.c.started_at.is_not(None))))
    while True:
        with q.database.read() as conn:
            if conn.execute(query).scalar():
                return
        if time.monotonic() > deadline:
            raise BenchError(f"no job started within {timeout:.0f}s: {status_counts(q)}")
        time.sleep(POLL_SECONDS)


@contextmanager
def running_pool(q: Queue, count: int, mode: Mode) -> Iterator[Pool]:
    """A pool whose workers have all registered (are claiming) when the block starts, so
    process start-up is never timed; stopped gracefully when the block ends."""
    expected = 1 if mode == "thread" else count
    query = sa.select(sa.func.count()).select_from(workers).where(workers.c.stopped_at.is_(None))
    limit = 60.0 + 10 * expected
    with q.worker(count, mode) as pool:
        deadline = time.monotonic() + limit
        while True:
            with q.database.read() as conn:
                if int(conn.execute(query).scalar_one()) >= expected:
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"{expected} {mode} worker(s) did not register within {limit:.0f}s")
            time.sleep(POLL_SECONDS)
        yield pool
