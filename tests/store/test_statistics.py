"""PostgreSQL's statistics after a bulk load: the claim must not sort the pending set."""

from __future__ import annotations

import time

from queuelab import Queue, Submission
from queuelab.store import statements as st
from queuelab.store.statistics import refresh_if_stale
from queuelab.testing import internals
from tests.support.helpers import wait_until


def claim_plan(q: Queue) -> str:
    """The plan of a worker's claim (it always names its tasks), without running it."""
    db = internals(q).db
    compiled = st.claim_statement(0, 1, 0).compile(dialect=db.engine.dialect)
    given = {"p_now": time.time(), "p_limit": 1, "p_token": "t", "p_owner": "w", "p_tasks_0": "simulate"}
    params = {name: given.get(name, value) for name, value in compiled.params.items()}
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN " + compiled.string.replace("%%", "%"), params).all()
    return "\n".join(row[0] for row in rows)


def test_a_bulk_load_into_a_fresh_table_is_analyzed_so_the_claim_reads_the_index(postgres_url: str) -> None:
    q = Queue(postgres_url)
    with internals(q).db.write() as conn:  # this test, not autovacuum, must be the one to analyze
        conn.exec_driver_sql("ALTER TABLE queuelab_jobs SET (autovacuum_enabled = false)")
    for _ in range(12):
        q.submit_many([Submission(task="simulate", user_id=f"u{i % 10}") for i in range(1000)])
    assert "Sort" in claim_plan(q)  # no statistics: the planner sorts every pending job
    wait_until(lambda: refresh_if_stale(internals(q).db), timeout=60, what="the table to be analyzed", interval=0.5)
    plan = claim_plan(q)
    assert "Sort" not in plan, plan
    assert "queuelab_jobs_claim" in plan, plan
    assert refresh_if_stale(internals(q).db) is False  # current now: not analyzed again
    q.close()
