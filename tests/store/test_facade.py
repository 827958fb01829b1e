"""The facade's reads and builders for the edges (API, lab, CLI, bench): each is the store or
runtime call the edge used to make around the facade, so these pin what they return."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from queuelab import FakeClock, InvalidArgument, JobStatus, Queue, Submission
from queuelab.models import AttemptOutcome
from queuelab.policy import Complete, DeadLetter, Errored
from queuelab.runtime.autoscale import ScalePolicy
from queuelab.runtime.pool import ProcessPool, ThreadPool
from queuelab.store import WorkerInfo
from queuelab.testing import internals

WORKER = "facade-test"


def finish(q: Queue, *, fail: bool = False) -> None:
    """Claim every runnable job and complete it (or dead-letter it, with ``fail``)."""
    runtime = internals(q)
    for lease in runtime.leases.claim(WORKER, None, 100, q.clock.now()):
        error = Errored(AttemptOutcome.FAILED, "KeyError", "no such key")
        decision = DeadLetter(error, "gave up") if fail else Complete(None)
        runtime.leases.ack(lease, decision, WORKER, q.clock.now())


def test_jobs_page_walks_every_job_once_newest_first(queue: Queue, clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(queue.submit("simulate").id)
        clock.advance(1)
    pages, before = [], None
    while True:
        page = queue.jobs_page(limit=2, before=before)
        pages.append([job.id for job in page.jobs])
        if page.next_before is None:
            break
        before = page.next_before
    assert pages == [ids[:2:-1], ids[2:0:-1], ids[:1]]


def test_jobs_page_marks_carry_the_stored_time_so_no_job_shows_on_two_pages(
    make_queue: Callable[..., Queue],
) -> None:
    """A real clock's times have digits past the microsecond, which a Job's datetime rounds
    away: a mark made from it can sort after its own job, which then opens the next page too."""
    clock = FakeClock(start=1_800_000_000.1234567)
    queue = make_queue(clock=clock)
    ids = []
    for _ in range(6):
        ids.append(queue.submit("simulate").id)
        clock.advance(0.3333333)
    seen, before = [], None
    while True:
        page = queue.jobs_page(limit=2, before=before)
        seen += [job.id for job in page.jobs]
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == ids[::-1]


def test_jobs_page_filters_and_brings_the_history_when_asked(queue: Queue) -> None:
    done = queue.submit("simulate", user_id="ann")
    queue.submit("simulate", user_id="bob")
    finish(queue)
    (bare,) = queue.jobs_page(user_id="ann").jobs
    (full,) = queue.jobs_page(user_id="ann", status="completed", history=True).jobs
    assert bare.id == full.id == done.id
    assert bare.history == ()
    assert [a.outcome for a in full.history] == [AttemptOutcome.COMPLETED]
    assert queue.jobs_page(status=JobStatus.PENDING, limit=1).next_before is None
    with pytest.raises(InvalidArgument, match="limit must be a whole number between 1 and 10000, got 0"):
        queue.jobs_page(limit=0)


def test_find_by_idempotency_key(queue: Queue) -> None:
    job = queue.submit("simulate", idempotency_key="order-7")
    found = queue.find_by_idempotency_key("order-7")
    assert found is not None
    assert found.id == job.id
    assert queue.find_by_idempotency_key("order-8") is None


def test_completed_series_counts_completions_per_second_oldest_first(queue: Queue, clock: FakeClock) -> None:
    queue.submit_many([Submission(task="simulate") for _ in range(3)])
    finish(queue)
    clock.advance(2)
    series = queue.completed_series(5)
    assert series == [0, 0, 3, 0, 0]
    assert len(queue.completed_series()) == 60
    with pytest.raises(InvalidArgument, match="seconds must be a whole number between 1 and 3600, got 0"):
        queue.completed_series(0)


def test_runnable_backlog_leaves_out_paused_queues_and_jobs_not_yet_due(queue: Queue) -> None:
    queue.submit("simulate", queue="mail")
    queue.submit("simulate", queue="mail")
    queue.submit("simulate", queue="mail", delay=60)
    queue.submit("simulate", queue="reports")
    queue.pause("reports")
    assert queue.runnable_backlog() == {"mail": 2}


def test_status_counts_of_one_queue(queue: Queue) -> None:
    queue.submit("simulate", queue="mail")
    queue.submit("simulate", queue="mail")
    queue.submit("simulate", queue="other")
    finish(queue)
    queue.submit("simulate", queue="mail")
    assert queue.status_counts("mail") == {"COMPLETED": 2, "PENDING": 1}
    assert queue.status_counts("empty") == {}
    with pytest.raises(InvalidArgument, match="queue"):
        queue.status_counts("no spaces")


def test_live_workers_are_the_ones_heartbeating_within_the_ttl(queue: Queue, clock: FakeClock) -> None:
    now = clock.now()
    ttl = queue.settings.worker_ttl_seconds
    internals(queue).workers.register(WorkerInfo("old", "host", 1, "*", 1, "thread", now - 2 * ttl, now - 2 * ttl))
    internals(queue).workers.register(WorkerInfo("new", "host", 2, "*", 4, "process", now, now))
    assert [w.id for w in queue.live_workers()] == ["new"]


def test_timeline_rows_and_dlq_errors(queue: Queue, clock: FakeClock) -> None:
    first = queue.submit("simulate", queue="lab")
    clock.advance(1)
    queue.submit("simulate", queue="elsewhere")
    finish(queue, fail=True)
    rows = queue.timeline_rows(queue="lab")
    assert [row[0] for row in rows.jobs] == [first.id]
    assert [(row[0], row[3], row[6]) for row in rows.attempts] == [(first.id, "FAILED", "KeyError")]
    assert queue.timeline_rows(since=clock.now()).jobs[0][1] == "elsewhere"
    (errors,) = queue.dlq_errors(queue="lab")
    assert errors[:2] == ("KeyError", 1)
    assert errors[4:] == ("no such key", "gave up")
    assert queue.dlq_errors()[0][1] == 2


def test_the_database_door_and_its_description(queue: Queue, clock: FakeClock, db_url: str) -> None:
    assert queue.clock is clock
    queue.open()
    assert queue.database is internals(queue).db
    assert queue.dialect == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    assert queue.describe() == internals(queue).db.describe()


def test_worker_builders(queue: Queue) -> None:
    assert isinstance(queue.worker(2), ThreadPool)
    assert isinstance(queue.worker(2, "process"), ProcessPool)
    worker = queue.foreground_worker(3, queues=["mail", "reports"])
    assert (worker.concurrency, worker.queues, worker.mode, worker.release_on_stop) == (
        3,
        ("mail", "reports"),
        "thread",
        True,
    )
    with pytest.raises(InvalidArgument, match="concurrency must be a whole number between 1 and 1024, got 0"):
        queue.foreground_worker(0)
    with pytest.raises(InvalidArgument, match="queues must be a non-empty list"):
        queue.foreground_worker(1, queues="mail")


def test_autoscaler_resizes_the_pool_it_was_given(queue: Queue) -> None:
    pool = queue.worker(1)
    scaler = queue.autoscaler(pool, ScalePolicy(max_workers=4, cooldown_seconds=0), tick_seconds=5.0)
    assert scaler.pool is pool
    assert scaler.every == 5.0
    queue.submit_many([Submission(task="simulate") for _ in range(30)])
    scaler.tick(queue.clock.now(), 0.0)
    assert pool.size > 1
    with pytest.raises(InvalidArgument, match="min_workers must be at least 1"):
        queue.autoscaler(pool, ScalePolicy(min_workers=0))
