"""How the store reads: on PostgreSQL each statement on its own (no BEGIN, no COMMIT: two
round trips fewer, and no session left idle in a transaction), on SQLite one snapshot per
read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from queuelab import FakeClock, JobStatus, Queue
from queuelab.models import ActionKind, AttemptOutcome
from queuelab.policy import DeadLetter, Errored, Retry
from queuelab.store.claims import ClaimFilter
from queuelab.store.leases import Finished
from queuelab.store.schema import IS_PENDING
from queuelab.testing import internals

PENDING = sa.select(sa.func.count()).where(IS_PENDING)


@pytest.mark.postgres
def test_on_postgresql_reads_run_outside_a_transaction(postgres_url: str) -> None:
    with Queue(postgres_url) as q:
        job = q.submit("simulate", {"duration": 0})
        autocommit: list[bool] = []

        def before(conn: sa.Connection, *args: object) -> None:
            autocommit.append(conn.connection.driver_connection.autocommit)  # type: ignore[union-attr]

        sa.event.listen(q.database.engine, "before_cursor_execute", before)
        try:
            found = q.get(job.id)
            listed = q.jobs(limit=10)
            stats = q.stats()
        finally:
            sa.event.remove(q.database.engine, "before_cursor_execute", before)
        assert found == job
        assert [j.id for j in listed] == [job.id]
        assert stats.by_status[JobStatus.PENDING.value] == 1
        assert len(autocommit) >= 3  # the job (with its history and actions), the list, the counts
        assert all(autocommit)


@pytest.mark.postgres
def test_on_postgresql_a_read_sees_each_commit_as_it_lands(postgres_url: str) -> None:
    """Each statement sees the commits made before it started (as READ COMMITTED did
    inside a transaction)."""
    with Queue(postgres_url) as q, q.database.read() as conn:
        assert conn.execute(PENDING).scalar_one() == 0
        q.submit("simulate")
        assert conn.execute(PENDING).scalar_one() == 1


def test_on_sqlite_a_read_is_one_snapshot(sqlite_url: str) -> None:
    with Queue(sqlite_url) as q:
        with q.database.read() as conn:
            assert conn.execute(PENDING).scalar_one() == 0
            q.submit("simulate")  # committed by another connection meanwhile
            assert conn.execute(PENDING).scalar_one() == 0
        with q.database.read() as conn:
            assert conn.execute(PENDING).scalar_one() == 1


def test_a_job_is_read_whole_with_its_attempts_and_actions_in_order(db_url: str) -> None:
    """A retried, dead-lettered, requeued and forced job reads back with every attempt
    (values exact, the traceback kept) and every manual action, oldest first; on PostgreSQL
    in ONE statement (one round trip, one snapshot), on SQLite in one read transaction."""
    clock = FakeClock(1_765_000_000.123457)  # no binary fraction: a float JSON must carry exactly
    with Queue(db_url, clock=clock) as q:
        job = q.submit("simulate", max_retries=1)
        leases = internals(q).leases
        times = []
        for decide in (
            lambda: Retry(
                clock.now() + 5, Errored(AttemptOutcome.FAILED, "ValueError", "first: é", 'Trace "1"\n\u2028é')
            ),
            lambda: DeadLetter(
                Errored(AttemptOutcome.FAILED, "KeyError", "second", "Traceback 2 🙂"), "out of retries"
            ),
        ):
            (lease,) = leases.claim("w-1", None, 1, clock.now())
            began = clock.now()
            clock.advance(0.1)
            times.append((began, clock.now()))
            lost, _ = leases.ack_and_claim([Finished(lease, decide(), clock.now())], ClaimFilter("w-1"), 0, clock.now())
            assert lost == []
            clock.advance(10.3)
        forced_at = clock.now()
        q.force_success(job.id, {"ok": True}, by="bob")
        clock.advance(1.7)
        q.requeue(job.id, by="alice")
        statements: list[str] = []

        def before(conn: sa.Connection, cursor: object, statement: str, *args: object) -> None:
            statements.append(statement)

        sa.event.listen(q.database.engine, "before_cursor_execute", before)
        try:
            found = q.get(job.id)
        finally:
            sa.event.remove(q.database.engine, "before_cursor_execute", before)
        if q.database.is_sqlite:  # the job, its attempts, its actions, in one read transaction
            assert [s.split()[0] for s in statements] == ["BEGIN", "SELECT", "SELECT", "SELECT"]
        else:
            assert len(statements) == 1
        assert (found.status, found.attempts, found.result, found.forced) == (JobStatus.PENDING, 0, None, False)
        assert [(a.number, a.outcome, a.error_type, a.error_message, a.traceback) for a in found.history] == [
            (1, AttemptOutcome.FAILED, "ValueError", "first: é", 'Trace "1"\n\u2028é'),
            (2, AttemptOutcome.FAILED, "KeyError", "second", "Traceback 2 🙂"),
        ]
        assert [(a.worker_id, a.started_at, a.finished_at) for a in found.history] == [
            ("w-1", when(began), when(ended)) for began, ended in times
        ]
        assert [(a.kind, a.by, a.from_status, a.at) for a in found.actions] == [
            (ActionKind.FORCED_SUCCESS, "bob", JobStatus.FAILED, when(forced_at)),
            (ActionKind.REQUEUED, "alice", JobStatus.COMPLETED, when(forced_at + 1.7)),
        ]


def when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
