"""Manual actions in a job's history, on both databases: requeue, force-success and cancel
are recorded with when, who, and the status they changed; a refused action records nothing;
pruning a job takes its actions with it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from queuelab import FakeClock, InvalidArgument, InvalidTransition, JobStatus, Queue
from queuelab.models import ActionKind, AttemptOutcome
from queuelab.policy import DeadLetter, Errored
from queuelab.store.schema import actions
from queuelab.testing import internals


def dead_letter(q: Queue, user: str = "u") -> str:
    job = q.submit("simulate", user_id=user, max_retries=0)
    fail_pending(q)
    return job.id


def fail_pending(q: Queue) -> None:
    """Claim the one pending job and send it to the dead-letter queue."""
    (lease,) = internals(q).leases.claim("w", None, 1, q.clock.now())
    failed = Errored(AttemptOutcome.FAILED, "ValueError", "boom")
    internals(q).leases.ack(lease, DeadLetter(failed, "no retries left"), "w", q.clock.now())


def test_each_manual_action_is_recorded_with_when_who_and_the_status_it_changed(queue: Queue, clock: FakeClock) -> None:
    job_id = dead_letter(queue)
    clock.advance(5)
    queue.requeue(job_id, by="ops-alice")
    clock.advance(5)
    queue.cancel(job_id, by="ops-bob")
    clock.advance(5)
    done = queue.requeue(job_id)  # no one named
    fail_pending(queue)
    clock.advance(5)
    queue.force_success(job_id, {"fixed": True}, by="ops-alice")
    queue.force_success(job_id, by="ops-carol")  # forcing a COMPLETED job again: recorded too
    found = queue.get(job_id).actions
    assert [(a.kind, a.by, a.from_status) for a in found] == [
        (ActionKind.REQUEUED, "ops-alice", JobStatus.FAILED),
        (ActionKind.CANCELLED, "ops-bob", JobStatus.PENDING),
        (ActionKind.REQUEUED, None, JobStatus.CANCELLED),
        (ActionKind.FORCED_SUCCESS, "ops-alice", JobStatus.FAILED),
        (ActionKind.FORCED_SUCCESS, "ops-carol", JobStatus.COMPLETED),
    ]
    start = found[0].at
    assert [a.at - start for a in found] == [timedelta(seconds=s) for s in (0, 5, 10, 15, 15)]
    assert [a.kind for a in done.actions] == [ActionKind.REQUEUED, ActionKind.CANCELLED, ActionKind.REQUEUED]


def test_a_bulk_requeue_records_one_action_per_job(queue: Queue) -> None:
    ids = [dead_letter(queue, user) for user in ("a", "b", "c")]
    assert queue.requeue_many(by="redrive-script") == 3
    for job_id in ids:
        (action,) = queue.get(job_id).actions
        assert (action.kind, action.by, action.from_status) == (ActionKind.REQUEUED, "redrive-script", JobStatus.FAILED)


def test_a_refused_action_records_nothing(queue: Queue) -> None:
    job = queue.submit("simulate")
    with pytest.raises(InvalidTransition):
        queue.requeue(job.id, by="x")
    with pytest.raises(InvalidTransition):
        queue.force_success(job.id, by="x")
    queue.cancel(job.id, by="x")
    with pytest.raises(InvalidTransition):
        queue.cancel(job.id, by="y")  # CANCELLED already
    assert [a.by for a in queue.get(job.id).actions] == ["x"]
    with pytest.raises(InvalidArgument, match="by must be a non-empty string"):
        queue.requeue(job.id, by="")


def test_pruning_a_job_takes_its_actions(queue: Queue, clock: FakeClock) -> None:
    job_id = dead_letter(queue)
    queue.force_success(job_id, by="ops")
    kept = queue.submit("simulate")
    queue.cancel(kept.id, by="ops")
    clock.advance(3600)
    assert queue.prune(older_than=60) == 2
    with internals(queue).db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(actions)).scalar_one() == 0
