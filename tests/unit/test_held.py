"""A held job's life as one state: the allowed steps, and every other step refused."""

from __future__ import annotations

import dataclasses

import pytest

from queuelab.models import Lease
from queuelab.policy import Complete
from queuelab.runtime.held import EntryState, HeldJobs

W, R, F, A, D = (
    EntryState.WAITING,
    EntryState.RUNNING,
    EntryState.FINISHED,
    EntryState.ABANDONED,
    EntryState.DROPPED,
)


def lease(n: int = 1, *, timeout: float | None = None, lease_seconds: float = 30.0) -> Lease:
    return Lease(f"job-{n}", f"token-{n}", "t", {}, "u", "default", 1, 3, lease_seconds, timeout, 100.0)


def test_a_job_runs_finishes_and_is_forgotten_once_acked() -> None:
    held = HeldJobs()
    (entry,) = held.add([lease()], now=0.0)
    assert entry.state is W
    assert held.start(entry, now=1.0)
    assert held.finish(entry, Complete(None), finished_at=200.0, now=3.0)
    assert (entry.state, held.oldest_unacked) == (F, 3.0)
    assert held.counts().finished == 1
    done = held.finished()
    held.forget(done)
    assert held.entries() == []
    assert held.oldest_unacked is None


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], "finish"),  # WAITING cannot finish without running
        (["start", "finish"], "start"),  # a finished job does not start again
        (["start", "finish"], "abandon"),  # nor is it abandoned: its outcome stands
        (["abandon"], "start"),  # an abandoned job never starts
        (["drop"], "start"),  # nor a dropped one
        (["start"], "drop"),  # a running job is not dropped: its ack is refused instead
    ],
)
def test_steps_the_state_machine_does_not_have_are_refused(path: list[str], refused: str) -> None:
    held = HeldJobs()
    (entry,) = held.add([lease()], now=0.0)
    steps = {
        "start": lambda: held.start(entry, now=1.0),
        "finish": lambda: held.finish(entry, Complete(None), finished_at=2.0, now=2.0),
        "abandon": lambda: held.abandon(entry),
        "drop": lambda: bool(held.drop([entry.lease])),
    }
    for step in path:
        assert steps[step]()
    before = entry.state
    assert not steps[refused]()
    assert entry.state is before


def test_abandoned_and_dropped_jobs_leave_the_table() -> None:
    held = HeldJobs()
    a, b, c = held.add([lease(1), lease(2), lease(3)], now=0.0)
    held.start(c, now=0.0)
    assert held.drop([a.lease, c.lease]) == [a.lease]  # only the waiting one is dropped
    assert held.abandon_waiting() == [b]
    assert [e.state for e in (a, b, c)] == [D, A, R]
    assert held.entries() == [c]


def test_a_running_job_times_out_at_its_deadline_and_not_before() -> None:
    held = HeldJobs()
    slow, free = held.add([lease(1, timeout=5.0), lease(2)], now=0.0)
    assert held.next_deadline() is None  # a waiting job's timeout has not started
    held.start(slow, now=10.0)
    held.start(free, now=10.0)
    assert held.next_deadline() == 15.0
    assert held.timed_out(15.0) == []
    assert held.timed_out(15.01) == [slow]


def test_a_lease_is_due_for_a_heartbeat_after_a_third_of_it() -> None:
    held = HeldJobs()
    (entry,) = held.add([lease(lease_seconds=30.0)], now=0.0)
    assert held.heartbeat_due(9.9) == []
    assert held.heartbeat_due(10.0) == [(entry.lease, False)]  # not started yet
    assert held.heartbeat_due(19.9) == []  # counted from the last heartbeat
    held.start(entry, now=19.95)
    assert held.heartbeat_due(20.0) == [(entry.lease, True)]  # the heartbeat records its start


def test_the_counts_follow_every_step() -> None:
    held = HeldJobs()
    a, b, c, d = held.add([lease(1), lease(2), lease(3), lease(4)], now=0.0)
    held.start(a, now=0.0)
    held.start(b, now=0.0)
    held.finish(b, Complete(None), finished_at=1.0, now=1.0)
    held.drop([c.lease])
    counts = held.counts()
    assert (counts.waiting, counts.running, counts.finished) == (1, 1, 1)
    held.forget(held.finished())
    held.abandon(a)
    held.abandon_waiting()
    counts = held.counts()
    assert (counts.waiting, counts.running, counts.finished) == (0, 0, 0)
    assert held.entries() == []
    assert d.state is A


def test_async_jobs_are_counted_apart_and_time_out_on_their_loop() -> None:
    held = HeldJobs()
    on_loop, in_slot = held.add(
        [lease(1, timeout=5.0), lease(2)], now=0.0, coroutine=lambda held_lease: held_lease.job_id == "job-1"
    )
    assert (on_loop.coroutine, in_slot.coroutine) == (True, False)
    held.start(on_loop, now=0.0)
    counts = held.counts()
    assert (counts.waiting, counts.running, counts.async_live) == (1, 0, 1)
    assert (held.next_deadline(), held.timed_out(100.0)) == (None, [])  # its loop cancels it, not the worker
    held.finish(on_loop, Complete(None), finished_at=1.0, now=1.0)
    counts = held.counts()
    assert (counts.finished, counts.async_live, held.runs) == (1, 0, 0)  # no slot average learns from it
    held.forget(held.finished())
    assert held.counts().finished == 0


def test_a_cancel_sets_the_event_once_and_a_running_jobs_deadline() -> None:
    held = HeldJobs()
    running, waiting, other = held.add([lease(1, timeout=60.0), lease(2), lease(3)], now=0.0)
    assert held.start(running, now=1.0)
    assert held.next_deadline() == 61.0  # its timeout
    fresh = held.request_cancel([running.lease, waiting.lease], deadline=11.0)
    assert fresh == [running, waiting]
    assert running.cancel.is_set()
    assert waiting.cancel.is_set()
    assert not other.cancel.is_set()
    assert held.request_cancel([running.lease], deadline=99.0) == []  # once
    assert held.not_cancelled() == [other.lease]
    assert held.next_deadline() == 11.0  # the cancel's grace comes first
    assert held.timed_out(10.0) == []
    assert held.timed_out(11.5) == [running]  # a waiting one has no deadline: it will not start


def test_a_started_lease_keeps_every_other_field() -> None:
    """Lease.started copies field by field (it is on the hot path): a field added to Lease
    must be added there too, or this fails."""
    sample = {
        "job_id": "j",
        "token": "t",
        "task": "k",
        "payload": {"a": 1},
        "user_id": "u",
        "queue": "q",
        "attempt": 2,
        "max_retries": 5,
        "lease_seconds": 7.0,
        "timeout_seconds": 3.0,
        "started_at": 1.0,
        "run_at": 0.5,
        "trace_context": '{"traceparent": "x"}',
    }
    assert set(sample) == {f.name for f in dataclasses.fields(Lease)}
    lease = Lease(**sample)  # type: ignore[arg-type]
    assert lease.started(9.0) == dataclasses.replace(lease, started_at=9.0)


def test_only_jobs_that_ran_alone_and_beside_no_turn_measure_the_wait_ratio() -> None:
    """The lanes follow the wall/CPU ratio of jobs that ran alone: a job that overlapped
    another job or a turn (whose Python made it wait for the interpreter's lock) is left out."""
    held = HeldJobs()
    alone, beside_a_turn, during_a_turn = held.add([lease(1), lease(2), lease(3)], now=0.0)
    assert held.start(alone, now=0.5)
    assert held.finish(alone, Complete(None), finished_at=1.0, now=0.502, cpu=0.001)
    assert held.solo_runs == 1
    assert held.solo_wait_ratio == pytest.approx(1.1)  # from 1, a tenth of the way up
    turn = held.turn()
    assert held.start(beside_a_turn, now=1.0)
    turn.__enter__()  # a turn begins while it runs
    assert held.finish(beside_a_turn, Complete(None), finished_at=2.0, now=1.008, cpu=0.001)
    assert held.start(during_a_turn, now=2.0)  # ... and is still under way when this starts
    turn.__exit__(None, None, None)
    assert held.finish(during_a_turn, Complete(None), finished_at=3.0, now=2.008, cpu=0.001)
    assert held.solo_runs == 1
    assert held.solo_wait_ratio == pytest.approx(1.1)  # from 1, a tenth of the way up
    assert held.runs == 3  # every run still counts towards the run time


def test_one_stalled_job_does_not_spread_short_jobs_but_jobs_that_wait_do() -> None:
    """The wait ratio starts at 1 and climbs slowly: one job that stalled (ratio 8) leaves
    the lanes at 1; six in a row that wait reach 4 (turns.lanes: the floor of the ratio)."""
    held = HeldJobs()
    entries = held.add([lease(n) for n in range(8)], now=0.0)
    ratios = []
    for n, entry in enumerate(entries):
        assert held.start(entry, now=10.0 * n + 1)
        wall = 0.008 if n < 7 else 0.001  # seven jobs that waited, then one that did not
        assert held.finish(entry, Complete(None), finished_at=1.0, now=10.0 * n + 1 + wall, cpu=0.001)
        ratios.append(held.solo_wait_ratio)
    assert ratios[0] < 2  # one stall: still one lane
    assert ratios[5] >= 4  # six that waited: four lanes
    assert ratios[7] < ratios[6] - 1  # and down faster than up
