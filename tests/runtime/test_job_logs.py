"""A line per job event (queuelab.jobs), each with the job's fields and an ``event``:
claimed (DEBUG), started, completed, retry_scheduled (with when), dead_lettered (with
why), rescued, released; and none of them built when the level is above them. A worker
stepped on the test's thread, on each database, time from the queue's FakeClock."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from queuelab import FakeClock, Queue, RetryPolicy
from queuelab.runtime.maintenance import Maintenance
from queuelab.runtime.worker import Worker
from queuelab.testing import internals

SOON = RetryPolicy(base_seconds=1.0, factor=1.0, jitter=0.0)
FIELDS = ("job_id", "task", "user_id", "queue", "attempt")


def events_of(records: list[logging.LogRecord], job_id: str) -> list[tuple[str, int]]:
    """(event, attempt) of the lines about one job, in order."""
    lines = [r for r in records if r.name == "queuelab.jobs" and getattr(r, "fields", {}).get("job_id") == job_id]
    for line in lines:
        assert set(FIELDS) <= set(line.fields)  # type: ignore[attr-defined]
    return [(line.fields["event"], line.fields["attempt"]) for line in lines]  # type: ignore[attr-defined]


def test_every_event_of_a_jobs_life_is_a_line(queue: Queue, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    seen: set[str] = set()

    @queue.task(name="flaky", retry=SOON)
    def flaky(key: str) -> None:
        if key not in seen:
            seen.add(key)
            raise ValueError("not yet")

    queue.task(name="broken", max_retries=0)(lambda: 1 / 0)
    first = queue.submit("flaky", {"key": "a"}, user_id="alice", queue="default")
    dead = queue.submit("broken", user_id="bob")
    worker = Worker(internals(queue), concurrency=1, prefetch=0)
    with caplog.at_level(logging.DEBUG, logger="queuelab.jobs"):
        for _ in range(4):
            worker.step(now=0.0)
            clock.advance(1.5)
        worker.flush()

    assert events_of(caplog.records, first.id) == [
        ("claimed", 1),
        ("started", 1),
        ("retry_scheduled", 1),
        ("claimed", 2),
        ("started", 2),
        ("completed", 2),
    ]
    assert events_of(caplog.records, dead.id) == [("claimed", 1), ("started", 1), ("dead_lettered", 1)]
    by_event = {r.fields["event"]: r for r in reversed(caplog.records) if hasattr(r, "fields")}  # the first of each
    assert by_event["claimed"].levelno == logging.DEBUG
    assert by_event["started"].levelno == logging.INFO
    assert by_event["started"].fields["user_id"] == "alice"
    assert "retry scheduled in 1.0s, at " in by_event["retry_scheduled"].getMessage()
    assert by_event["retry_scheduled"].fields["retry_at"] > 0
    assert "max_retries=0" in by_event["dead_lettered"].fields["reason"]


def test_a_rescue_and_a_release_are_lines(queue: Queue, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    queue.task(name="careful", retry=SOON)(lambda: None)
    lost = queue.submit("careful", lease_seconds=10.0)
    handed = queue.submit("careful")
    leases = internals(queue).leases
    assert leases.claim("dead-worker", None, 1, clock.now())  # then it was SIGKILLed
    (held,) = leases.claim("stopping-worker", None, 1, clock.now())
    clock.advance(11.0)
    survivor = Worker(internals(queue))
    with caplog.at_level(logging.INFO, logger="queuelab.jobs"):
        assert leases.release_many([held], "stopping-worker", clock.now(), started=False) == 1
        assert Maintenance(internals(queue), survivor.held, survivor.info()).rescue(clock.now()) == 1

    assert events_of(caplog.records, handed.id) == [("released", 1)]
    assert events_of(caplog.records, lost.id) == [("retry_scheduled", 1), ("rescued", 1)]
    rescued = next(r for r in caplog.records if getattr(r, "fields", {}).get("event") == "rescued")
    assert "worker dead-worker stopped heartbeating" in rescued.getMessage()


@pytest.fixture
def records_made() -> Iterator[list[str]]:
    """The name of every logger a LogRecord is made for meanwhile (the factory restored after)."""
    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.name)
        return record

    logging.setLogRecordFactory(counting)
    yield made
    logging.setLogRecordFactory(factory)


def test_at_warning_a_drain_builds_no_line(queue: Queue, records_made: list[str]) -> None:
    """Lazy: at WARNING (and metrics off) a job that completes makes no LogRecord at all."""
    queue.task(name="noop")(lambda: None)
    for _ in range(5):
        queue.submit("noop")
    worker = Worker(internals(queue), concurrency=1)
    logging.getLogger("queuelab").setLevel(logging.WARNING)
    # Only the drain counts: opening the database may log at INFO (PostgreSQL with autovacuum
    # off), and a test run earlier in the same process may have left a handler at INFO.
    records_made.clear()
    try:
        for _ in range(6):
            worker.step(now=0.0)
        worker.flush()
    finally:
        logging.getLogger("queuelab").setLevel(logging.NOTSET)
    assert queue.stats().by_status["COMPLETED"] == 5
    assert [name for name in records_made if name.startswith("queuelab")] == []
