"""The hot-path statements, built once with bind parameters.

Building a Core statement costs more than running it on SQLite; these are built at
import and reused, so each call only binds values (SQLAlchemy caches the compiled SQL).
"""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa
from sqlalchemy.sql.dml import Update

from queuelab.models import JobStatus
from queuelab.store.schema import IS_PENDING, attempts, jobs

NOW = sa.bindparam("p_now", type_=sa.Double)
_NO_LEASE = {"lease_token": None, "lease_owner": None, "lease_expires_at": None}
_HELD = (
    jobs.c.id == sa.bindparam("p_id"),
    jobs.c.lease_token == sa.bindparam("p_token"),
    jobs.c.status == JobStatus.RUNNING,
)

CLAIMED_COLUMNS = (
    jobs.c.id,
    jobs.c.task,
    jobs.c.payload,
    jobs.c.user_id,
    jobs.c.queue,
    jobs.c.attempts,
    jobs.c.max_retries,
    jobs.c.lease_seconds,
    jobs.c.timeout_seconds,
)


@cache
def claim_statement(by_queue: bool, by_task: bool) -> Update:
    """UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING ...

    PostgreSQL: SKIP LOCKED lets concurrent claimers pass over rows another transaction is
    taking instead of queueing behind it. SQLite has no row locks (SQLAlchemy drops the
    clause there without a word): the enclosing BEGIN IMMEDIATE holds the database write
    lock across the SELECT and the UPDATE, which serialises claimers instead.
    """
    pick = sa.select(jobs.c.id).where(IS_PENDING, jobs.c.run_at <= NOW)
    if by_queue:
        pick = pick.where(jobs.c.queue.in_(sa.bindparam("p_queues", expanding=True)))
    if by_task:
        pick = pick.where(jobs.c.task.in_(sa.bindparam("p_tasks", expanding=True)))
    pick = pick.order_by(jobs.c.priority.desc(), jobs.c.run_at).limit(sa.bindparam("p_limit"))
    return (
        jobs.update()
        .where(jobs.c.id.in_(pick.with_for_update(skip_locked=True).scalar_subquery()))
        .values(
            status=JobStatus.RUNNING,
            attempts=jobs.c.attempts + 1,
            lease_token=sa.bindparam("p_token"),
            lease_owner=sa.bindparam("p_owner"),
            lease_expires_at=NOW + jobs.c.lease_seconds,
            started_at=NOW,
        )
        .returning(*CLAIMED_COLUMNS)
    )


COMPLETE = (
    jobs.update()
    .where(*_HELD)
    .values(status=JobStatus.COMPLETED, result=sa.bindparam("p_result"), finished_at=NOW, **_NO_LEASE)
)
RETRY = jobs.update().where(*_HELD).values(status=JobStatus.PENDING, run_at=sa.bindparam("p_run_at"), **_NO_LEASE)
DEAD_LETTER = jobs.update().where(*_HELD).values(status=JobStatus.FAILED, finished_at=NOW, **_NO_LEASE)
RELEASE = jobs.update().where(*_HELD).values(status=JobStatus.PENDING, attempts=jobs.c.attempts - 1, **_NO_LEASE)
EXTEND = jobs.update().where(*_HELD).values(lease_expires_at=NOW + jobs.c.lease_seconds)
RECORD_ATTEMPT = attempts.insert()
