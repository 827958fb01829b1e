"""Turn planning as plain asserts: when a turn is due, how many jobs it claims, how long
the worker waits (queuelab.runtime.turns; no database, no threads, no clock)."""

from __future__ import annotations

import pytest

from queuelab.bounds import AUTO_PREFETCH
from queuelab.runtime.turns import (
    ACK_DELAY_SECONDS,
    AHEAD_SECONDS,
    HELD_WAIT_MAX_SECONDS,
    HELD_WAIT_SECONDS,
    TurnPlan,
    TurnSnapshot,
    claim_ahead,
    gathers_acks,
    idle_wait,
    lanes,
    plan_turn,
    skip_turn,
)

NOW = 1000.0


def snapshot(**changes: object) -> TurnSnapshot:
    values: dict[str, object] = {
        "concurrency": 2,
        "prefetch": 0,
        "waiting": 0,
        "running": 0,
        "finished": 0,
        "oldest_unacked": None,
        "stopping": False,
        "poll_seconds": 1.0,
    }
    values.update(changes)
    return TurnSnapshot(**values)  # type: ignore[arg-type]


def test_an_idle_worker_claims_one_job_per_free_slot() -> None:
    assert plan_turn(snapshot(), NOW) == TurnPlan(due=True, claim=2, wait_seconds=0.0, start=2)


def test_a_full_worker_without_acks_waits_for_a_slot_to_finish() -> None:
    assert plan_turn(snapshot(running=2), NOW) == TurnPlan(due=False, claim=0, wait_seconds=1.0)


def test_without_prefetch_any_ack_makes_a_turn_due_even_with_every_slot_busy() -> None:
    """An ack waiting while another slot runs and a dispatched job has not yet reached its
    slot must not wait for the poll interval."""
    plan = plan_turn(snapshot(running=1, waiting=1, finished=1, oldest_unacked=NOW), NOW)
    assert plan == TurnPlan(due=True, claim=0, wait_seconds=0.0)


def test_a_stopping_worker_acks_but_claims_nothing() -> None:
    assert plan_turn(snapshot(finished=3, oldest_unacked=NOW, stopping=True), NOW) == TurnPlan(True, 0, 0.0)
    assert plan_turn(snapshot(stopping=True), NOW).claim == 0


def test_prefetch_claims_beyond_the_free_slots() -> None:
    """One job for the free slot, started at once; ten more claimed ahead."""
    busy = snapshot(concurrency=1, prefetch=10, finished=1, oldest_unacked=NOW)
    assert plan_turn(busy, NOW) == TurnPlan(True, 11, 0.0, start=1)


def test_an_idle_worker_claims_for_its_free_slots_only_and_ahead_once_busy() -> None:
    """The job that wakes an idle worker starts after one claim statement, not two."""
    assert plan_turn(snapshot(concurrency=2, prefetch=10), NOW) == TurnPlan(True, 2, 0.0, start=2)
    assert plan_turn(snapshot(concurrency=2, prefetch=10, running=2), NOW) == TurnPlan(True, 10, 0.0, start=0)


def test_jobs_waiting_for_a_slot_take_the_free_slots_before_a_new_claim() -> None:
    """Two slots free, one job already waiting: one new job starts at once, the rest wait."""
    plan = plan_turn(snapshot(concurrency=3, prefetch=4, running=1, waiting=1, finished=1, oldest_unacked=NOW), NOW)
    assert (plan.due, plan.claim, plan.start) == (True, 5, 1)


@pytest.mark.parametrize(
    ("run_seconds", "concurrency", "ahead"),
    [
        (None, 1, 0),  # no job measured yet: claim only for free slots
        (0.0, 1, 1000),  # too short to measure: counted at the worker's own cost per job
        (0.00001, 1, 1000),
        (0.0001, 1, 500),
        (0.00001, 4, AUTO_PREFETCH),  # 4,000 jobs' worth of work in 0.05 s: capped
        (0.001, 1, 50),
        (0.001, 4, 200),  # four slots work through 200 in 0.05 s
        (0.01, 2, 10),
        (AHEAD_SECONDS, 1, 1),
        (0.2, 4, 1),
        (0.5, 4, 0),  # long jobs: one per free slot
    ],
)
def test_on_auto_a_worker_claims_ahead_as_much_work_as_its_jobs_run_time_justifies(
    run_seconds: float | None, concurrency: int, ahead: int
) -> None:
    assert claim_ahead(None, concurrency, run_seconds) == ahead


def test_a_prefetch_that_is_set_is_taken_as_it_is() -> None:
    assert claim_ahead(0, 4, 0.0001) == 0
    assert claim_ahead(7, 1, 10.0) == 7
    assert claim_ahead(7, 1, None) == 7


def test_with_prefetch_no_turn_is_due_while_more_than_half_of_it_waits() -> None:
    # 1 slot + 10 prefetched: one ran (its ack is fresh), 8 still wait.
    s = snapshot(concurrency=1, prefetch=10, waiting=8, running=1, finished=1, oldest_unacked=NOW)
    plan = plan_turn(s, NOW + 0.005)
    assert not plan.due
    assert plan.wait_seconds == pytest.approx(ACK_DELAY_SECONDS - 0.005)  # the ack's deadline, not the poll


def test_with_prefetch_an_ack_that_waited_the_delay_makes_a_turn_due() -> None:
    s = snapshot(concurrency=1, prefetch=10, waiting=8, running=1, finished=1, oldest_unacked=NOW)
    assert plan_turn(s, NOW + 2 * ACK_DELAY_SECONDS).due


def test_with_prefetch_a_turn_is_due_when_half_of_it_is_used() -> None:
    s = snapshot(concurrency=1, prefetch=10, waiting=5, running=1, finished=4, oldest_unacked=NOW)
    assert plan_turn(s, NOW) == TurnPlan(True, 5, 0.0)
    # no ack at all, but room for more than half the prefetch: claim it
    assert plan_turn(snapshot(concurrency=1, prefetch=10, waiting=4, running=1), NOW) == TurnPlan(True, 6, 0.0)


def test_a_slot_skips_its_turn_only_while_more_than_half_the_prefetch_is_queued_and_no_ack_is_late() -> None:
    fresh = {"prefetch": 10, "oldest_unacked": NOW, "now": NOW + 0.001, "stopping": False}
    assert skip_turn(queued=6, **fresh)  # type: ignore[arg-type]
    assert not skip_turn(queued=5, **fresh)  # type: ignore[arg-type]
    assert not skip_turn(queued=6, **{**fresh, "now": NOW + 2 * ACK_DELAY_SECONDS})  # type: ignore[arg-type]
    assert not skip_turn(queued=6, **{**fresh, "stopping": True})  # type: ignore[arg-type]
    assert not skip_turn(queued=6, **{**fresh, "prefetch": 0})  # type: ignore[arg-type]


def test_acks_are_gathered_only_for_jobs_shorter_than_a_millisecond() -> None:
    assert gathers_acks(0.0002)
    assert not gathers_acks(0.01)


def test_an_idle_worker_sleeps_until_the_next_delayed_job_is_due() -> None:
    wait = idle_wait(
        next_run_at=NOW + 0.3,
        claimed_at=NOW,
        now_wall=NOW + 0.1,
        held_back_wakes_nobody=False,
        held_wait=HELD_WAIT_SECONDS,
        poll_seconds=1.0,
    )
    assert wait.seconds == pytest.approx(0.201)
    far = idle_wait(
        next_run_at=NOW + 60,
        claimed_at=NOW,
        now_wall=NOW,
        held_back_wakes_nobody=False,
        held_wait=HELD_WAIT_SECONDS,
        poll_seconds=1.0,
    )
    assert far.seconds == 1.0


def test_a_job_held_back_by_a_quota_on_postgresql_is_looked_at_again_with_a_doubling_wait() -> None:
    held = HELD_WAIT_SECONDS
    seen = []
    for _ in range(8):
        wait = idle_wait(
            next_run_at=NOW - 1,
            claimed_at=NOW,
            now_wall=NOW,
            held_back_wakes_nobody=True,
            held_wait=held,
            poll_seconds=1.0,
        )
        seen.append(wait.seconds)
        held = wait.next_held_wait
    assert seen[:3] == [HELD_WAIT_SECONDS, 2 * HELD_WAIT_SECONDS, 4 * HELD_WAIT_SECONDS]
    assert seen[-1] == HELD_WAIT_MAX_SECONDS


def test_a_due_job_that_is_not_ours_on_sqlite_waits_the_poll_for_a_commit() -> None:
    wait = idle_wait(
        next_run_at=NOW - 1,
        claimed_at=NOW,
        now_wall=NOW,
        held_back_wakes_nobody=False,
        held_wait=HELD_WAIT_SECONDS,
        poll_seconds=1.0,
    )
    assert (wait.seconds, wait.next_held_wait) == (1.0, HELD_WAIT_SECONDS)


def test_after_a_shrink_nothing_is_claimed_until_fewer_jobs_run_than_slots() -> None:
    """A pool shrunk from 4 slots to 1 while 4 jobs run: no turn claims until 0 run."""
    assert plan_turn(snapshot(concurrency=1, running=4), NOW) == TurnPlan(False, 0, 1.0)
    assert plan_turn(snapshot(concurrency=1, running=3, finished=1, oldest_unacked=NOW), NOW) == TurnPlan(True, 0, 0.0)
    assert plan_turn(snapshot(concurrency=1, running=0, finished=1, oldest_unacked=NOW), NOW).claim == 1


@pytest.mark.parametrize(
    ("run_seconds", "wait_ratio", "expected"),
    [
        (None, None, 1),  # nothing measured yet: one lane, so that jobs run alone to be measured
        (0.00004, 1.1, 1),  # short and busy on the CPU: one thread, no switches
        (0.001, 3.4, 3),  # short, mostly waiting: about run/cpu of them overlap
        (0.001, 8.0, 4),  # at most the slots
        (0.01, 1.0, 4),  # long jobs: every slot
    ],
)
def test_lanes_follow_how_much_of_a_short_jobs_run_it_waits(
    run_seconds: float | None, wait_ratio: float | None, expected: int
) -> None:
    assert lanes(4, run_seconds, wait_ratio) == expected


def test_a_turn_claims_async_jobs_for_the_free_places_of_the_loop() -> None:
    busy = snapshot(running=2, async_free=30)  # every slot busy: only the loop has room
    assert plan_turn(busy, NOW) == TurnPlan(True, 0, 0.0, 0, 30)
    assert plan_turn(snapshot(running=2, async_free=0), NOW).due is False  # no room anywhere
    assert plan_turn(snapshot(async_free=30, stopping=True), NOW).claim_async == 0
    with_acks = plan_turn(snapshot(running=1, finished=1, oldest_unacked=NOW, async_free=5), NOW)
    assert (with_acks.due, with_acks.claim, with_acks.claim_async) == (True, 1, 5)
