"""How the store reads: on PostgreSQL each statement on its own (no BEGIN, no COMMIT: two
round trips fewer, and no session left idle in a transaction), on SQLite one snapshot per
read."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from queuelab import JobStatus, Queue
from queuelab.store.schema import IS_PENDING

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
        assert len(autocommit) >= 5  # the job, its history, its actions, the list, the counts
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
