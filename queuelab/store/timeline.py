"""Read-only queries behind the lab's frames: every job of a queue with its attempts, and the
dead-letter queue grouped by the error that put each job there."""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa

from queuelab.models import JobStatus
from queuelab.store.database import Database
from queuelab.store.history import history
from queuelab.store.schema import attempts, jobs

JOB_COLUMNS = (
    "id",
    "queue",
    "task",
    "user_id",
    "status",
    "attempts",
    "lease_owner",
    "created_at",
    "started_at",
    "finished_at",
)
ATTEMPT_COLUMNS = ("job_id", "number", "worker_id", "outcome", "started_at", "finished_at", "error_type")


class TimelineRows(NamedTuple):
    """What the lab's timeline is built from."""

    jobs: list[tuple[Any, ...]]  # one per job (JOB_COLUMNS), oldest first: job_rows()
    attempts: list[tuple[Any, ...]]  # one per finished attempt of those jobs (ATTEMPT_COLUMNS): attempt_rows()


def _job_filter(queue: str | None, since: float | None) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if queue is not None:
        where.append(jobs.c.queue == queue)
    if since is not None:
        where.append(jobs.c.created_at >= since)
    return where


def job_rows(db: Database, *, queue: str | None = None, since: float | None = None) -> list[tuple[Any, ...]]:
    """One tuple per job (``JOB_COLUMNS``), oldest first."""
    query = sa.select(*(jobs.c[c] for c in JOB_COLUMNS)).where(*_job_filter(queue, since)).order_by(jobs.c.created_at)
    with db.read() as conn:
        return [tuple(row) for row in conn.execute(query)]


def attempt_rows(db: Database, *, queue: str | None = None, since: float | None = None) -> list[tuple[Any, ...]]:
    """One tuple per finished attempt (``ATTEMPT_COLUMNS``) of the jobs :func:`job_rows` returns."""
    where = _job_filter(queue, since)
    of_jobs = [attempts.c.job_id.in_(sa.select(jobs.c.id).where(*where))] if where else []
    found = history(("id", *ATTEMPT_COLUMNS), attempts_where=of_jobs, jobs_where=where)
    # In the order they ended; an attempt's row before a completion its job's row records.
    order = (found.c.finished_at, found.c.id.is_(None), found.c.id)
    query = sa.select(*(found.c[c] for c in ATTEMPT_COLUMNS)).order_by(*order)
    with db.read() as conn:
        return [tuple(row) for row in conn.execute(query)]


def dlq_errors(db: Database, *, queue: str | None = None) -> list[tuple[Any, ...]]:
    """(error_type, jobs, first_failed, last_failed, example message, example reason) over
    the FAILED jobs, by the error of each job's last attempt."""
    last = sa.and_(attempts.c.job_id == jobs.c.id, attempts.c.number == jobs.c.attempts)
    query = (
        sa.select(
            attempts.c.error_type,
            sa.func.count().label("jobs"),
            sa.func.min(jobs.c.finished_at),
            sa.func.max(jobs.c.finished_at),
            sa.func.max(attempts.c.error_message),
            sa.func.max(jobs.c.dead_letter_reason),
        )
        .select_from(jobs.join(attempts, last))
        .where(jobs.c.status == JobStatus.FAILED.value)
        .group_by(attempts.c.error_type)
        .order_by(sa.desc("jobs"))
    )
    if queue is not None:
        query = query.where(jobs.c.queue == queue)
    with db.read() as conn:
        return [(row[0] or "unknown", *row[1:]) for row in conn.execute(query)]


def status_counts(db: Database, queue: str) -> dict[str, int]:
    """{status: jobs} in one queue."""
    query = sa.select(jobs.c.status, sa.func.count()).where(jobs.c.queue == queue).group_by(jobs.c.status)
    with db.read() as conn:
        return {str(s): int(n) for s, n in conn.execute(query)}
