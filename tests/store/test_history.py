"""A completing attempt is recorded in its job's row, not in the attempts table (schema
revision 14, queuelab.store.history): every reader still sees it once, in its place, and a
requeue or a forced success of a COMPLETED job keeps it. Both databases."""

from __future__ import annotations

import sqlalchemy as sa

from queuelab import FakeClock, JobStatus, Queue
from queuelab.models import AttemptOutcome
from queuelab.policy import Complete, Errored, Retry
from queuelab.store.reports import Reports
from queuelab.store.schema import attempts, jobs
from queuelab.testing import internals

WORKER = "history-test"


def run_once(q: Queue, *, fail: bool = False) -> None:
    """Claim every runnable job and complete it (or fail it, to be retried at once)."""
    runtime = internals(q)
    for lease in runtime.leases.claim(WORKER, None, 100, q.clock.now()):
        error = Errored(AttemptOutcome.FAILED, "KeyError", "no such key")
        decision = Retry(q.clock.now(), error) if fail else Complete({"ok": True})
        runtime.leases.ack(lease, decision, WORKER, q.clock.now())  # LeaseLost if it were not held


def attempt_rows(q: Queue, job_id: str) -> list[str]:
    with internals(q).db.read() as conn:
        query = sa.select(attempts.c.outcome).where(attempts.c.job_id == job_id).order_by(attempts.c.id)
        return list(conn.execute(query).scalars())


def test_a_completion_writes_no_attempt_row_and_the_history_still_shows_it(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate")
    clock.advance(1)
    run_once(queue, fail=True)
    clock.advance(1)
    run_once(queue)
    assert attempt_rows(queue, job.id) == ["FAILED"]  # the completing attempt has no row
    done = queue.get(job.id)
    assert done.status is JobStatus.COMPLETED
    assert [(a.number, a.outcome, a.worker_id) for a in done.history] == [
        (1, AttemptOutcome.FAILED, WORKER),
        (2, AttemptOutcome.COMPLETED, WORKER),
    ]
    assert done.history[-1].finished_at == done.finished_at
    assert done.history[-1].started_at == done.started_at
    assert done.lease_owner is None  # the lease is gone; its owner is kept as the completer


def test_the_stats_series_and_timeline_count_each_completion_once(queue: Queue, clock: FakeClock) -> None:
    ids = [queue.submit("simulate").id for _ in range(3)]
    clock.advance(1)
    run_once(queue)
    old = queue.submit("simulate").id  # completed the way revisions before 14 wrote it: a row
    with internals(queue).db.write() as conn:
        now = clock.now()
        conn.execute(
            jobs.update()
            .where(jobs.c.id == old)
            .values(status="COMPLETED", attempts=1, started_at=now, finished_at=now, completed_by=None)
        )
        conn.execute(
            attempts.insert().values(
                job_id=old, number=1, worker_id="old", outcome="COMPLETED", started_at=now, finished_at=now
            )
        )
    assert queue.stats().outcomes_last_minute["COMPLETED"] == 4
    assert sum(queue.completed_series(10)) == 4
    timeline = queue.timeline_rows()
    assert sorted(row[0] for row in timeline.attempts) == sorted([*ids, old])
    assert len(queue.get(old).history) == 1
    assert len(Reports(internals(queue).db).attempt_rows(10)) == 4  # the lab's attempts_frame


def test_a_requeued_completed_job_keeps_its_completion_in_its_history(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate")
    clock.advance(1)
    run_once(queue)
    queue.requeue(job.id, by="ops")
    assert attempt_rows(queue, job.id) == ["COMPLETED"]  # written as a row before the row forgot it
    assert [a.outcome for a in queue.get(job.id).history] == [AttemptOutcome.COMPLETED]
    clock.advance(1)
    run_once(queue)
    again = queue.get(job.id)
    assert [(a.number, a.outcome) for a in again.history] == [
        (1, AttemptOutcome.COMPLETED),
        (1, AttemptOutcome.COMPLETED),
    ]
    assert queue.stats().outcomes_last_minute["COMPLETED"] == 2


def test_a_forced_success_keeps_the_completion_and_adds_no_attempt(queue: Queue, clock: FakeClock) -> None:
    ran = queue.submit("simulate")
    clock.advance(1)
    run_once(queue)
    forced = queue.force_success(ran.id, by="ops")  # a COMPLETED job forced again
    assert forced.forced
    assert [a.outcome for a in forced.history] == [AttemptOutcome.COMPLETED]
    assert attempt_rows(queue, ran.id) == ["COMPLETED"]
    with internals(queue).db.read() as conn:
        assert conn.execute(sa.select(jobs.c.completed_by).where(jobs.c.id == ran.id)).scalar() is None
