"""Worker chaos: jobs drained by real worker processes while one of them, chosen at random,
is SIGKILLed every ``kill_every`` seconds (once 10 jobs have completed since the last kill:
on a busy machine, a kill on the clock alone could come before any new worker had run a
job) and replaced. Afterwards every job must be
COMPLETED, none lost, none stuck RUNNING; a job may have run twice only if a worker was
killed while running it (its history then holds a LOST attempt for each extra run).

The test suite runs a small version (tests/acceptance/test_chaos.py); the full one is

    python -m tests.support.chaos --db sqlite:///chaos.db --jobs 20000 --workers 4      (make chaos)
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa

from queuelab import Queue, Submission
from queuelab.store.schema import attempts, jobs
from queuelab.testing import internals
from tests.support.helpers import WorkerProcess, read_records, recorder_queue

LEASE_SECONDS = 1.0
PROGRESS_BETWEEN_KILLS = 10  # jobs completed since the last kill before the next is due


@dataclass(frozen=True, slots=True)
class ChaosReport:
    database: str
    jobs: int
    workers: int
    kills: int
    completed: int
    lost: int  # jobs not COMPLETED at the end
    stuck: int  # jobs still RUNNING at the end
    duplicate_runs: int  # runs beyond the first, over all jobs
    unexplained_duplicates: int  # extra runs without a LOST attempt to account for them
    # the same attempt number started twice, beyond the re-runs of an attempt handed back
    # unspent: a lease that did not hold
    attempts_run_twice: int
    seconds: float


def run_worker_chaos(
    url: str,
    work: Path,
    *,
    jobs_total: int,
    workers: int = 4,
    kill_every: float = 0.5,
    job_seconds: float = 0.002,
    concurrency: int = 2,
    seed: int = 0,
    timeout: float = 600.0,
    prefetch: str = "auto",
) -> ChaosReport:
    rng = random.Random(seed)
    records = work / "records.txt"
    q = recorder_queue(url)
    try:
        for start in range(0, jobs_total, 2000):
            q.submit_many(
                Submission(
                    task="record",
                    payload={"path": str(records), "seconds": job_seconds},
                    max_retries=50,
                    lease_seconds=LEASE_SECONDS,  # the lease is the job's: a killed worker's jobs wait this long
                )
                for _ in range(min(2000, jobs_total - start))
            )
        pool = [_start(url, work, i, concurrency, prefetch) for i in range(workers)]
        started, kills, spawned = time.monotonic(), 0, workers
        next_kill, done_at_kill = started + kill_every, 0
        while (counts := _counts(q)).open and time.monotonic() - started < timeout:
            # A kill is due kill_every seconds after the last, once PROGRESS_BETWEEN_KILLS jobs
            # have completed since it: on a machine too busy to start a worker process within
            # kill_every, kills on the clock alone killed every worker before it ran a job.
            if time.monotonic() >= next_kill and counts.completed - done_at_kill >= PROGRESS_BETWEEN_KILLS:
                victim = pool.pop(rng.randrange(len(pool)))
                victim.signal(signal.SIGKILL)
                victim.wait()
                kills += 1
                pool.append(_start(url, work, spawned, concurrency, prefetch))
                spawned += 1
                next_kill, done_at_kill = time.monotonic() + kill_every, counts.completed
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        for worker in pool:
            worker.signal(signal.SIGTERM)
        for worker in pool:
            worker.wait(30)
        return _report(q, url, records, jobs_total, workers, kills, elapsed)
    finally:
        q.close()


def _start(url: str, work: Path, i: int, concurrency: int, prefetch: str) -> WorkerProcess:
    return WorkerProcess(
        url,
        work / f"worker-{i}.log",
        concurrency=concurrency,
        QUEUELAB_LEASE_SECONDS=str(LEASE_SECONDS),
        QUEUELAB_SHUTDOWN_GRACE_SECONDS="1",
        QUEUELAB_PREFETCH=prefetch,  # a killed worker's prefetched jobs are rescued too
    )


@dataclass(frozen=True, slots=True)
class _Counts:
    open: int  # PENDING or RUNNING
    completed: int


def _counts(q: Queue) -> _Counts:
    by_status = q.stats().by_status
    return _Counts(by_status["PENDING"] + by_status["RUNNING"], by_status["COMPLETED"])


def _report(q: Queue, url: str, records: Path, total: int, workers: int, kills: int, elapsed: float) -> ChaosReport:
    with internals(q).db.read() as conn:
        statuses: Counter[str] = Counter(
            dict(conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all())
        )
        lost_attempts: Counter[str] = Counter(
            dict(
                conn.execute(
                    sa.select(attempts.c.job_id, sa.func.count())
                    .where(attempts.c.outcome == "LOST")
                    .group_by(attempts.c.job_id)
                ).all()
            )
        )
        # A rescue that handed a job back unspent (its start was not recorded: claimed ahead)
        # lets the same attempt number run again; each such rescue explains one re-run of it.
        handed_back = sa.select(attempts.c.job_id, attempts.c.number, sa.func.count()).where(
            attempts.c.outcome == "LOST", attempts.c.started_at.is_(None)
        )
        unspent: Counter[tuple[str, int]] = Counter(
            {
                (job_id, number): n
                for job_id, number, n in conn.execute(handed_back.group_by(attempts.c.job_id, attempts.c.number))
            }
        )
    starts = [(job_id, attempt) for job_id, attempt, _, event, _ in read_records(records) if event == "start"]
    runs = Counter(job_id for job_id, _ in starts)
    twice = sum(max(0, n - 1 - unspent[key]) for key, n in Counter(starts).items() if n > 1)
    duplicates = {job_id: n - 1 for job_id, n in runs.items() if n > 1}
    unexplained = sum(max(0, extra - lost_attempts.get(job_id, 0)) for job_id, extra in duplicates.items())
    return ChaosReport(
        database=sa.make_url(url).get_backend_name(),
        jobs=total,
        workers=workers,
        kills=kills,
        completed=statuses["COMPLETED"],
        lost=total - statuses["COMPLETED"],
        stuck=statuses["RUNNING"],
        duplicate_runs=sum(duplicates.values()),
        unexplained_duplicates=unexplained,
        attempts_run_twice=twice,
        seconds=round(elapsed, 1),
    )


@contextmanager
def _fresh(url: str, fresh: bool) -> Iterator[str]:
    if not fresh:
        yield url
        return
    schema = f"chaos_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.chaos", description=__doc__)
    parser.add_argument("--db", required=True, help="database URL (a fresh one: the run counts every job in it)")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=0.5)
    parser.add_argument("--prefetch", default="auto", help="jobs each worker claims beyond its free slots: auto or N")
    parser.add_argument("--fresh-schema", action="store_true", help="PostgreSQL: run in a new schema, dropped after")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, _fresh(args.db, args.fresh_schema) as url:
        report = run_worker_chaos(
            url,
            Path(folder),
            jobs_total=args.jobs,
            workers=args.workers,
            kill_every=args.kill_every,
            prefetch=args.prefetch,
        )
    print(json.dumps(asdict(report), indent=2))
    ok = report.lost == report.stuck == report.unexplained_duplicates == report.attempts_run_twice == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
