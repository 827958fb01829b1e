"""The job path's statements run on SQLite's cursor give what SQLAlchemy would."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from queuelab.models import JobStatus
from queuelab.queue import Queue
from queuelab.store import direct
from queuelab.store import statements as st
from queuelab.store.schema import jobs


def test_a_direct_claim_returns_the_rows_and_types_sqlalchemy_would(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        q.submit("simulate", {"duration": 0})
        q.submit("simulate", {"duration": 0})
        db = q.runtime.db
        params = {"p_now": 2e9, "p_limit": 1, "p_token": "t", "p_owner": "w", "p_tasks_0": "simulate"}
        with db.write() as conn:
            fast = direct.execute(conn, db, st.claim_statement(0, 1, 0), params)
            slow = conn.execute(st.claim_statement(0, 1, 0), {**params, "p_token": "u"}).all()
        assert direct._compiled(db, st.claim_statement(0, 1, 0), params) is not None  # it took the direct path
        assert fast.rowcount == 1
        assert len(fast.rows) == len(slow) == 1
        assert fast.rows[0]._fields == tuple(slow[0]._fields)
        assert [type(v) for v in fast.rows[0]] == [type(v) for v in slow[0]]
        assert fast.rows[0].id != slow[0].id
        assert fast.rows[0].attempts == slow[0].attempts == 1


def test_a_direct_ack_counts_only_a_held_lease(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        job = q.submit("simulate")
        (lease,) = q.runtime.leases.claim("w", None, 1, 2e9)
        db = q.runtime.db
        ack = {"p_id": job.id, "p_now": 2e9 + 1, "p_started": 2e9, "p_result": "null"}
        with db.write() as conn:
            assert direct.execute(conn, db, st.COMPLETE, {**ack, "p_token": "not-mine"}).rowcount == 0
            assert direct.execute(conn, db, st.COMPLETE, {**ack, "p_token": lease.token}).rowcount == 1
        assert q.get(job.id).status == JobStatus.COMPLETED


def test_a_statement_run_from_its_sql_returns_what_sqlalchemy_would(postgres_url: str) -> None:
    """PostgreSQL's execute_sql: the statement's constants (an enum among them) bound as
    SQLAlchemy binds them, the same rows back; a statement with parameters rendered at
    execution, or a parameter left unset, is refused rather than run wrong."""
    with Queue(postgres_url) as q:
        q.submit("simulate", user_id="ann")
        q.submit("simulate", user_id="bob")
        db = q.runtime.db
        query = sa.select(jobs.c.user_id, jobs.c.attempts).where(
            jobs.c.status == JobStatus.PENDING, jobs.c.user_id != sa.bindparam("p_user")
        )
        with db.read() as conn:
            fast = direct.execute_sql(conn, db, query, {"p_user": "bob"})
            slow = conn.execute(query, {"p_user": "bob"}).all()
            assert [tuple(row) for row in fast] == [tuple(row) for row in slow] == [("ann", 0)]
            assert fast[0].user_id == "ann"
            literal = query.limit(sa.bindparam("n", literal_execute=True))
            with pytest.raises(ValueError, match="rendered at execution"):
                direct.execute_sql(conn, db, literal, {"p_user": "bob", "n": 1})
            unset = query.where(jobs.c.queue == sa.bindparam("p_queue"))  # not given: not bound as NULL
            with pytest.raises(ValueError, match="no value for the bind parameter 'p_queue'"):
                direct.execute_sql(conn, db, unset, {"p_user": "bob"})
