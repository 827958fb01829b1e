"""The lab's I/O-bound drains (async tasks against slot threads) and its frame of a
schedule's ticks, which notebook 07 plots."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from queuelab import FakeClock, InvalidArgument, Queue
from queuelab.lab import frames, io_bound
from queuelab.schedules import tick_key

# -- I/O-bound drains ----------------------------------------------------------------------------


def test_async_waits_overlap_on_one_event_loop_and_threads_one_per_slot(sqlite_url: str) -> None:
    """50 jobs of 100 ms: one thread would take 5 s; 50 coroutines overlap them all, and 4
    slot threads at most 4 at a time (so never faster than 40 jobs/s)."""
    with Queue(sqlite_url) as q:
        table = io_bound.compare(q, 50, [("async", 50), ("threads", 4)], wait_seconds=0.1)
    assert list(table["case"]) == ["async 50", "threads 4"]
    assert list(table["completed"]) == [50, 50]
    assert not table["timed_out"].any()
    assert list(table["ceiling"]) == [500.0, 40.0]
    rates = dict(zip(table["case"], table["drain_rate"], strict=True))
    assert rates["threads 4"] <= 40.0 * 1.05  # the ceiling, but for clock rounding
    assert rates["async 50"] > 2 * rates["threads 4"]
    assert (table["run_mean"] >= 0.1 * 0.95).all()  # every job waited its 100 ms
    assert table["queue"].nunique() == 2  # each drain had a queue of its own


def test_a_drain_shares_its_database_with_other_work(sqlite_url: str) -> None:
    with Queue(sqlite_url) as q:
        q.submit("simulate")  # another queue's job: neither drained nor counted
        summary = io_bound.drain_waits(q, 5, how="threads", width=5, wait_seconds=0.01)
        assert summary["completed"] == summary["submitted"] == 5
        assert q.status_counts("default") == {"PENDING": 1}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"how": "greenlets", "width": 4, "wait_seconds": 0.1}, "how must be one of async, threads, got 'greenlets'"),
        ({"how": "threads", "width": 0, "wait_seconds": 0.1}, "width must be a whole number between 1 and 1024"),
        ({"how": "async", "width": 10, "wait_seconds": 0}, r"wait_seconds must be in \(0, 60\]"),
    ],
)
def test_bad_drain_arguments_name_the_problem_and_store_nothing(
    sqlite_url: str, arguments: dict[str, object], message: str
) -> None:
    with Queue(sqlite_url) as q:
        with pytest.raises(InvalidArgument, match=message):
            io_bound.drain_waits(q, 10, **arguments)  # type: ignore[arg-type]
        assert q.jobs() == []


# -- a schedule's ticks ----------------------------------------------------------------------------


def test_ticks_give_each_tick_its_jobs_and_lateness_and_show_a_missed_one(queue: Queue, clock: FakeClock) -> None:
    @queue.task
    def beat() -> None:
        pass

    queue.schedule("beat", cron="* * * * * *")
    t0 = float(math.ceil(clock.now()) + 10)
    for offset in (0, 1, 3):  # the tick at t0 + 2 is never enqueued
        clock.set(t0 + offset + 0.25)
        queue.submit("beat", idempotency_key=tick_key("beat", t0 + offset))
    queue.submit("beat", idempotency_key=tick_key("beat", t0 + 1))  # again: the key keeps one job
    queue.submit("beat")  # not a tick
    queue.submit("beat", idempotency_key=tick_key("other", t0 + 1))  # another schedule's

    frame = frames.ticks(queue, "beat")
    assert list(frame.columns) == list(frames.TICK_COLUMNS)
    assert list(frame["tick"]) == list(pd.to_datetime([t0, t0 + 1, t0 + 2, t0 + 3], unit="s", utc=True))
    assert list(frame["jobs"]) == [1, 1, 0, 1]
    assert frame["lateness"].tolist()[:2] == pytest.approx([0.25, 0.25])
    assert math.isnan(frame["lateness"].iloc[2])
    assert frame["start_lateness"].isna().all()  # nothing has run
    assert list(frames.ticks(queue, "beat", since=t0 + 1)["jobs"]) == [1, 0, 1]


def test_a_schedule_with_no_ticks_yet_has_an_empty_frame(queue: Queue) -> None:
    @queue.task
    def beat() -> None:
        pass

    queue.schedule("beat", cron="* * * * *")
    frame = frames.ticks(queue, "beat")
    assert frame.empty
    assert list(frame.columns) == list(frames.TICK_COLUMNS)
