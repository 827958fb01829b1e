"""The worker driven one turn at a time (Worker.step, enforce_timeouts, leases_lost) and
maintenance ticked with fixed times: the job path with no thread and no sleep, on both
databases. Time is the queue's FakeClock and the monotonic times the tests pass."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from queuelab import FakeClock, JobStatus, Queue
from queuelab.api import create_app
from queuelab.errors import JobTimeout, WorkerLost
from queuelab.models import AttemptOutcome, RetryPolicy
from queuelab.policy import Succeeded
from queuelab.runtime.held import EntryState
from queuelab.runtime.maintenance import Maintenance
from queuelab.runtime.worker import Worker
from queuelab.testing import internals

PATIENT = RetryPolicy(base_seconds=100.0, factor=2.0, jitter=0.0)


@pytest.fixture
def q(make_queue: Callable[..., Queue], clock: FakeClock) -> Queue:
    return make_queue(clock=clock)


def statuses(q: Queue) -> dict[str, int]:
    return {k: v for k, v in q.stats().by_status.items() if v}


def test_a_step_claims_and_runs_and_the_next_step_acks(q: Queue) -> None:
    ran: list[int] = []

    @q.task(name="note")
    def note(n: int) -> int:
        ran.append(n)
        return n * 10

    jobs = [q.submit("note", {"n": n}) for n in range(3)]
    worker = Worker(internals(q), concurrency=2)
    assert len(worker.step(now=0.0)) == 2  # one job per slot, run on this thread
    assert statuses(q) == {"RUNNING": 2, "PENDING": 1}  # run, not acked yet
    assert len(worker.step(now=0.0)) == 1  # acks both and claims the last, in one turn
    assert statuses(q) == {"COMPLETED": 2, "RUNNING": 1}
    assert worker.step(now=0.0) == []  # acks the last; nothing left to claim
    assert sorted(ran) == [0, 1, 2]
    assert [q.get(job.id).result for job in jobs] == [0, 10, 20]
    assert worker.held.entries() == []


def test_on_auto_a_worker_claims_ahead_once_it_has_measured_its_jobs(q: Queue) -> None:
    """The default prefetch: the first turn claims for the free slot only; once jobs are
    seen to be short, a turn claims a batch ahead, whose starts are not recorded yet (a
    worker that died now would hand them back unspent)."""
    q.task(name="note")(lambda n: n)
    jobs = [q.submit("note", {"n": n}) for n in range(10)]
    worker = Worker(internals(q), concurrency=1)
    assert worker.prefetch is None
    assert [lease.job_id for lease in worker.step(now=0.0)] == [jobs[0].id]
    ran = worker.step(now=0.0)  # a job measured at 0 s: the rest, one to start and eight ahead
    assert [lease.job_id for lease in ran] == [job.id for job in jobs[1:]]
    recorded = [q.get(job.id).started_at is not None for job in jobs[1:]]
    assert recorded == [True] + [False] * 8
    worker.step(now=0.0)
    assert statuses(q) == {"COMPLETED": 10}
    assert all(q.get(job.id).started_at is not None for job in jobs)  # the acks wrote every start


def test_a_prefetching_worker_claims_beyond_its_slots_and_runs_them_in_claim_order(q: Queue) -> None:
    ran: list[int] = []
    q.task(name="note")(lambda n: ran.append(n))
    for n in range(8):
        q.submit("note", {"n": n}, priority=n % 3)
    worker = Worker(internals(q), concurrency=1, prefetch=4)
    assert len(worker.step(now=0.0)) == 1  # idle: for the free slot only
    assert len(worker.step(now=1.0)) == 5  # busy (an ack to write): one for the slot, four ahead
    assert len(worker.step(now=2.0)) == 2
    worker.flush()
    assert statuses(q) == {"COMPLETED": 8}
    by_priority = sorted(range(8), key=lambda n: -(n % 3))
    assert [n % 3 for n in ran] == [n % 3 for n in by_priority]


def test_a_stopped_worker_acks_what_finished_and_claims_nothing(q: Queue) -> None:
    q.task(name="noop")(lambda: None)
    for _ in range(3):
        q.submit("noop")
    worker = Worker(internals(q), concurrency=1)
    worker.step(now=0.0)
    worker.stop()
    assert worker.step(now=0.0) == []
    assert statuses(q) == {"COMPLETED": 1, "PENDING": 2}


def test_a_failing_job_retries_with_its_tasks_policy_then_is_dead_lettered_with_its_reason(
    q: Queue, clock: FakeClock
) -> None:
    @q.task(name="broken", max_retries=1, retry=PATIENT)
    def broken() -> None:
        raise ValueError("no good")

    job = q.submit("broken")
    worker = Worker(internals(q))
    worker.step(now=0.0)
    worker.flush()
    backing_off = q.get(job.id)
    assert backing_off.status == JobStatus.PENDING
    assert backing_off.run_at.timestamp() == pytest.approx(clock.now() + 100.0)  # the task's policy, not the settings'
    assert worker.step(now=1.0) == []  # not due yet
    clock.advance(100.0)
    assert len(worker.step(now=2.0)) == 1
    worker.flush()
    dead = q.get(job.id)
    assert dead.status == JobStatus.FAILED
    assert dead.dead_letter_reason == "ValueError after 2 runs (max_retries=1)"


def test_the_dead_letter_reason_is_shown_by_the_status_api_and_explain_and_cleared_by_a_requeue(q: Queue) -> None:
    @q.task(name="broken", max_retries=0)
    def broken() -> None:
        raise KeyError("gone")

    job = q.submit("broken")
    worker = Worker(internals(q))
    worker.step(now=0.0)
    worker.flush()
    reason = "KeyError after 1 run (max_retries=0)"
    with TestClient(create_app(q)) as client:
        assert client.get(f"/api/status/{job.id}/").json()["dead_letter_reason"] == reason
        assert client.get("/api/dlq/").json()["jobs"][0]["dead_letter_reason"] == reason
    explained = q.explain(job.id)
    assert reason in explained.message
    assert explained.details["reason"] == reason
    assert q.requeue(job.id).dead_letter_reason is None


def test_a_rescued_job_is_retried_with_its_tasks_policy(q: Queue, clock: FakeClock) -> None:
    """A job whose worker died is decided like any other failure: with its task's retry
    policy (here 100 s), not the settings' (0.5 s)."""
    q.task(name="careful", retry=PATIENT)(lambda: None)
    job = q.submit("careful", lease_seconds=10.0)
    assert internals(q).leases.claim("dead-worker", None, 1, clock.now())  # then it was SIGKILLed
    clock.advance(11.0)
    survivor = Worker(internals(q))
    assert Maintenance(internals(q), survivor.held, survivor.info()).rescue(clock.now()) == 1
    rescued = q.get(job.id)
    assert rescued.status == JobStatus.PENDING
    assert rescued.run_at.timestamp() == pytest.approx(clock.now() + 100.0)
    assert [(a.outcome, a.error_type) for a in rescued.history] == [(AttemptOutcome.LOST, WorkerLost.__name__)]


def test_a_job_past_its_timeout_is_failed_by_its_worker_with_its_tasks_policy(q: Queue, clock: FakeClock) -> None:
    q.task(name="slow", timeout_seconds=5.0, retry=PATIENT)(lambda: None)
    job = q.submit("slow")
    worker = Worker(internals(q))
    (entry,) = worker.held.add(internals(q).leases.claim(worker.id, None, 1, clock.now()), now=0.0)
    assert worker.held.start(entry, now=50.0)  # as a slot thread does
    worker.enforce_timeouts(55.0)
    assert q.get(job.id).status == JobStatus.RUNNING  # exactly at the limit: not yet
    worker.enforce_timeouts(55.5)
    assert entry.state is EntryState.ABANDONED
    timed_out = q.get(job.id)
    assert timed_out.status == JobStatus.PENDING
    assert timed_out.run_at.timestamp() == pytest.approx(clock.now() + 100.0)
    assert [(a.outcome, a.error_type) for a in timed_out.history] == [(AttemptOutcome.TIMEOUT, JobTimeout.__name__)]


def test_a_lease_found_lost_drops_a_waiting_job_and_warns_only_for_a_running_one(
    q: Queue, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A heartbeat that races the ack of a job that just finished finds its lease gone: that
    is no loss (the ack reports a real one itself), so nothing is logged for it."""
    q.task(name="noop")(lambda: None)
    for _ in range(3):
        q.submit("noop")
    worker = Worker(internals(q), concurrency=3)
    waiting, running, finished = worker.held.add(internals(q).leases.claim(worker.id, None, 3, clock.now()), now=0.0)
    worker.held.start(running, now=0.0)
    worker.held.start(finished, now=0.0)
    worker.held.finish(finished, internals(q).decide(finished.lease, Succeeded(None)), clock.now(), now=0.0)
    with caplog.at_level(logging.WARNING, logger="queuelab.worker"):
        worker.held.leases_lost([waiting.lease, running.lease, finished.lease])
    assert waiting.state is EntryState.DROPPED
    assert (running.state, finished.state) == (EntryState.RUNNING, EntryState.FINISHED)
    assert [r.getMessage().split(":")[1].strip() for r in caplog.records] == [
        "lease lost before it started here (it was rescued); not running it",
        "lease lost while running (it expired and was rescued); its result will be discarded",
    ]


def test_a_maintenance_tick_heartbeats_the_leases_that_used_a_third_of_their_time(q: Queue, clock: FakeClock) -> None:
    q.task(name="noop")(lambda: None)
    job = q.submit("noop", lease_seconds=30.0)
    worker = Worker(internals(q))
    worker.held.add(internals(q).leases.claim(worker.id, None, 1, clock.now()), now=0.0)
    maintenance = Maintenance(internals(q), worker.held, worker.info())
    expires = q.get(job.id).lease_expires_at
    clock.advance(5.0)
    maintenance.tick(clock.now(), 5.0)  # a sixth of the lease used: no heartbeat
    assert q.get(job.id).lease_expires_at == expires
    clock.advance(5.0)
    maintenance.tick(clock.now(), 10.0)
    extended = q.get(job.id).lease_expires_at
    assert extended is not None
    assert extended.timestamp() == pytest.approx(clock.now() + 30.0)
