"""``python -m queuelab.bench``: side-by-side speed figures for the core queue.

Scenarios (no-op jobs): enqueue one call per job and in bulk; drain pre-enqueued jobs with
1 and 4 worker processes; submit-to-start latency with an idle worker. Each runs on a
fresh SQLite file and, with ``--postgres URL``, on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from queuelab.queue import Queue
from queuelab.store.schema import jobs as jobs_table
from queuelab.submission import Submission


@dataclass(frozen=True, slots=True)
class Figure:
    database: str
    scenario: str
    value: float
    unit: str


@contextmanager
def fresh_queue(kind: str, postgres_url: str | None, **options: Any) -> Iterator[Queue]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            q = Queue(f"sqlite:///{os.path.join(folder, 'bench.db')}", **options)
            yield q
            q.close()
        return
    assert postgres_url is not None
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


def completed(q: Queue) -> int:
    with q.runtime.db.read() as conn:
        query = sa.select(sa.func.count()).where(jobs_table.c.status == "COMPLETED")
        return int(conn.execute(query).scalar_one())


def enqueue_single(q: Queue, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        q.submit("simulate")
    return n / (time.perf_counter() - started)


def enqueue_bulk(q: Queue, n: int, batch: int = 1000) -> float:
    started = time.perf_counter()
    for offset in range(0, n, batch):
        q.submit_many(Submission(task="simulate") for _ in range(min(batch, n - offset)))
    return n / (time.perf_counter() - started)


def drain(q: Queue, n: int, workers: int, mode: str) -> float:
    q.submit_many(Submission(task="simulate") for _ in range(n))
    started = time.perf_counter()
    with q.worker(workers, mode):  # type: ignore[arg-type]
        while completed(q) < n:
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    return n / elapsed


def latency(q: Queue, n: int, interval: float = 0.02) -> tuple[float, float]:
    """Median and p99 submit-to-start, in ms, with one idle worker process."""
    with q.worker(1, "process"):
        time.sleep(1.5)  # let the worker start and go idle
        for _ in range(n):
            q.submit("simulate")
            time.sleep(interval)
        while completed(q) < n:
            time.sleep(0.05)
    with q.runtime.db.read() as conn:
        rows = conn.execute(sa.select(jobs_table.c.started_at - jobs_table.c.created_at)).scalars().all()
    waits = sorted(1000 * w for w in rows)
    return statistics.median(waits), waits[min(len(waits) - 1, int(0.99 * len(waits)))]


def drain_users(q: Queue, n: int, users: int, max_running: int | None) -> float:
    """Drain ``n`` no-op jobs of ``users`` users with one worker of 4 slots."""
    if max_running is not None:
        q.set_limits(max_running=max_running)
    q.submit_many(Submission(task="simulate", user_id=f"user{i % users}") for i in range(n))
    return drain(q, n, 4, "thread")


def submit_cost_us(q: Queue, n: int) -> float:
    """Microseconds per single submit (many users, so no refusals)."""
    started = time.perf_counter()
    for i in range(n):
        q.submit("simulate", user_id=f"user{i % 100}")
    return 1e6 * (time.perf_counter() - started) / n


def run_limits(kinds: list[str], postgres_url: str | None, n: int, redis_url: str | None) -> list[Figure]:
    figures = []
    for kind in kinds:
        for label, quota in (("quotas off", None), ("running quota 2 per user", 2)):
            with fresh_queue(kind, postgres_url) as q:
                rate = drain_users(q, n, 100, quota)
                figures.append(Figure(kind, f"drain, 100 users, {label}", rate, "jobs/s"))
        limiters: list[tuple[str, dict[str, str]]] = [("no rate limit", {}), ("SQL rate limiter", {})]
        if redis_url:
            limiters.append(("Redis rate limiter", {"redis_url": redis_url}))
        for label, options in limiters:
            with fresh_queue(kind, postgres_url, **options) as q:
                if label != "no rate limit":
                    q.set_limits(rate_limit="1000000/hour")
                figures.append(Figure(kind, f"submit cost, {label}", submit_cost_us(q, n // 2), "us/job"))
    return figures


def run_api(kinds: list[str], postgres_url: str | None) -> list[Figure]:
    from queuelab.bench_api import api_figures

    figures = []
    for kind in kinds:
        with fresh_queue(kind, postgres_url) as q:
            url = None if kind == "sqlite" else q.settings.database_url
            found = api_figures(db_url=url)
        figures.append(Figure(kind, "API submits/s, 16 clients, 1 process", found["submits_per_second"], "req/s"))
        figures.append(Figure(kind, f"API submit p50 at {found['rate']:g} req/s", found["p50_ms"], "ms"))
        figures.append(Figure(kind, f"API submit p99 at {found['rate']:g} req/s", found["p99_ms"], "ms"))
    return figures


def run(kinds: list[str], postgres_url: str | None, n: int) -> list[Figure]:
    figures = []
    for kind in kinds:
        with fresh_queue(kind, postgres_url) as q:
            figures.append(Figure(kind, "enqueue, one call per job", enqueue_single(q, n), "jobs/s"))
        with fresh_queue(kind, postgres_url) as q:
            figures.append(Figure(kind, "enqueue, bulk (1000 per call)", enqueue_bulk(q, n * 4), "jobs/s"))
        for workers, mode in ((1, "thread"), (4, "thread"), (1, "process"), (4, "process")):
            with fresh_queue(kind, postgres_url) as q:
                rate = drain(q, n, workers, mode)
                what = f"{workers} slot(s) in 1 process" if mode == "thread" else f"{workers} worker process(es)"
                figures.append(Figure(kind, f"drain, {what}", rate, "jobs/s"))
        with fresh_queue(kind, postgres_url) as q:
            p50, p99 = latency(q, 200)
            figures.append(Figure(kind, "submit-to-start p50, idle worker", p50, "ms"))
            figures.append(Figure(kind, "submit-to-start p99, idle worker", p99, "ms"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m queuelab.bench", description=__doc__)
    parser.add_argument("--postgres", default=os.environ.get("QUEUELAB_TEST_POSTGRES_URL"),
                        help="PostgreSQL URL (default: QUEUELAB_TEST_POSTGRES_URL); omit for SQLite only")  # fmt: skip
    parser.add_argument("--redis", default=os.environ.get("QUEUELAB_TEST_REDIS_URL"), help="Redis URL (limiter cost)")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--suite", choices=["core", "limits", "api", "all"], default="all")
    args = parser.parse_args(argv)
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    figures = []
    if args.suite in ("core", "all"):
        figures += run(kinds, args.postgres, args.jobs)
    if args.suite in ("limits", "all"):
        figures += run_limits(kinds, args.postgres, args.jobs, args.redis)
    if args.suite in ("api", "all"):
        figures += run_api(kinds, args.postgres)
    print(f"{'database':<11} {'scenario':<36} {'value':>10}")
    for f in figures:
        print(f"{f.database:<11} {f.scenario:<40} {f.value:>10.1f} {f.unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
