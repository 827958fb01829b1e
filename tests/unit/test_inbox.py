"""The slot threads' inbox: at most ``lanes`` threads take jobs at once, a thread that has
just run a job takes the next at once, and a full set of lanes that stops moving lets an
idle thread in (queuelab.runtime.slots.Inbox; real threads, no sleeps: the waits asserted
are lower bounds the inbox's own logic guarantees)."""

from __future__ import annotations

import threading
import time

from queuelab.runtime.held import Entry
from queuelab.runtime.slots import _RETIRE, LANE_WAIT_SECONDS, Inbox
from tests.unit.test_held import lease


def entries(n: int) -> list[Entry]:
    return [Entry(lease(i), heartbeat_at=0.0) for i in range(n)]


def take_in_thread(inbox: Inbox) -> tuple[threading.Thread, list[tuple[object, float]]]:
    got: list[tuple[object, float]] = []
    thread = threading.Thread(target=lambda: got.append((inbox.take(False), time.monotonic())), daemon=True)
    thread.start()
    return thread, got


def test_a_thread_that_ran_a_job_takes_the_next_even_with_every_lane_busy() -> None:
    inbox = Inbox()
    inbox.lanes = 1
    first, second = entries(2)
    inbox.put(first)
    inbox.put(second)
    assert inbox.take(False) is first
    assert inbox.take(True) is second  # its own lane, moving on
    assert len(inbox) == 0


def test_with_more_threads_busy_than_lanes_a_thread_that_ran_a_job_steps_out() -> None:
    """Two threads busy (the lanes shrank to one while both ran): the first back waits; the
    last one busy runs on, so short jobs go back to one thread."""
    inbox = Inbox()
    inbox.lanes = 2
    first, second, third = entries(3)
    for entry in (first, second, third):
        inbox.put(entry)
    assert inbox.take(False) is first
    assert inbox.take(False) is second
    inbox.lanes = 1
    returned_at = time.monotonic()
    assert inbox.take(True) is third  # the other lane is still busy: only a stall lets it in
    assert time.monotonic() - returned_at >= LANE_WAIT_SECONDS


def test_with_a_free_lane_an_idle_thread_takes_a_job_at_once() -> None:
    inbox = Inbox()
    inbox.lanes = 2
    first, second = entries(2)
    inbox.put(first)
    inbox.put(second)
    assert inbox.take(False) is first
    thread, got = take_in_thread(inbox)
    thread.join(10)
    assert [item for item, _ in got] == [second]


def test_with_every_lane_busy_an_idle_thread_waits_until_the_lanes_stop_moving() -> None:
    inbox = Inbox()
    inbox.lanes = 1
    first, second = entries(2)
    inbox.put(first)
    inbox.put(second)
    taken_at = time.monotonic()
    assert inbox.take(False) is first  # a lane busy with a job that does not finish
    thread, got = take_in_thread(inbox)
    thread.join(10)
    ((item, at),) = got
    assert item is second
    assert at - taken_at >= LANE_WAIT_SECONDS  # only once the busy lane had not moved that long


def test_a_retire_mark_and_a_close_reach_idle_threads_past_full_lanes() -> None:
    inbox = Inbox()
    inbox.lanes = 1
    (job,) = entries(1)
    inbox.put(job)
    assert inbox.take(False) is job
    inbox.retire(1)
    thread, got = take_in_thread(inbox)
    thread.join(10)
    assert [item for item, _ in got] == [_RETIRE]  # taken by the idle thread, past the full lane
    inbox.close()
    assert inbox.take(True) is None
