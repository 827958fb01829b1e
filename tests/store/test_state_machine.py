"""A hypothesis state machine drives random sequences of submit / claim / heartbeat / ack /
fail / lease expiry and rescue / requeue / force-success / cancel (of a pending job, and the
request to cancel a running one, then its cancel ack) against the real store
(SQLite and PostgreSQL) on an injected clock, and checks the lease invariants after every
step:

- every job has one known status, and ``attempts <= max_retries + 1``;
- a job is RUNNING exactly when it holds a lease (token, owner, expiry);
- a stale lease (a token that is no longer the job's) changes nothing: ack, fail and
  heartbeat with it are refused and leave the row as it was;
- a job in a terminal state stays terminal unless it is requeued;
- after a rescue, no RUNNING job has an expired lease.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule, run_state_machine_as_test

from queuelab import FakeClock, InvalidTransition, JobStatus, LeaseLost, Queue
from queuelab.models import AttemptOutcome, Lease, RetryPolicy
from queuelab.policy import Cancel, Complete, Errored, decide, decide_for
from queuelab.store.schema import jobs
from queuelab.testing import internals

POLICY = RetryPolicy(base_seconds=1.0, factor=2.0, max_seconds=8.0, jitter=0.0)
TERMINAL = {JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}
WORKERS = ("w1", "w2")
pytestmark = pytest.mark.slow


def rows(q: Queue) -> dict[str, dict[str, Any]]:
    query = sa.select(
        jobs.c.id,
        jobs.c.status,
        jobs.c.attempts,
        jobs.c.max_retries,
        jobs.c.lease_token,
        jobs.c.lease_owner,
        jobs.c.lease_expires_at,
        jobs.c.run_at,
        jobs.c.cancel_requested_at,
    )
    with internals(q).db.read() as conn:
        return {r["id"]: dict(r) for r in conn.execute(query).mappings()}


class LeaseMachine(RuleBasedStateMachine):
    q: Queue
    clock: FakeClock

    job_ids = Bundle("job_ids")
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        with internals(self.q).db.write() as conn:  # every example starts from an empty store
            conn.execute(sa.text("DELETE FROM queuelab_attempts"))
            conn.execute(sa.text("DELETE FROM queuelab_actions"))
            conn.execute(jobs.delete())
        self.before = rows(self.q)
        self.requeued: set[str] = set()

    # -- rules ------------------------------------------------------------------------------

    @rule(target=job_ids, max_retries=st.integers(0, 2), lease=st.sampled_from([5.0, 30.0]))
    def submit(self, max_retries: int, lease: float) -> str:
        return self.q.submit("simulate", max_retries=max_retries, lease_seconds=lease).id

    @rule(target=leases, worker=st.sampled_from(WORKERS), limit=st.integers(1, 3))
    def claim(self, worker: str, limit: int) -> Any:
        now = self.clock.now()
        taken = internals(self.q).leases.claim(worker, None, limit, now)
        after = rows(self.q)
        for lease in taken:
            was, row = self.before[lease.job_id], after[lease.job_id]
            assert was["status"] == "PENDING"
            assert was["run_at"] <= now, "a job backing off or scheduled later is not claimed"
            assert row["status"] == "RUNNING"
            assert row["lease_token"] == lease.token
            assert row["attempts"] == was["attempts"] + 1 == lease.attempt
        return multiple(*taken)  # each lease, held or (later) stale, for the rules below

    @rule(lease=leases)
    def heartbeat(self, lease: Lease) -> None:
        current = self._holds(lease)
        lost = internals(self.q).leases.heartbeat([lease], self.clock.now())
        row = rows(self.q)[lease.job_id]
        if current:
            assert lost == []
            assert row["lease_expires_at"] == pytest.approx(self.clock.now() + lease.lease_seconds)
        else:
            assert lost == [lease]
            assert row == self.before[lease.job_id], "a stale heartbeat changed the row"

    @rule(lease=leases, worker=st.sampled_from(WORKERS))
    def ack(self, lease: Lease, worker: str) -> None:
        self._finish(lease, Complete(result=None), worker, expected="COMPLETED")

    @rule(lease=leases, worker=st.sampled_from(WORKERS))
    def fail(self, lease: Lease, worker: str) -> None:
        error = Errored(AttemptOutcome.FAILED, "RuntimeError", "boom")
        now = self.clock.now()
        decision = decide(
            error, attempt=lease.attempt, max_retries=lease.max_retries, policy=POLICY, now=now, unit_random=0.5
        )
        asked = self.before[lease.job_id]["cancel_requested_at"] is not None
        expected = "FAILED" if lease.attempt > lease.max_retries else "CANCELLED" if asked else "PENDING"
        self._finish(lease, decision, worker, expected=expected)

    @rule(lease=leases, worker=st.sampled_from(WORKERS))
    def ack_cancelled(self, lease: Lease, worker: str) -> None:
        held, was = self._holds(lease), self.before[lease.job_id]["attempts"]
        self._finish(lease, Cancel("cancelled while running"), worker, expected="CANCELLED")
        if held:
            assert rows(self.q)[lease.job_id]["attempts"] == was - 1, "a cancelled attempt is not spent"

    @rule(seconds=st.sampled_from([0.5, 3.0, 10.0, 40.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def rescue(self) -> None:
        now = self.clock.now()

        def decider(lease: Lease, error: Errored) -> Any:
            return decide_for(lease, error, policy=POLICY, now=now, unit_random=0.5)

        internals(self.q).leases.rescue(now, decider, limit=1000)
        for row in rows(self.q).values():
            if row["status"] == "RUNNING":
                assert row["lease_expires_at"] >= now, "an expired lease survived a rescue"

    @rule(job_id=job_ids)
    def requeue(self, job_id: str) -> None:
        self._admin(job_id, self.q.requeue, {"FAILED", "COMPLETED", "CANCELLED"}, "PENDING")
        self.requeued.add(job_id)

    @rule(job_id=job_ids)
    def force_success(self, job_id: str) -> None:
        self._admin(job_id, self.q.force_success, {"FAILED", "COMPLETED"}, "COMPLETED")

    @rule(job_id=job_ids)
    def cancel(self, job_id: str) -> None:
        was = self.before[job_id]
        if was["status"] != "RUNNING":
            self._admin(job_id, self.q.cancel, {"PENDING"}, "CANCELLED")
            return
        self.q.cancel(job_id)  # a request: the job runs on until its worker acks it
        row = rows(self.q)[job_id]
        assert row["status"] == "RUNNING"
        assert row["lease_token"] == was["lease_token"]
        assert row["cancel_requested_at"] == (was["cancel_requested_at"] or self.clock.now())

    # -- helpers ----------------------------------------------------------------------------

    def _holds(self, lease: Lease) -> bool:
        row = self.before[lease.job_id]
        return bool(row["status"] == "RUNNING" and row["lease_token"] == lease.token)

    def _finish(self, lease: Lease, decision: Any, worker: str, expected: str) -> None:
        if self._holds(lease):
            internals(self.q).leases.ack(lease, decision, worker, self.clock.now())
            assert rows(self.q)[lease.job_id]["status"] == expected
        else:
            with pytest.raises(LeaseLost):
                internals(self.q).leases.ack(lease, decision, worker, self.clock.now())
            assert rows(self.q)[lease.job_id] == self.before[lease.job_id], "a stale ack changed the row"

    def _admin(self, job_id: str, action: Any, allowed: set[str], expected: str) -> None:
        status = self.before[job_id]["status"]
        if status in allowed:
            action(job_id)
            assert rows(self.q)[job_id]["status"] == expected
        else:
            with pytest.raises(InvalidTransition):
                action(job_id)
            assert rows(self.q)[job_id] == self.before[job_id]

    # -- invariants, after every step --------------------------------------------------------

    @invariant()
    def leases_match_statuses(self) -> None:
        now_rows = rows(self.q)
        for job_id, row in now_rows.items():
            assert row["status"] in {s.value for s in JobStatus}
            assert 0 <= row["attempts"] <= row["max_retries"] + 1
            held = (row["lease_token"], row["lease_owner"], row["lease_expires_at"])
            if row["status"] == "RUNNING":
                assert None not in held, f"RUNNING job {job_id} without a lease"
            else:
                assert held == (None, None, None), f"{row['status']} job {job_id} still holds a lease"
            was = self.before.get(job_id)
            if was is not None and was["status"] in TERMINAL and job_id not in self.requeued:
                assert row["status"] in TERMINAL, f"terminal job {job_id} went back to {row['status']}"
        self.before = now_rows
        self.requeued.clear()


@pytest.mark.timeout(600)
def test_the_lease_state_machine_keeps_its_invariants(db_url: str) -> None:
    clock = FakeClock()
    q = Queue(db_url, clock=clock)
    LeaseMachine.q, LeaseMachine.clock = q, clock
    try:
        run_state_machine_as_test(
            LeaseMachine,
            settings=settings(
                max_examples=60,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                database=None,
            ),
        )
    finally:
        q.close()
