"""Cancelling a RUNNING job, in the store, on both databases: the cancel is a request on the
row (and an action in the history) until the worker acks it CANCELLED, its attempt unspent;
a retry, a rescue or a requeue that meets a request does what a cancelled job needs."""

from __future__ import annotations

import pytest

from queuelab import FakeClock, InvalidTransition, JobStatus, LeaseLost, Queue
from queuelab.models import ActionKind, AttemptOutcome, Lease
from queuelab.policy import Cancel, Complete, Errored, decide_for
from queuelab.testing import internals
from tests.store.test_leases import POLICY, WORKER, claim, fail_decision


def running(q: Queue, **options: object) -> Lease:
    q.submit("simulate", **options)  # type: ignore[arg-type]
    (lease,) = claim(q)
    return lease


def test_a_cancel_of_a_running_job_is_a_request_until_its_worker_acks_it(queue: Queue, clock: FakeClock) -> None:
    lease = running(queue)
    clock.advance(2)
    asked = queue.cancel(lease.job_id, by="ops-ann")
    assert (asked.status, asked.lease_token, asked.attempts) == (JobStatus.RUNNING, lease.token, 1)
    assert asked.cancel_requested_at is not None
    assert asked.cancel_requested_at.timestamp() == clock.now()
    assert [(a.kind, a.by, a.from_status) for a in asked.actions] == [
        (ActionKind.CANCELLED, "ops-ann", JobStatus.RUNNING)
    ]
    clock.advance(1)
    again = queue.cancel(lease.job_id, by="ops-bob")  # a second request changes nothing
    assert (again.cancel_requested_at, len(again.actions)) == (asked.cancel_requested_at, 1)
    assert internals(queue).leases.cancel_requests([lease]) == [lease]

    internals(queue).leases.ack(lease, Cancel("cancelled while running; the task stopped"), WORKER, clock.now())
    done = queue.get(lease.job_id)
    assert (done.status, done.attempts, done.lease_token) == (JobStatus.CANCELLED, 0, None)
    assert done.finished_at is not None
    assert done.finished_at.timestamp() == clock.now()
    (row,) = done.history
    assert (row.outcome, row.error_type, row.error_message) == (
        AttemptOutcome.CANCELLED,
        None,
        "cancelled while running; the task stopped",
    )
    assert done.errors == []  # a cancel is no error
    with pytest.raises(LeaseLost):  # the attempt's own late ack changes nothing
        internals(queue).leases.ack(lease, Complete(1), WORKER, clock.now())
    with pytest.raises(InvalidTransition, match=f"job {lease.job_id} is CANCELLED; only PENDING or RUNNING"):
        queue.cancel(lease.job_id)


def test_only_the_jobs_with_a_request_and_their_current_lease_are_reported(queue: Queue) -> None:
    first, second = running(queue), running(queue)
    queue.cancel(second.job_id)
    leases = internals(queue).leases
    assert leases.cancel_requests([first, second]) == [second]
    assert leases.cancel_requests([]) == []
    stale = Lease(**{**{f: getattr(second, f) for f in Lease.__dataclass_fields__}, "token": "not-ours"})
    assert leases.cancel_requests([stale]) == []


def test_a_job_that_completes_before_its_worker_sees_the_request_stays_completed(
    queue: Queue, clock: FakeClock
) -> None:
    lease = running(queue)
    queue.cancel(lease.job_id)
    internals(queue).leases.ack(lease, Complete({"done": True}), WORKER, clock.now())
    done = queue.get(lease.job_id)
    assert (done.status, done.result, done.attempts) == (JobStatus.COMPLETED, {"done": True}, 1)
    with pytest.raises(InvalidTransition, match="is COMPLETED"):  # and the cancel that comes after: refused
        queue.cancel(lease.job_id)


def test_a_failure_after_a_request_is_not_retried(queue: Queue, clock: FakeClock) -> None:
    lease = running(queue, max_retries=3)
    queue.cancel(lease.job_id)
    internals(queue).leases.ack(lease, fail_decision(queue, lease), WORKER, clock.now())  # a Retry
    done = queue.get(lease.job_id)
    assert (done.status, done.attempts) == (JobStatus.CANCELLED, 1)  # it ran and failed: that attempt counts
    assert done.finished_at is not None
    assert done.history[-1].outcome == AttemptOutcome.FAILED
    assert claim(queue) == []


def test_a_rescue_ends_a_cancelled_job_cancelled_not_retried(queue: Queue, clock: FakeClock) -> None:
    lease = running(queue, max_retries=3, lease_seconds=5)
    queue.cancel(lease.job_id, by="ops")
    clock.advance(10)

    def decider(expired: Lease, error: Errored) -> object:
        return decide_for(expired, error, policy=POLICY, now=clock.now(), unit_random=0.5)

    assert internals(queue).leases.rescue(clock.now(), decider) == 1  # type: ignore[arg-type]
    done = queue.get(lease.job_id)
    assert (done.status, done.attempts) == (JobStatus.CANCELLED, 0)
    assert done.history[-1].outcome == AttemptOutcome.CANCELLED
    assert "stopped heartbeating" in (done.history[-1].error_message or "")
    assert claim(queue) == []


def test_a_requeued_cancelled_job_has_no_request_left(queue: Queue, clock: FakeClock) -> None:
    lease = running(queue, max_retries=3)
    queue.cancel(lease.job_id)
    internals(queue).leases.ack(lease, Cancel("stopped"), WORKER, clock.now())
    again = queue.requeue(lease.job_id)
    assert (again.status, again.cancel_requested_at) == (JobStatus.PENDING, None)
    (second,) = claim(queue)
    internals(queue).leases.ack(second, fail_decision(queue, second), WORKER, clock.now())
    assert queue.get(lease.job_id).status == JobStatus.PENDING  # retried as usual: the old request is gone


def test_explain_says_a_cancel_waits_for_the_worker(queue: Queue, clock: FakeClock) -> None:
    lease = running(queue)
    assert queue.explain(lease.job_id).reason == "running"
    queue.cancel(lease.job_id)
    why = queue.explain(lease.job_id)
    assert why.reason == "cancel_requested"
    assert why.message.startswith("cancel requested at ")
    assert why.message.endswith(f"waiting for the worker {WORKER} to stop it")


def test_a_job_handed_back_at_a_stop_after_a_request_ends_cancelled(queue: Queue, clock: FakeClock) -> None:
    lease = running(queue)
    queue.cancel(lease.job_id)
    assert internals(queue).leases.release(lease, WORKER, clock.now())
    done = queue.get(lease.job_id)
    assert (done.status, done.attempts, done.history[-1].outcome) == (
        JobStatus.CANCELLED,
        0,
        AttemptOutcome.RELEASED,
    )
    assert done.finished_at is not None
    assert claim(queue) == []
