"""Cancelling a RUNNING job, end to end, on both databases: a thread-mode job stops at its
next check (``current_job().cancelled``, ``check_cancelled()``, ``progress()``), an async
job's coroutine is cancelled, a job that ignores the cancel is abandoned (thread mode) or
killed with its worker process (process mode) after the grace period; every one ends
CANCELLED with its attempt unspent and who cancelled it in its history.

No fixed sleeps: each test waits for the job to be RUNNING (an event the task sets, or the
database), cancels, and waits for CANCELLED with a generous bound."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from queuelab import Job, JobCancelled, JobStatus, Queue, current_job
from queuelab.models import ActionKind, AttemptOutcome
from tests.support.helpers import WorkerProcess, read_records, recorder_queue, wait_for_status, wait_until


def assert_cancelled_unspent(job: Job, by: str) -> None:
    assert (job.status, job.attempts, job.lease_token) == (JobStatus.CANCELLED, 0, None)
    assert job.history[-1].outcome == AttemptOutcome.CANCELLED
    assert [(a.kind, a.by, a.from_status) for a in job.actions] == [(ActionKind.CANCELLED, by, JobStatus.RUNNING)]


def test_a_thread_mode_job_stops_at_its_next_check(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()
    started, checks = threading.Event(), []

    @q.task(max_retries=3)
    def patient() -> str:
        started.set()
        while not current_job().cancelled:
            current_job().wait_cancelled(0.01)
            checks.append(1)
        return "stopped early"  # whatever it returns, the job ends CANCELLED

    job = q.submit("patient")
    with q.worker(1):
        assert started.wait(30)
        q.cancel(job.id, by="ops-ann")
        wait_for_status(q, job.id, JobStatus.CANCELLED, timeout=30)
    done = q.get(job.id)
    assert_cancelled_unspent(done, "ops-ann")
    assert done.result is None
    assert done.history[-1].error_message == "cancelled while running; the task stopped"
    assert checks  # it was running, checking, when the cancel came


@pytest.mark.parametrize("check", ["check_cancelled", "progress"])
def test_check_cancelled_and_progress_raise_job_cancelled(make_queue: Callable[..., Queue], check: str) -> None:
    q = make_queue()
    started, raised = threading.Event(), list[BaseException]()

    @q.task(max_retries=3)
    def reporting() -> None:
        started.set()
        try:
            while True:
                current_job().wait_cancelled(0.01)
                if check == "progress":
                    current_job().progress(0.5)
                else:
                    current_job().check_cancelled()
        except JobCancelled as exc:
            raised.append(exc)
            raise

    job = q.submit("reporting")
    with q.worker(1):
        assert started.wait(30)
        q.cancel(job.id, by="ops")
        wait_for_status(q, job.id, JobStatus.CANCELLED, timeout=30)
    assert_cancelled_unspent(q.get(job.id), "ops")
    assert [str(e) for e in raised] == [f"job {job.id} was cancelled"]


def test_an_async_job_is_cancelled_on_its_loop(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()
    started = threading.Event()

    @q.task(max_retries=3)
    async def napping() -> None:
        started.set()
        await asyncio.sleep(3600)

    job = q.submit("napping")
    with q.worker(1):
        assert started.wait(30)
        q.cancel(job.id, by="ops")
        wait_for_status(q, job.id, JobStatus.CANCELLED, timeout=30)
        after = q.submit("napping")  # the loop runs on
        wait_for_status(q, after.id, JobStatus.RUNNING, timeout=30)
        q.cancel(after.id)
        wait_for_status(q, after.id, JobStatus.CANCELLED, timeout=30)
    assert_cancelled_unspent(q.get(job.id), "ops")


def test_a_thread_mode_job_that_ignores_its_cancel_is_abandoned_after_the_grace_period(
    make_queue: Callable[..., Queue],
) -> None:
    q = make_queue(cancel_grace_seconds=0.2)
    started, unstuck = threading.Event(), threading.Event()

    @q.task(max_retries=3)
    def deaf() -> None:
        started.set()
        unstuck.wait(60)  # never looks at current_job().cancelled

    @q.task
    def quick() -> str:
        return "ok"

    job = q.submit("deaf")
    try:
        with q.worker(1):
            assert started.wait(30)
            q.cancel(job.id, by="ops")
            wait_for_status(q, job.id, JobStatus.CANCELLED, timeout=30)
            after = q.submit("quick")  # a fresh slot took the abandoned one's place
            wait_for_status(q, after.id, JobStatus.COMPLETED, timeout=30)
    finally:
        unstuck.set()
    done = q.get(job.id)
    assert_cancelled_unspent(done, "ops")
    assert "did not stop within 0.2s" in (done.history[-1].error_message or "")


def test_process_mode_kills_a_job_stuck_in_a_sleep_after_the_grace_period(db_url: str, tmp_path: Path) -> None:
    record = tmp_path / "executions.log"
    q = recorder_queue(db_url)
    stuck = q.submit("record", {"path": str(record), "seconds": 3600.0}, max_retries=3)
    worker = WorkerProcess(
        db_url, tmp_path / "worker.log", mode="process", concurrency=1, QUEUELAB_CANCEL_GRACE_SECONDS="0.5"
    )
    try:
        wait_until(lambda: read_records(record) if record.exists() else None, timeout=30, what="the job to start")
        q.cancel(stuck.id, by="ops")
        wait_for_status(q, stuck.id, JobStatus.CANCELLED, timeout=60)
        after = q.submit("record", {"path": str(record)})
        wait_for_status(q, after.id, JobStatus.COMPLETED, timeout=60)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()
    done = q.get(stuck.id)
    assert_cancelled_unspent(done, "ops")
    assert "killed with its worker process" in (done.history[-1].error_message or "")
    runs = read_records(record)
    assert [event for job_id, *_, event, _ in runs if job_id == stuck.id] == ["start"]  # it never ended
    stuck_pid = next(pid for job_id, _, pid, _, _ in runs if job_id == stuck.id)
    after_pid = next(pid for job_id, _, pid, _, _ in runs if job_id == after.id)
    assert stuck_pid != after_pid  # the process was killed and replaced
    assert "of its cancel" in worker.output()
    q.close()
