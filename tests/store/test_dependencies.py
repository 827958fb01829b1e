"""Jobs that run after others (``after=``): a child is claimable only once every parent has
COMPLETED; a parent in the dead-letter queue or cancelled holds it, and a requeue (or forced
success) of that parent releases it; references inside a batch, cycles, unknown ids. The
claims are made by hand with a fake clock, so each step is exact. Both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from queuelab import FakeClock, InvalidArgument, JobStatus, Queue, Submission
from queuelab.models import AttemptOutcome, Lease
from queuelab.policy import Complete, DeadLetter, Errored
from queuelab.store.dependencies import BLOCKED_RUN_AT
from queuelab.store.schema import dependencies, jobs
from queuelab.testing import internals


@pytest.fixture
def q(queue: Queue) -> Queue:
    queue.task(name="step")(lambda: None)
    return queue


def claim_all(q: Queue) -> dict[str, Lease]:
    return {lease.job_id: lease for lease in internals(q).leases.claim("w", None, 100, q.clock.now())}


def complete(q: Queue, lease: Lease) -> None:
    internals(q).leases.ack(lease, Complete(None), "w", q.clock.now())


def dead_letter(q: Queue, lease: Lease) -> None:
    error = Errored(AttemptOutcome.FAILED, "RuntimeError", "boom")
    internals(q).leases.ack(lease, DeadLetter(error, "test"), "w", q.clock.now())


def test_a_child_starts_only_when_every_parent_has_completed(q: Queue) -> None:
    a, b = q.submit("step"), q.submit("step")
    c = q.submit("step", after=[a.id, b])
    assert q.get(c.id).waiting_for == 2
    assert q.explain(c.id).reason == "waiting_for_parent"
    leases = claim_all(q)
    assert set(leases) == {a.id, b.id}  # the child is not claimable
    complete(q, leases[a.id])
    assert claim_all(q) == {}
    assert q.get(c.id).waiting_for == 1
    complete(q, leases[b.id])
    assert q.get(c.id).waiting_for == 0
    assert set(claim_all(q)) == {c.id}


def test_a_dead_lettered_parent_holds_its_child_until_a_requeue_completes(q: Queue) -> None:
    parent = q.submit("step")
    child = q.submit("step", after=[parent.id])
    dead_letter(q, claim_all(q)[parent.id])
    assert claim_all(q) == {}
    found = q.explain(child.id)
    assert found.reason == "parent_not_completed"
    assert f"waiting for job {parent.id}, which is FAILED: requeue it" in found.message
    assert q.get(child.id).status is JobStatus.PENDING
    q.requeue(parent.id)
    complete(q, claim_all(q)[parent.id])
    assert set(claim_all(q)) == {child.id}


def test_forcing_a_failed_parent_to_success_releases_its_child(q: Queue) -> None:
    parent = q.submit("step")
    child = q.submit("step", after=[parent.id])
    dead_letter(q, claim_all(q)[parent.id])
    q.force_success(parent.id)
    assert set(claim_all(q)) == {child.id}


def test_a_parent_that_completes_twice_counts_once(q: Queue) -> None:
    """A requeued parent completing again must not stand in for the child's other parent."""
    a, b = q.submit("step"), q.submit("step", delay=3600)
    child = q.submit("step", after=[a.id, b.id])
    complete(q, claim_all(q)[a.id])
    q.requeue(a.id)
    complete(q, claim_all(q)[a.id])
    assert q.get(child.id).waiting_for == 1
    assert claim_all(q) == {}


def test_a_batch_may_name_its_own_submissions_a_diamond(q: Queue) -> None:
    top = Submission(task="step")
    left, right = Submission(task="step", after=[top]), Submission(task="step", after=[top])
    bottom = Submission(task="step", after=[left, right])
    jobs = q.submit_many([bottom, left, right, top])  # in any order
    ids = {name: job.id for name, job in zip(("bottom", "left", "right", "top"), jobs, strict=True)}
    order = []
    while leases := claim_all(q):
        order.append(sorted(name for name, job_id in ids.items() if job_id in leases))
        for lease in leases.values():
            complete(q, lease)
    assert order == [["top"], ["left", "right"], ["bottom"]]


def test_cycles_unknown_parents_and_bad_lists_are_refused_before_anything_is_stored(q: Queue) -> None:
    one = Submission(task="step")
    two = Submission(task="step", after=[one])
    cyclic = Submission(task="step", after=[two])
    object.__setattr__(one, "after", [cyclic])  # one -> cyclic -> two -> one
    with pytest.raises(InvalidArgument, match="after makes a cycle"):
        q.submit_many([one, two, cyclic])
    with pytest.raises(InvalidArgument, match="after names no job with id '00000000-0000-0000-0000-000000000000'"):
        q.submit("step", after=["00000000-0000-0000-0000-000000000000"])
    with pytest.raises(InvalidArgument, match="after must be a list"):
        q.submit("step", after="00000000-0000-0000-0000-000000000000")  # a str is a sequence: refused
    with pytest.raises(InvalidArgument, match="after must name jobs by id"):
        q.submit("step", after=["nope"])
    with pytest.raises(InvalidArgument, match="not in this submit_many batch"):
        q.submit_many([Submission(task="step", after=[Submission(task="step")])])
    assert q.jobs() == []


def test_a_completed_parent_blocks_nothing_and_a_delay_still_applies(q: Queue) -> None:
    done = q.submit("step")
    complete(q, claim_all(q)[done.id])
    now_child = q.submit("step", after=[done.id])
    later = q.submit("step", after=[done.id], delay=60)
    assert q.get(now_child.id).waiting_for is None
    assert set(claim_all(q)) == {now_child.id}
    parent = q.submit("step")
    delayed = q.submit("step", after=[parent.id], delay=timedelta(seconds=600))
    complete(q, claim_all(q)[parent.id])  # released, but it asked to run in 600 s
    assert q.get(delayed.id).run_at.timestamp() == pytest.approx(q.clock.now() + 600)
    assert q.get(later.id).run_at.timestamp() < BLOCKED_RUN_AT


def test_pruning_forgets_the_edges(q: Queue, clock: FakeClock) -> None:
    parent = q.submit("step")
    child = q.submit("step", after=[parent.id])
    q.cancel(parent.id)
    q.cancel(child.id)
    clock.advance(10)
    assert q.prune(older_than=1) == 2
    with q.database.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dependencies)).scalar_one() == 0


def test_a_blocked_job_is_stored_below_every_priority_and_shown_with_its_own(q: Queue) -> None:
    """Claims read PENDING jobs by priority, then fair rank, skipping those not due: blocked
    jobs stored below every real priority are met only after every runnable job, however
    many there are and however early they were submitted."""
    parent = q.submit("step", delay=3600)
    child = q.submit("step", after=[parent.id], priority=7)
    with q.database.read() as conn:
        stored = conn.execute(sa.select(jobs.c.priority).where(jobs.c.id == child.id)).scalar_one()
    assert stored < 0
    assert q.get(child.id).priority == 7
    assert q.jobs_frame().set_index("id").loc[child.id, "priority"] == 7
    clock_now = q.clock.now()
    with q.database.write() as conn:  # the parent becomes due, runs and completes
        conn.execute(sa.update(jobs).where(jobs.c.id == parent.id).values(run_at=clock_now))
    complete(q, claim_all(q)[parent.id])
    with q.database.read() as conn:
        assert conn.execute(sa.select(jobs.c.priority).where(jobs.c.id == child.id)).scalar_one() == 7
