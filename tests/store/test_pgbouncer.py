"""queuelab through PgBouncer in transaction pooling mode (``postgres_pooling="transaction"``):
submit, claim, ack, rescue, limits and the running quota, dependencies, waiting, the API; and
the wake-ups, which need a session of their own: through ``listen_url`` (a direct
connection) idle workers wake at each submit, and without it they poll (with a warning).
Each test has a database of its own, reached through the pooler."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from queuelab import FakeClock, JobStatus, Queue, QuotaExceeded
from queuelab.api import create_app
from queuelab.policy import Complete
from queuelab.testing import internals

LONG = 120.0  # a wait that ends this way failed: nothing woke the worker or the waiter


@pytest.fixture
def pooled(pgbouncer_url: str, clock: FakeClock) -> Iterator[Queue]:
    """A queue through the pooler, on the fake clock (claims and acks made by hand)."""
    q = Queue(pgbouncer_url, postgres_pooling="transaction", clock=clock)
    q.task(name="step")(lambda: None)
    yield q
    q.close()


def test_submit_claim_ack_and_rescue_through_the_pooler(pooled: Queue, clock: FakeClock) -> None:
    leases = internals(pooled).leases
    done, lost = pooled.submit("step"), pooled.submit("step", lease_seconds=5)
    for _ in range(10):  # more than psycopg's 5 executions before it would prepare a statement
        pooled.get(done.id)
    claimed = {lease.job_id: lease for lease in leases.claim("w", None, 10, clock.now())}
    leases.ack(claimed[done.id], Complete({"ok": 1}), "w", clock.now())
    clock.advance(60)
    assert leases.rescue(clock.now(), internals(pooled).decide) == 1
    assert pooled.get(done.id).result == {"ok": 1}
    assert pooled.get(lost.id).status is JobStatus.PENDING  # back for a retry


def test_limits_quotas_and_dependencies_through_the_pooler(pooled: Queue, clock: FakeClock) -> None:
    pooled.set_limits("alice", max_active=3, max_running=1)
    first = pooled.submit("step", user_id="alice")
    child = pooled.submit("step", user_id="alice", after=[first])
    pooled.submit("step", user_id="alice")
    with pytest.raises(QuotaExceeded):
        pooled.submit("step", user_id="alice")
    leases = internals(pooled).leases
    (running,) = leases.claim("w", None, 10, clock.now())  # the running quota: one at a time
    assert leases.claim("w", None, 10, clock.now()) == []
    assert running.job_id == first.id  # the head of alice's line; the child waits for it
    leases.ack(running, Complete(None), "w", clock.now())
    assert pooled.get(child.id).waiting_for == 0  # released by the trigger, through the pooler


def test_with_a_listen_url_an_idle_worker_wakes_at_each_submit(pgbouncer_url: str, postgres_database_url: str) -> None:
    # Workers poll an hour apart: only the NOTIFY heard on the direct connection starts these jobs,
    # and only the job's ending heard there returns the waits.
    q = Queue(
        pgbouncer_url, postgres_pooling="transaction", listen_url=postgres_database_url, poll_interval_seconds=3600
    )
    q.task(name="step")(lambda: None)
    try:
        with q.worker(1):
            done = [q.wait(q.submit("step"), timeout=LONG) for _ in range(5)]
    finally:
        q.close()
    assert {job.status for job in done} == {JobStatus.COMPLETED}


def test_without_a_listen_url_workers_poll_and_say_so(pgbouncer_url: str, caplog: pytest.LogCaptureFixture) -> None:
    q = Queue(pgbouncer_url, postgres_pooling="transaction", poll_interval_seconds=0.05)
    q.task(name="step")(lambda: None)
    try:
        with caplog.at_level(logging.WARNING, logger="queuelab.wakeup"), q.worker(1):
            done = [q.wait(q.submit("step"), timeout=LONG) for _ in range(3)]
    finally:
        q.close()
    assert {job.status for job in done} == {JobStatus.COMPLETED}
    assert "reached through a transaction pooler and no listen_url is set" in caplog.text


def test_the_api_through_the_pooler(pooled: Queue) -> None:
    with TestClient(create_app(pooled)) as client:
        ids = [client.post("/api/submit/", json={"user_id": "u", "payload": {}}).json()["job_id"] for _ in range(8)]
        statuses = {client.get(f"/api/status/{job_id}/").json()["status"] for job_id in ids}
        assert statuses == {"PENDING"}
        assert client.get("/api/stats/").json()["by_status"]["PENDING"] == 8
