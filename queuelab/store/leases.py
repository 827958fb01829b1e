"""The lease life cycle: claim → heartbeat → finish (complete / retry / dead-letter),
plus release on shutdown and rescue of leases whose worker vanished.

Every claim writes a fresh lease token. Heartbeat, finish and release match on the job id
*and* that token, so a worker whose lease was rescued can never overwrite the newer attempt:
its late ack matches nothing and raises :class:`LeaseLost`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.errors import LeaseLost
from queuelab.models import AttemptOutcome, JobStatus, Lease
from queuelab.policy import Complete, DeadLetter, Decision, Errored, Retry
from queuelab.store.database import Database
from queuelab.store.schema import attempts, jobs

RescueDecider = Callable[[Errored, int, int], Decision]  # (error, attempt, max_retries) -> decision

_CLAIMED = (
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
_NO_LEASE = {"lease_token": None, "lease_owner": None, "lease_expires_at": None}


class LeaseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(
        self,
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        now: float,
        *,
        tasks: Sequence[str] | None = None,
    ) -> list[Lease]:
        """Take up to ``limit`` runnable jobs in one statement, highest priority first, then
        oldest ``run_at``. ``tasks``: only jobs of these tasks (those the worker can run).

        PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers pass over rows another
        transaction is taking instead of waiting for it. SQLite has no row locks (SQLAlchemy
        drops the clause there): the ``BEGIN IMMEDIATE`` of :meth:`Database.write` holds the
        database write lock across the SELECT and the UPDATE instead.
        """
        token = str(uuid.uuid4())
        pick = sa.select(jobs.c.id).where(jobs.c.status == JobStatus.PENDING, jobs.c.run_at <= now)
        if queues is not None:
            pick = pick.where(jobs.c.queue.in_(queues))
        if tasks is not None:
            pick = pick.where(jobs.c.task.in_(tasks))
        pick = pick.order_by(jobs.c.priority.desc(), jobs.c.run_at, jobs.c.id).limit(limit)
        stmt = (
            jobs.update()
            .where(jobs.c.id.in_(pick.with_for_update(skip_locked=True).scalar_subquery()))
            .values(
                status=JobStatus.RUNNING,
                attempts=jobs.c.attempts + 1,
                lease_token=token,
                lease_owner=worker_id,
                lease_expires_at=sa.literal(now, sa.Double) + jobs.c.lease_seconds,
                started_at=now,
            )
            .returning(*_CLAIMED)
        )
        with self.db.write() as conn:
            rows = conn.execute(stmt).all()
        return [
            Lease(
                job_id=r.id,
                token=token,
                task=r.task,
                payload=json.loads(r.payload),
                user_id=r.user_id,
                queue=r.queue,
                attempt=r.attempts,
                max_retries=r.max_retries,
                lease_seconds=r.lease_seconds,
                timeout_seconds=r.timeout_seconds,
                started_at=now,
            )
            for r in rows
        ]

    def heartbeat(self, leases: Sequence[Lease], now: float) -> list[Lease]:
        """Extend the leases; return those that are no longer ours."""
        lost = []
        with self.db.write() as conn:
            for lease in leases:
                stmt = (
                    jobs.update()
                    .where(*_held(lease))
                    .values(lease_expires_at=sa.literal(now, sa.Double) + jobs.c.lease_seconds)
                )
                if conn.execute(stmt).rowcount != 1:
                    lost.append(lease)
        return lost

    def finish(self, lease: Lease, decision: Decision, worker_id: str, now: float) -> None:
        """Apply the decision for an attempt; :class:`LeaseLost` if the lease is gone."""
        with self.db.write() as conn:
            if not _apply(conn, lease.job_id, lease.token, lease.attempt, worker_id, lease.started_at, decision, now):
                raise LeaseLost(
                    f"job {lease.job_id}: the lease of attempt {lease.attempt} is no longer held by "
                    f"{worker_id} (it expired and was rescued, or was released); the result was discarded"
                )

    def release(self, lease: Lease, worker_id: str, now: float) -> bool:
        """Hand an unfinished job back to PENDING without spending an attempt (shutdown)."""
        stmt = (
            jobs.update()
            .where(*_held(lease))
            .values(status=JobStatus.PENDING, attempts=jobs.c.attempts - 1, **_NO_LEASE)
        )
        with self.db.write() as conn:
            if conn.execute(stmt).rowcount != 1:
                return False
            conn.execute(
                attempts.insert().values(
                    job_id=lease.job_id,
                    number=lease.attempt,
                    worker_id=worker_id,
                    outcome=AttemptOutcome.RELEASED,
                    started_at=lease.started_at,
                    finished_at=now,
                )
            )
            self.db.notify(conn, lease.queue)
        return True

    def rescue(self, now: float, decide: RescueDecider, limit: int = 100) -> int:
        """Fail the attempts whose lease expired (their worker stopped heartbeating): each
        becomes a retry or a dead letter like any other failure."""
        expired = (
            sa.select(
                jobs.c.id,
                jobs.c.lease_token,
                jobs.c.lease_owner,
                jobs.c.attempts,
                jobs.c.max_retries,
                jobs.c.started_at,
                jobs.c.lease_expires_at,
            )
            .where(jobs.c.status == JobStatus.RUNNING, jobs.c.lease_expires_at < now)
            .order_by(jobs.c.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rescued = 0
        with self.db.write() as conn:
            for row in conn.execute(expired).all():
                expired_at = datetime.fromtimestamp(row.lease_expires_at, UTC).isoformat(timespec="milliseconds")
                error = Errored(
                    AttemptOutcome.LOST,
                    "WorkerLost",
                    f"worker {row.lease_owner} stopped heartbeating; its lease expired at {expired_at}",
                )
                decision = decide(error, row.attempts, row.max_retries)
                rescued += _apply(
                    conn, row.id, row.lease_token, row.attempts, row.lease_owner, row.started_at, decision, now
                )
        return rescued

    def next_run_at(self, queues: Sequence[str] | None) -> float | None:
        """When the earliest pending job becomes runnable (for an idle worker's sleep)."""
        query = sa.select(sa.func.min(jobs.c.run_at)).where(jobs.c.status == JobStatus.PENDING)
        if queues is not None:
            query = query.where(jobs.c.queue.in_(queues))
        with self.db.read() as conn:
            return conn.execute(query).scalar()


def _held(lease: Lease) -> tuple[sa.ColumnElement[bool], ...]:
    return (jobs.c.id == lease.job_id, jobs.c.lease_token == lease.token, jobs.c.status == JobStatus.RUNNING)


def _apply(
    conn: Connection,
    job_id: str,
    token: str,
    attempt: int,
    worker_id: str | None,
    started_at: float | None,
    decision: Decision,
    now: float,
) -> bool:
    """One UPDATE guarded by the lease token, then the attempt's history row. False, and
    nothing written, when the token no longer matches."""
    match decision:
        case Complete(result):
            values = {"status": JobStatus.COMPLETED, "result": json.dumps(result), "finished_at": now}
            outcome, error = AttemptOutcome.COMPLETED, None
        case Retry(run_at, error):
            values = {"status": JobStatus.PENDING, "run_at": run_at}
            outcome = error.kind
        case DeadLetter(error, _reason):
            values = {"status": JobStatus.FAILED, "finished_at": now}
            outcome = error.kind
    stmt = jobs.update().where(jobs.c.id == job_id, jobs.c.lease_token == token, jobs.c.status == JobStatus.RUNNING)
    if conn.execute(stmt.values(**values, **_NO_LEASE)).rowcount != 1:
        return False
    conn.execute(
        attempts.insert().values(
            job_id=job_id,
            number=attempt,
            worker_id=worker_id,
            outcome=outcome,
            started_at=started_at,
            finished_at=now,
            error_type=error.error_type if error else None,
            error_message=error.message if error else None,
            traceback=error.traceback if error else None,
        )
    )
    return True
