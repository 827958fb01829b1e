"""A job's attempts, wherever each is recorded.

Every attempt that ends other than by completing its job has a row in ``queuelab_attempts``,
written by its ack (or its rescue, release, cancel). The attempt that completes a job has
none (schema revision 14): the job's row records it, ``completed_by`` naming its worker,
with its number (``attempts``), ``started_at`` and ``finished_at``. That row was a third of
a busy SQLite worker's turn (the insert and the table's two indexes: 102-114 µs a job
against 72-77 without it, measured on one slot thread) and a third of an ack's database
time on PostgreSQL, for the attempt nearly every job ends with.

This module reads both as one: :func:`completing_attempt` for a job's own history (the
last attempt, after its rows), :func:`history` for queries over many jobs' attempts, and
:func:`keep_completions` writes a row for the completing attempt of a job about to leave
COMPLETED (a requeue, a forced success), which then stops recording it.

A job completed before revision 14 has ``completed_by`` NULL and its attempt's row; a job
completed by force has no attempt at all: neither reads twice, nor is read where it never
ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.models import AttemptOutcome, JobStatus
from queuelab.store.schema import attempts, jobs

# The jobs whose row records their completing attempt.
RECORDS_COMPLETION = sa.and_(jobs.c.completed_by.is_not(None), jobs.c.status == sa.literal_column("'COMPLETED'"))
_OUTCOME = sa.literal(AttemptOutcome.COMPLETED.value, sa.String(16))


def completing_attempt(row: Mapping[Any, Any]) -> dict[str, Any] | None:
    """The completing attempt a job's row records, as an attempts row would give it; None if
    it records none."""
    worker = row.get("completed_by")
    if worker is None or row["status"] != JobStatus.COMPLETED.value:
        return None
    return {
        "id": None,
        "job_id": row["id"],
        "number": row["attempts"],
        "worker_id": worker,
        "outcome": AttemptOutcome.COMPLETED.value,
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "error_type": None,
        "error_message": None,
        "traceback": None,
    }


def _completions(columns: Sequence[str]) -> list[sa.ColumnElement[Any]]:
    """``columns`` of the attempts table, as the completing attempt of a job's row gives them."""
    source: dict[str, sa.ColumnElement[Any]] = {
        "id": sa.cast(sa.null(), attempts.c.id.type),
        "job_id": jobs.c.id,
        "number": jobs.c.attempts,
        "worker_id": jobs.c.completed_by,
        "outcome": _OUTCOME,
        "started_at": jobs.c.started_at,
        "finished_at": jobs.c.finished_at,
        "error_type": sa.cast(sa.null(), attempts.c.error_type.type),
        "error_message": sa.cast(sa.null(), attempts.c.error_message.type),
        "traceback": sa.cast(sa.null(), attempts.c.traceback.type),
    }
    return [source[name].label(name) for name in columns]


def history(
    columns: Sequence[str],
    *,
    attempts_where: Sequence[sa.ColumnElement[bool]] = (),
    jobs_where: Sequence[sa.ColumnElement[bool]] = (),
) -> sa.Subquery:
    """Every attempt: the rows of the attempts table matching ``attempts_where``, and the
    completing attempts of the jobs matching ``jobs_where`` (their filters written on each
    table's own columns, so that each half reads its own indexes), with ``columns`` of the
    attempts table."""
    rows = sa.select(*(attempts.c[name] for name in columns)).where(*attempts_where)
    done = sa.select(*_completions(columns)).where(RECORDS_COMPLETION, *jobs_where)
    return sa.union_all(rows, done).subquery("history")


def keep_completions(conn: Connection, ids: Sequence[str]) -> None:
    """Write the completing attempt of each of these jobs that records one as an attempts
    row, and clear its record: call before an update that takes a job out of COMPLETED."""
    if not ids:
        return
    names = ("job_id", "number", "worker_id", "outcome", "started_at", "finished_at")
    chosen = sa.and_(RECORDS_COMPLETION, jobs.c.id.in_(ids))
    conn.execute(attempts.insert().from_select(names, sa.select(*_completions(names)).where(chosen)))
    conn.execute(jobs.update().where(chosen).values(completed_by=None))
