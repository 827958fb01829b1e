"""Clock skew between machines, measured with injected clocks (both databases).

Lease expiries are written with the clock of the worker that holds the lease and compared
with the clock of the worker that rescues. A worker heartbeats when a third of its lease is
used, so its lease always has two thirds left by its own clock: another worker whose clock
differs by less than that (20 s with the default 30 s lease) never rescues a live worker's
job. Past that bound it may: then the fencing token still refuses the first worker's late
heartbeat and ack, so the job is acknowledged once (and may run twice, at least once as
always), with the LOST attempt in its history.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from queuelab import FakeClock, JobStatus, LeaseLost, Queue
from queuelab.models import AttemptOutcome
from queuelab.policy import Complete
from queuelab.testing import internals

LEASE = 30.0
BEAT = LEASE / 3  # the worker heartbeats when a third of its lease is used


def _pair(make_queue: Callable[..., Queue], skew: float) -> tuple[Queue, FakeClock, Queue, FakeClock]:
    """The holder's queue and clock, and another worker's, whose clock runs ``skew`` s ahead."""
    mine, theirs = FakeClock(), FakeClock()
    theirs.advance(skew)
    holder, other = make_queue(clock=mine), make_queue(clock=theirs)
    for q in (holder, other):
        q.task(name="step")(lambda: None)
    return holder, mine, other, theirs


def _run_for(seconds: float, holder: Queue, mine: FakeClock, other: Queue, theirs: FakeClock) -> int:
    """Let real time pass in heartbeat steps: the holder heartbeats, the other worker runs its
    rescue; returns how many jobs the other rescued."""
    leases, rescued = internals(holder).leases, 0
    (lease,) = leases.claim("holder", None, 1, mine.now())
    for _ in range(int(seconds / BEAT)):
        mine.advance(BEAT)
        theirs.advance(BEAT)
        # The worst moment: the other rescues just before the heartbeat falls due.
        rescued += internals(other).leases.rescue(theirs.now(), internals(other).decide)
        if leases.heartbeat([lease], mine.now, {lease.job_id}):
            break  # lost: the other worker had rescued it
    return rescued


@pytest.mark.parametrize("skew", [10.0, -10.0, 19.5, -19.5])
def test_a_skew_under_two_thirds_of_the_lease_never_rescues_a_live_job(
    make_queue: Callable[..., Queue], skew: float
) -> None:
    holder, mine, other, theirs = _pair(make_queue, skew)
    job = holder.submit("step", lease_seconds=LEASE)
    assert _run_for(600, holder, mine, other, theirs) == 0
    assert holder.get(job.id).status is JobStatus.RUNNING
    assert holder.get(job.id).history == ()


@pytest.mark.parametrize("skew", [25.0, -25.0])
def test_past_the_bound_a_live_job_may_be_rescued_and_fencing_refuses_the_late_ack(
    make_queue: Callable[..., Queue], skew: float
) -> None:
    holder, mine, other, theirs = _pair(make_queue, skew)
    if skew < 0:  # the rescuer is behind: give the holder the clock that is behind instead
        holder, mine, other, theirs = other, theirs, holder, mine
    job = holder.submit("step", lease_seconds=LEASE)
    leases = internals(holder).leases
    (lease,) = leases.claim("holder", None, 1, mine.now())
    mine.advance(BEAT)
    theirs.advance(BEAT)
    assert leases.heartbeat([lease], mine.now, {lease.job_id}) == []  # still ours by its own clock
    mine.advance(BEAT)  # the next heartbeat is due: two thirds of the lease left by the holder's clock,
    theirs.advance(BEAT)  # less than the skew by the other's
    assert internals(other).leases.rescue(theirs.now(), internals(other).decide) == 1  # early
    assert leases.heartbeat([lease], mine.now, {lease.job_id}) == [lease]  # the holder learns it lost it
    with pytest.raises(LeaseLost):
        leases.ack(lease, Complete("late"), "holder", mine.now())
    found = holder.get(job.id)
    assert (found.status, found.result) == (JobStatus.PENDING, None)  # for a retry; the late result discarded
    assert [a.outcome for a in found.history] == [AttemptOutcome.LOST]
