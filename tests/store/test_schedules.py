"""Periodic jobs against real databases: defining, listing, pausing and changing schedules,
and the scheduler's one pass (``Scheduler.step(now)``) with an injected clock. Several
schedulers on one database enqueue each tick once; one that fails mid-tick writes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from queuelab import FakeClock, InvalidSchedule, Queue, ScheduleNotFound, Task, UnknownTask
from queuelab.runtime.scheduler import Scheduler, define_all
from queuelab.store.jobs import JobStore
from queuelab.store.schema import SCHEMA_REVISION, meta
from queuelab.testing import internals

T0 = datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()  # a whole minute
EVERY_SECOND = "* * * * * *"  # croniter: seconds are the sixth field


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def with_task(q: Queue) -> Task:
    @q.task(name="beat")
    def beat(n: int = 0) -> int:
        return n

    return beat


def keys(q: Queue) -> list[str]:
    return sorted(str(job.idempotency_key) for job in q.jobs(task="beat", limit=10_000))


def at(seconds: float) -> str:
    return f"schedule:beat:{datetime.fromtimestamp(T0 + seconds, UTC).isoformat()}"


def test_a_schedule_is_stored_listed_and_read(queue: Queue) -> None:
    with_task(queue)
    made = queue.schedule("beat", cron="*/5 * * * *", payload={"n": 2}, timezone="Europe/Paris", catch_up=3)
    assert queue.schedules() == [made]
    got = queue.get_schedule("beat")
    assert got.spec.cron == "*/5 * * * *"
    assert got.spec.payload == {"n": 2}
    assert got.next_run_at.timestamp() == T0 + 300
    assert not got.paused
    assert got.as_dict()["timezone"] == "Europe/Paris"


def test_periodic_checks_at_definition_and_a_worker_start_writes_it(queue: Queue) -> None:
    with pytest.raises(InvalidSchedule, match="got '\\*/5 \\* \\*'"):
        queue.periodic("*/5 * *")
    with pytest.raises(InvalidSchedule, match="got 'Nowhere/Land'"):
        queue.periodic("* * * * *", timezone="Nowhere/Land")
    beat = queue.periodic("*/5 * * * *", payload={"n": 1})(with_task(queue))
    assert isinstance(beat, Task)
    assert queue.schedules() == []
    define_all(internals(queue))
    assert [s.name for s in queue.schedules()] == ["beat"]


def test_schedule_refuses_an_unknown_task_or_a_payload_the_task_cannot_take(queue: Queue) -> None:
    with pytest.raises(UnknownTask, match="'nope'"):
        queue.schedule("nope", cron="* * * * *")
    with_task(queue)
    with pytest.raises(ValueError, match="payload does not fit task 'beat'"):
        queue.schedule("beat", cron="* * * * *", payload={"m": 1})
    assert queue.schedules() == []


def test_each_due_tick_is_enqueued_once_with_the_schedules_payload(queue: Queue, clock: FakeClock) -> None:
    with_task(queue)
    queue.schedule("beat", cron=EVERY_SECOND, payload={"n": 7})
    scheduler = Scheduler(internals(queue))
    assert scheduler.step(T0) == 0  # the first tick is the next whole second
    assert scheduler.step(T0 + 1) == 1
    assert scheduler.step(T0 + 1) == 0
    assert scheduler.step(T0 + 3.5) == 2
    assert keys(queue) == [at(1), at(2), at(3)]
    assert {job.payload["n"] for job in queue.jobs(task="beat")} == {7}
    latest = queue.get_schedule("beat")
    assert latest.last_tick_at == datetime.fromtimestamp(T0 + 3, UTC)
    assert latest.last_job_id == queue.find_by_idempotency_key(at(3)).id  # type: ignore[union-attr]


def test_many_schedulers_on_one_database_enqueue_each_tick_once(make_queue: Callable[..., Queue]) -> None:
    """Six schedulers (one queue each, as in six processes) step together from six threads
    over sixty ticks: every tick is one job, none missing."""
    queues = [make_queue(clock=FakeClock(T0)) for _ in range(6)]
    for q in queues:
        with_task(q)
    queues[0].schedule("beat", cron=EVERY_SECOND)
    schedulers = [Scheduler(internals(q)) for q in queues]
    enqueued = [0] * len(schedulers)
    for second in range(1, 61):
        barrier = threading.Barrier(len(schedulers))

        def step(i: int, now: float = T0 + second, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            enqueued[i] += schedulers[i].step(now)

        threads = [threading.Thread(target=step, args=(i,)) for i in range(len(schedulers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert keys(queues[0]) == sorted(at(s) for s in range(1, 61))
    assert sum(enqueued) == 60


def test_a_scheduler_that_fails_mid_tick_writes_nothing(
    queue: Queue, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tick's job is inserted, then the transaction dies before its commit (as a killed
    process's would): neither the job nor the schedule's move is kept, and the next pass
    enqueues the tick."""
    with_task(queue)
    queue.schedule("beat", cron=EVERY_SECOND)
    insert_in = JobStore.insert_in

    def insert_then_die(self: JobStore, conn: sa.Connection, *args: Any, **kwargs: Any) -> Any:
        insert_in(self, conn, *args, **kwargs)
        raise KeyboardInterrupt("killed mid-tick")

    monkeypatch.setattr(JobStore, "insert_in", insert_then_die)
    with pytest.raises(KeyboardInterrupt):
        Scheduler(internals(queue)).step(T0 + 1)
    assert keys(queue) == []
    assert queue.get_schedule("beat").next_run_at.timestamp() == T0 + 1
    monkeypatch.undo()
    assert Scheduler(internals(queue)).step(T0 + 1) == 1
    assert keys(queue) == [at(1)]


def test_a_paused_schedule_enqueues_nothing_and_resumes_from_its_next_tick(queue: Queue, clock: FakeClock) -> None:
    with_task(queue)
    queue.schedule("beat", cron=EVERY_SECOND, catch_up=100)
    scheduler = Scheduler(internals(queue))
    assert queue.pause_schedule("beat").paused
    assert scheduler.step(T0 + 30) == 0
    clock.set(T0 + 30)
    resumed = queue.resume_schedule("beat")
    assert not resumed.paused
    assert resumed.next_run_at.timestamp() == T0 + 31  # the paused ticks are not caught up
    assert scheduler.step(T0 + 31) == 1
    assert keys(queue) == [at(31)]


def test_a_pause_survives_a_worker_start_and_a_changed_cron_starts_afresh(queue: Queue, clock: FakeClock) -> None:
    queue.periodic("*/5 * * * *")(with_task(queue))
    runtime = internals(queue)
    define_all(runtime)
    queue.pause_schedule("beat")
    clock.advance(61)
    define_all(runtime)  # unchanged: nothing moves
    unchanged = queue.get_schedule("beat")
    assert unchanged.paused
    assert unchanged.next_run_at.timestamp() == T0 + 300
    changed = queue.schedule("beat", cron="*/10 * * * *")
    assert changed.paused
    assert changed.next_run_at.timestamp() == T0 + 600


def test_catch_up_after_downtime_enqueues_at_most_that_many(queue: Queue) -> None:
    with_task(queue)
    queue.schedule("beat", cron="* * * * *", catch_up=2)
    assert Scheduler(internals(queue)).step(T0 + 3600 + 30) == 2  # an hour down
    assert keys(queue) == [at(3540), at(3600)]
    assert queue.get_schedule("beat").next_run_at.timestamp() == T0 + 3660


def test_unschedule_deletes_and_unknown_names_are_not_found(queue: Queue) -> None:
    with_task(queue)
    queue.schedule("beat", cron="* * * * *")
    queue.unschedule("beat")
    assert queue.schedules() == []
    for act in (queue.unschedule, queue.pause_schedule, queue.get_schedule):
        with pytest.raises(ScheduleNotFound, match="no schedule is named 'beat'"):
            act("beat")


def test_stats_list_the_schedules(queue: Queue) -> None:
    with_task(queue)
    queue.schedule("beat", cron="* * * * *")
    assert [s.name for s in queue.stats().schedules] == ["beat"]


def test_opening_a_revision_6_database_adds_the_schedules_table(db_url: str) -> None:
    q = Queue(db_url)
    q.open()
    with internals(q).db.write() as conn:  # as revision 6 left it
        conn.execute(meta.update().where(meta.c.key == "schema_revision").values(value="6"))
        conn.exec_driver_sql("DROP TABLE queuelab_schedules")
    q.close()
    q = Queue(db_url)
    assert q.schedules() == []
    with internals(q).db.read() as conn:
        found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_revision")).scalar_one()
    assert int(found) == SCHEMA_REVISION >= 7
    q.close()
