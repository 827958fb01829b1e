"""Regression tests: each guards against a bug that was once there, and is named after the
behaviour it protects. (Each belongs beside its feature; they move there with the test tiers.)"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from queuelab import InvalidArgument, JobStatus, Queue, RetryPolicy, Submission
from queuelab.models import AttemptOutcome
from queuelab.testing import internals
from tests.support.helpers import APP, ROOT, WorkerProcess, read_records, recorder_queue, wait_for_status, wait_until


def test_a_task_raising_a_base_exception_or_an_unprintable_error_does_not_kill_its_slot(
    db_url: str, tmp_path: Path
) -> None:
    record = tmp_path / "executions.log"
    q = recorder_queue(db_url)
    base = q.submit("raise_base_exception", {"path": str(record)})
    unprintable = q.submit("raise_unprintable", {"path": str(record)})
    with q.worker(1):
        wait_for_status(q, base.id, JobStatus.FAILED, timeout=30)
        wait_for_status(q, unprintable.id, JobStatus.FAILED, timeout=30)
        after = q.submit("record", {"path": str(record)})
        wait_for_status(q, after.id, JobStatus.COMPLETED, timeout=30)  # the one slot still works
    assert q.get(base.id).errors[-1].error_type == "NotAnException"
    assert "could not be read" in (q.get(unprintable.id).errors[-1].error_message or "")
    q.close()


@pytest.mark.slow
def test_a_process_exiting_after_a_timeout_claims_no_innocent_job(db_url: str, tmp_path: Path) -> None:
    record = tmp_path / "executions.log"
    q = recorder_queue(db_url)
    stuck = q.submit("stuck", {"path": str(record)}, priority=9)  # timeout 1 s, no retries
    innocent = [q.submit("record", {"path": str(record)}, max_retries=0) for _ in range(3)]
    worker = WorkerProcess(db_url, tmp_path / "worker.log", mode="process", concurrency=1)
    try:
        wait_for_status(q, stuck.id, JobStatus.FAILED, timeout=30)
        for job in innocent:
            wait_for_status(q, job.id, JobStatus.COMPLETED, timeout=30)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()
    for job in innocent:
        assert [a.outcome for a in q.get(job.id).history] == [AttemptOutcome.COMPLETED]
    q.close()


@pytest.mark.slow
def test_one_ctrl_c_to_a_process_pool_keeps_the_grace_period(sqlite_url: str, tmp_path: Path) -> None:
    record = tmp_path / "executions.log"
    q = recorder_queue(sqlite_url)
    job = q.submit("record", {"path": str(record), "seconds": 1.5})
    command = [
        sys.executable,
        "-m",
        "queuelab",
        "worker",
        "--db",
        sqlite_url,
        "--app",
        APP,
        "--mode",
        "process",
        "--concurrency",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QUEUELAB_SHUTDOWN_GRACE_SECONDS": "20"}
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_status(q, job.id, JobStatus.RUNNING)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    done = q.get(job.id)
    assert (done.status, done.attempts) == (JobStatus.COMPLETED, 1)
    assert [event for *_, event, _ in read_records(record)] == ["start", "end"]
    q.close()


def test_prune_refuses_nan(queue: Queue) -> None:
    with pytest.raises(InvalidArgument, match="older_than must be a number of seconds >= 0, got nan"):
        queue.prune(float("nan"))


def test_an_apps_settings_and_tasks_survive_a_db_override(tmp_path: Path) -> None:
    from queuelab.queue import load_queue
    from tests.support.apps import recorder

    rebased = load_queue(f"sqlite:///{tmp_path}/other.db", APP)
    assert rebased.settings == recorder.q.settings.with_changes(database_url=f"sqlite:///{tmp_path}/other.db")
    assert {t.name for t in rebased.tasks} >= {"record", "stuck"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q: q.worker(1, queues="emails"), "queues must be a non-empty list of queue names"),
        (lambda q: q.worker(1, queues=["bad name!"]), "queue must be 1 to 64 letters"),
        (lambda q: q.worker(1, "process", start_method="bogus"), "start_method must be one of"),
        (lambda q: q.task(retry={"base": 1})(lambda: None), "retry must be a queuelab.RetryPolicy or None"),
        (lambda q: q.task(check="yes")(lambda: None), "check must be a function"),
        (lambda q: q.submit("simulate", user_id="a\ud800b"), "user_id must be a non-empty string"),
        (lambda q: q.submit("simulate", idempotency_key="k\ud800"), "idempotency_key must be a string"),
    ],
)
def test_bad_worker_task_and_submit_arguments_are_refused_and_store_nothing(
    queue: Queue, call: Callable[[Queue], object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call(queue)
    assert sum(queue.stats().by_status.values()) == 0


def test_a_task_keeps_the_retry_policy_it_was_given(queue: Queue) -> None:
    task = queue.task(name="patient", retry=RetryPolicy(base_seconds=2.0, jitter=0.0))(lambda: None)
    assert task.retry == RetryPolicy(base_seconds=2.0, jitter=0.0)


def test_prune_works_in_bounded_batches(queue: Queue) -> None:
    from queuelab.policy import Complete

    for _ in range(5):
        queue.submit("simulate")
    for lease in internals(queue).leases.claim("w", None, 5, queue.clock.now()):
        internals(queue).leases.ack(lease, Complete(None), "w", queue.clock.now())
    later = queue.clock.now() + 10
    assert internals(queue).jobs.prune(later, batch=2, max_batches=1) == 2
    assert internals(queue).jobs.prune(later, batch=2) == 3


@pytest.mark.postgres
def test_the_first_call_after_postgresql_closed_a_pooled_connection_succeeds(postgres_url: str) -> None:
    """Found by the PostgreSQL restart test: after a restart, the first statement on each
    pooled connection failed with 'terminating connection due to administrator command'.
    Here the server closes the queue's one pooled connection, as a restart would."""
    q = Queue(postgres_url)
    q.submit("simulate", {"duration": 0})
    with internals(q).db.read() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    dsn = sa.make_url(postgres_url).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        # The backend sends FATAL and closes its socket before it exits: once it is gone from
        # pg_stat_activity, both have reached the idle connection's socket (a fixed sleep
        # would pass on a fast machine and test nothing, or fail, on a slow one).
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
        wait_until(lambda: admin.execute(gone, (pid,)).fetchone() == (0,), timeout=30, what="the backend to exit")
    assert q.stats().by_status["PENDING"] == 1  # no StoreError: the dead connection was replaced
    q.close()


@pytest.mark.slow
def test_stopping_a_pool_while_a_slot_waits_to_restart_logs_no_false_kill(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the crash benchmark: a pool stopped while a killed child's slot waited out
    its restart back-off logged 'worker process None did not stop in time; killing it'."""
    from queuelab.runtime import supervisor
    from queuelab.runtime.pool import ProcessPool

    monkeypatch.setattr(supervisor, "FIRST_RESTART_DELAY", 3600.0)  # the slot waits until the stop
    q = Queue(sqlite_url)
    pool = ProcessPool(internals(q), 1).start()
    wait_until(lambda: len(q.stats().live_workers) == 1, timeout=60, what="the worker")
    os.kill(pool.pids()[0], signal.SIGKILL)  # dies young: its slot waits out the back-off
    wait_until(lambda: pool.supervisor.waiting() == 1, timeout=10, what="the back-off")
    with caplog.at_level("WARNING", logger="queuelab.pool"):
        pool.stop()
    assert "did not stop in time" not in caplog.text
    q.close()


@pytest.mark.postgres
def test_a_process_holding_over_1024_descriptors_still_uses_its_pool(postgres_url: str) -> None:
    """The checkout check for a closed pooled connection (above) once watched the socket with
    select(), which raises for a descriptor above 1023, so a busy process's every checkout
    failed. poll() has no such limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"cannot raise the open-file limit to 2048 here (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        q = Queue(postgres_url)  # its pool's sockets get descriptors above 1100
        q.submit("simulate", {"duration": 0})
        assert q.stats().by_status["PENDING"] == 1
        q.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_postgres_user_new_to_the_quota_claim_is_not_passed_over(postgres_url: str) -> None:
    """The one-statement quota claim once passed over a user without a lock row, who got one
    only when a claim took nothing, so while anyone else had work the new
    user's jobs (even at priority 9) were never taken."""
    q = Queue(postgres_url)
    q.set_limits("*", max_running=1000)
    q.submit_many(Submission(task="simulate", user_id="alice") for _ in range(20))
    (first,) = internals(q).leases.claim("w", None, 1, q.clock.now())
    assert first.user_id == "alice"
    q.submit("simulate", user_id="bob", priority=9)
    taken = [lease.user_id for _ in range(2) for lease in internals(q).leases.claim("w", None, 1, q.clock.now())]
    assert "bob" in taken  # the first claim adds bob's row, the next takes his job
    q.close()


def test_a_limit_set_here_is_not_hidden_by_a_read_that_began_before_it(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot of the limits read by another thread before set_limits committed must not
    be cached after set_limits invalidated the cache (it once was, hiding the change for 0.5 s)."""
    from queuelab.store import limits as limits_store

    q = Queue(sqlite_url)
    cache = limits_store.cache_for(internals(q).db)
    cache.invalidate()
    real, read_done, go = limits_store.read_snapshot, threading.Event(), threading.Event()

    def slow_read(conn: Any) -> Any:  # the reader's read ends before set_limits commits
        snapshot = real(conn)
        if threading.current_thread().name == "reader":
            read_done.set()
            go.wait(5)
        return snapshot

    monkeypatch.setattr(limits_store, "read_snapshot", slow_read)

    def reader() -> None:
        with internals(q).db.read() as conn:
            cache.get(conn)

    thread = threading.Thread(target=reader, name="reader")
    thread.start()
    assert read_done.wait(5)
    q.set_limits("alice", max_running=5)
    go.set()
    thread.join(5)
    assert q.limits("alice").max_running == 5
    q.close()


def test_an_idle_postgres_worker_takes_a_job_freed_by_a_quota_without_waiting_a_poll(
    postgres_database_url: str,
) -> None:
    """An ack that frees a user's quota slot must wake an idle worker whose claim found that
    user's job held back; with nothing to NOTIFY it, it once slept the whole poll interval
    (here 3 s)."""
    q = Queue(postgres_database_url, poll_interval_seconds=3.0)
    q.set_limits("carol", max_running=1)
    first = q.submit("simulate", {"duration": 0.4}, user_id="carol", queue="a")
    with q.worker(1, queues=["a"]):
        wait_for_status(q, first.id, JobStatus.RUNNING)
        second = q.submit("simulate", user_id="carol", queue="b")  # held: carol is at quota
        with q.worker(1, queues=["b"]):
            wait_for_status(q, second.id, JobStatus.COMPLETED, timeout=30)
    ended, started = q.get(first.id).finished_at, q.get(second.id).started_at
    assert ended is not None
    assert started is not None
    assert (started - ended).total_seconds() < 1.5  # a poll would have slept until ~3 s
    q.close()


def test_an_idle_postgres_worker_under_quotas_does_not_poll_a_paused_queue(postgres_database_url: str) -> None:
    """A due job in a paused queue is not held back by a quota: it once counted as such, so
    every idle worker claimed four times a second for as long as the queue stayed paused."""
    q = Queue(postgres_database_url, poll_interval_seconds=5.0)
    q.set_limits("*", max_running=5)
    q.submit("simulate", user_id="a", queue="p")
    q.pause("p")
    claims = 0
    settle = internals(q).leases.ack_and_claim

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return settle(*args, **kwargs)

    internals(q).leases.ack_and_claim = counting  # type: ignore[method-assign]
    with q.worker(1):
        time.sleep(2.0)
    assert claims <= 2  # the first claim, perhaps one after the worker's start-up wake
    q.close()
