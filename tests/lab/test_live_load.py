"""The live load generator, ticked with the monotonic times the test chooses."""

from __future__ import annotations

import logging

import pytest

from queuelab import InvalidArgument, Queue
from queuelab.errors import StoreError
from queuelab.lab.live_load import ERROR_PAUSE_SECONDS, MAX_BATCH, MAX_WAIT_SECONDS, LoadGenerator

NOW = 1_800_000_000.0  # the generator times arrivals on the monotonic clock only


def _stored(q: Queue) -> int:
    return sum(q.stats().by_status.values())


def test_a_tick_submits_the_arrivals_due_by_its_time(queue: Queue) -> None:
    load = LoadGenerator(queue, rate=10, users=3, seed=1)
    load.tick(NOW, 100.0)
    first = load.submitted
    assert first >= 1  # the first arrival is due at the first tick
    load.tick(NOW, 100.0)
    assert load.submitted == first  # nothing more is due at the same time
    load.tick(NOW, 110.0)  # ten seconds of arrivals at 10 per second
    assert 30 < load.submitted - first < 300  # Poisson(100): seeded, and far inside these bounds
    assert _stored(queue) == load.submitted
    assert {job.user_id for job in queue.jobs(limit=1000)} <= {"user-0", "user-1", "user-2"}


def test_a_tick_that_fell_behind_submits_at_most_a_batch(sqlite_url: str) -> None:
    q = Queue(sqlite_url)
    load = LoadGenerator(q, rate=100, seed=1)
    load.tick(NOW, 100.0)
    first = load.submitted
    load.tick(NOW, 200.0)  # 10,000 arrivals due
    assert load.submitted == first + MAX_BATCH
    assert load.wait_at(200.0) == 0.0  # still behind: the next tick comes at once
    q.close()


def test_the_wait_runs_to_the_next_arrival_but_never_past_the_cap(queue: Queue) -> None:
    load = LoadGenerator(queue, rate=0.001, seed=1)  # an arrival every 1000 s or so
    assert load.wait_at(100.0) == 0.0  # not started: tick at once
    load.tick(NOW, 100.0)
    assert load.wait_at(100.0) == MAX_WAIT_SECONDS  # a knob turned meanwhile must count soon


def test_a_failed_submit_is_raised_for_the_loop_and_pauses_it(
    queue: Queue, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    load = LoadGenerator(queue, rate=10, seed=1)

    def down(*_: object, **__: object) -> None:
        raise StoreError("the database is down")

    monkeypatch.setattr(queue, "submit_many", down)
    with pytest.raises(StoreError, match="the database is down"):
        load.tick(NOW, 100.0)
    assert load.wait_at(100.0) == ERROR_PAUSE_SECONDS
    assert load.wait_at(100.0 + ERROR_PAUSE_SECONDS) < ERROR_PAUSE_SECONDS
    with caplog.at_level(logging.ERROR, logger="queuelab.looper"):
        load.run_tick()  # as the thread runs it: logged in one line and counted, not raised
    assert "queuelab-load: tick failed, will retry: the database is down" in caplog.text
    assert load.errors == 1
    assert load.submitted == 0


def test_a_bad_knob_is_refused_at_the_next_tick(queue: Queue) -> None:
    load = LoadGenerator(queue)
    load.rate = -1
    with pytest.raises(InvalidArgument, match="rate must be between 0 and 10000 jobs per second, got -1"):
        load.tick(NOW, 100.0)
    assert load.submitted == 0
