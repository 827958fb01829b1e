"""A worker pool inside the test process (thread mode), on each database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from queuelab import FakeClock, JobStatus, Queue, SchemaVersionError, current_job
from queuelab.models import AttemptOutcome
from queuelab.runtime import Worker
from queuelab.runtime import worker as worker_module
from queuelab.runtime.held import Entry, HeldJobs
from queuelab.store import admission, quota_sql
from queuelab.store.schema import SCHEMA_REVISION, meta
from queuelab.testing import internals
from tests.support.helpers import wait_for_status, wait_until


def test_a_thread_pool_runs_jobs_and_shows_in_stats(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()
    jobs = [q.submit("simulate", {"duration": 0.01}, user_id=f"user{i % 3}") for i in range(30)]
    with q.worker(3):
        wait_until(lambda: q.stats().by_status["COMPLETED"] == 30, timeout=30, what="30 jobs to complete")
        live = q.stats().live_workers
        assert len(live) == 1
        assert (live[0].mode, live[0].concurrency) == ("thread", 3)
    assert q.stats().live_workers == []
    assert all(q.get(j.id).result == {"slept": 0.01} for j in jobs)
    frame = q.jobs_frame()
    assert len(frame) == 30
    assert set(frame["status"]) == {"COMPLETED"}
    assert str(frame["finished_at"].dtype).startswith("datetime64")
    assert (frame["finished_at"] >= frame["started_at"]).all()


def test_the_prototype_failing_job_lands_in_the_dlq_with_four_errors(make_queue: Callable[..., Queue]) -> None:
    clock = FakeClock()
    q = make_queue(clock=clock)  # default retry settings: the prototype's 3 retries
    job = q.submit("simulate", {"fail_simulation": True, "duration": 0.01}, user_id="bob")
    worker = Worker(internals(q), concurrency=2)
    for _ in range(4):  # each attempt, then its backoff (at most retry_max_seconds)
        assert len(worker.step()) == 1
        worker.flush()
        clock.advance(q.settings.retry_max_seconds)
    assert worker.step() == []
    dead = q.get(job.id)
    assert dead.attempts == 4
    assert [e.error_type for e in dead.errors] == ["SimulatedFailure"] * 4
    assert all("Traceback" in (e.traceback or "") for e in dead.errors)
    assert [j.id for j in q.dlq()] == [job.id]


def test_thread_mode_fails_a_job_past_its_timeout_and_frees_its_slot(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()
    release = threading.Event()

    @q.task(timeout_seconds=0.3, max_retries=0)
    def hang() -> None:
        release.wait(30)

    stuck = q.submit("hang")
    with q.worker(1):
        wait_for_status(q, stuck.id, JobStatus.FAILED, timeout=30)
        after = q.submit("simulate")
        wait_for_status(q, after.id, JobStatus.COMPLETED, timeout=30)  # the one slot was replaced
        release.set()
    dead = q.get(stuck.id)
    assert dead.errors[-1].outcome == AttemptOutcome.TIMEOUT
    assert "timeout of 0.3s" in (dead.errors[-1].error_message or "")


def test_an_idle_worker_starts_a_delayed_job_when_it_is_due(make_queue: Callable[..., Queue]) -> None:
    q = make_queue(poll_interval_seconds=30)  # no help from polling
    with q.worker(1):
        time.sleep(0.2)  # the worker is idle, waiting
        job = q.submit("simulate", delay=0.5)
        wait_for_status(q, job.id, JobStatus.COMPLETED, timeout=10)
    done = q.get(job.id)
    assert done.started_at is not None
    assert done.started_at >= done.run_at


def test_a_job_handed_to_an_idle_slot_starts_before_the_next_turn(
    make_queue: Callable[..., Queue], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submit wakes an idle worker: the turn that claims the job hands it to a slot, and
    the slot starts it before any other turn (the dispatcher's claim ahead would otherwise
    hold Python's lock until its database wait). The hand-over wait is made long enough
    that no machine is too slow for it: it ends when the slot starts, not at its bound."""
    monkeypatch.setattr(worker_module, "HANDOFF_SECONDS", 60.0)
    q = make_queue()
    events: list[tuple[str, str]] = []

    @q.task
    def mark() -> None:
        pass

    real_start = HeldJobs.start

    def start(held: HeldJobs, entry: Entry, *args: Any, **kwargs: Any) -> bool:
        started = real_start(held, entry, *args, **kwargs)  # recorded before the slot tells the dispatcher
        if started:
            events.append(("start", entry.lease.job_id))
        return started

    monkeypatch.setattr(HeldJobs, "start", start)
    leases = internals(q).leases
    real = leases.ack_and_claim

    def turn(*args: Any, **kwargs: Any) -> Any:
        events.append(("turn", ""))  # every turn, those that claim nothing too
        lost, claimed = real(*args, **kwargs)
        events.extend(("claimed", lease.job_id) for lease in claimed)
        return lost, claimed

    monkeypatch.setattr(leases, "ack_and_claim", turn)
    with q.worker(1):
        for _ in range(5):
            q.wait(q.submit("mark"), timeout=30)  # the worker is idle again when the next comes
    started = [job for what, job in events if what == "start"]
    assert len(started) == 5
    for job in started:
        claimed_at = events.index(("claimed", job))
        assert events[claimed_at + 1] == ("start", job), events


def test_a_task_sees_its_own_job(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()

    @q.task
    def whoami() -> dict[str, object]:
        job = current_job()
        return {"id": job.job_id, "attempt": job.attempt, "user": job.user_id}

    job = q.submit("whoami", user_id="carol")
    with q.worker(1):
        wait_for_status(q, job.id, JobStatus.COMPLETED)
    assert q.get(job.id).result == {"id": job.id, "attempt": 1, "user": "carol"}


def test_a_result_that_is_not_json_fails_the_attempt(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()

    @q.task(max_retries=0)
    def returns_a_set() -> object:
        return {1, 2}

    job = q.submit("returns_a_set")
    with q.worker(1):
        wait_for_status(q, job.id, JobStatus.FAILED)
    assert q.get(job.id).errors[-1].error_type == "ResultNotSerializable"


def test_a_database_from_a_newer_schema_is_refused(db_url: str) -> None:
    q = Queue(db_url)
    q.stats()
    with internals(q).db.write() as conn:
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="99"))
    q.close()
    with pytest.raises(SchemaVersionError, match=r"schema version 99.*only knows versions up to 1"):
        Queue(db_url).stats()


def test_sqlite_runs_in_wal_mode_with_the_configured_durability(sqlite_url: str) -> None:
    q = Queue(sqlite_url, sqlite_synchronous="FULL")
    with internals(q).db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY: statement journals too
    q.close()


def sqlite_plan(q: Queue, sql: str, params: tuple[object, ...] = ()) -> str:
    """SQLite's plan for ``sql``, its steps joined into one string."""
    with internals(q).db.engine.connect() as conn:
        return " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all())


def test_the_claim_reads_the_partial_index_in_order(sqlite_url: str) -> None:
    """The claim must not sort the pending set (it would cost O(backlog) per claim)."""
    q = Queue(sqlite_url)
    q.submit("simulate")
    details = sqlite_plan(
        q,
        "SELECT id FROM queuelab_jobs WHERE status = 'PENDING' AND run_at <= 1e12 "
        "ORDER BY priority DESC, fair_rank LIMIT 1",
    )
    assert "queuelab_jobs_claim" in details
    assert "TEMP B-TREE" not in details
    assert sa.inspect(internals(q).db.engine).get_indexes("queuelab_jobs")
    q.close()


def test_opening_an_older_database_adds_the_indexes_and_tables_it_lacks(db_url: str) -> None:
    q = Queue(db_url)
    q.stats()
    with internals(q).db.write() as conn:  # as revision 1 left it
        conn.execute(meta.delete().where(meta.c.key == "schema_revision"))
        conn.exec_driver_sql("DROP INDEX queuelab_jobs_running_user")
        conn.exec_driver_sql("DROP TABLE queuelab_user_locks")
        conn.exec_driver_sql("DROP INDEX queuelab_jobs_user_pending")  # revisions 1-12 had the index over every row
        conn.exec_driver_sql("CREATE INDEX queuelab_jobs_user ON queuelab_jobs (user_id, status, priority, fair_rank)")
    q.close()
    q = Queue(db_url)
    q.stats()
    inspector = sa.inspect(internals(q).db.engine)
    names = {index["name"] for index in inspector.get_indexes("queuelab_jobs")}
    assert {"queuelab_jobs_running_user", "queuelab_jobs_user_pending"} <= names
    assert "queuelab_jobs_user" not in names  # retired at revision 13
    assert inspector.has_table("queuelab_user_locks")
    with internals(q).db.read() as conn:
        found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_revision")).scalar_one()
    assert int(found) == SCHEMA_REVISION
    q.close()


def test_the_quota_claim_counts_running_jobs_without_reading_the_history(sqlite_url: str) -> None:
    """The quota claim's per-user counts of RUNNING jobs read the small RUNNING index, never
    a scan of every job the table holds (O(history) per claim)."""
    q = Queue(sqlite_url)
    q.submit("simulate")
    statement = quota_sql.sqlite_quota_claim(0, 0, 0).compile(dialect=internals(q).db.engine.dialect)
    details = sqlite_plan(q, statement.string, tuple(0 for _ in statement.positiontup or ()))
    assert "queuelab_jobs_running_user" in details, details
    assert "SCAN queuelab_jobs USING COVERING INDEX queuelab_jobs_user" not in details, details
    q.close()


def test_the_active_cap_counts_a_users_jobs_without_reading_the_history(sqlite_url: str) -> None:
    """The cap's count of a user's PENDING and RUNNING jobs reads the two partial indexes,
    never the user's finished jobs (O(history) per submit)."""
    q = Queue(sqlite_url)
    q.submit("simulate")
    statement = admission._ACTIVE_COUNT.compile(dialect=internals(q).db.engine.dialect)
    details = sqlite_plan(q, statement.string, tuple("alice" for _ in statement.positiontup or ()))
    assert "queuelab_jobs_user_pending" in details, details
    assert "queuelab_jobs_running_user" in details, details
    assert "queuelab_jobs_user_created" not in details, details
    q.close()
