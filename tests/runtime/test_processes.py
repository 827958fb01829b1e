"""Real worker processes, real signals, on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from queuelab import Job, JobStatus
from queuelab.errors import LeaseLost
from queuelab.models import AttemptOutcome, Lease
from queuelab.policy import Complete
from queuelab.submission import Submission
from queuelab.testing import internals
from tests.support.helpers import (
    WorkerProcess,
    drain_each_once,
    read_records,
    recorder_queue,
    starts_per_job,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_eight_worker_processes_drain_5000_jobs_each_exactly_once(db_url: str, tmp_path: Path) -> None:
    q = recorder_queue(db_url)
    record, output = drain_each_once(q, db_url, tmp_path, 5000, concurrency=8)
    assert (q.jobs_frame()["status"] == "COMPLETED").all()
    pids = {pid for _, _, pid, _, _ in read_records(record)}
    assert len(pids) > 1, "the work should be shared between the worker processes"
    assert "Traceback" not in output
    q.close()


def test_sigkilled_worker_job_is_rescued_and_its_late_ack_refused(db_url: str, tmp_path: Path) -> None:
    record = tmp_path / "executions.log"
    q = recorder_queue(db_url)
    job = q.submit("record", {"path": str(record), "first_seconds": 60}, lease_seconds=2)
    worker = WorkerProcess(db_url, tmp_path / "worker.log", mode="process", concurrency=2)
    try:
        wait_for_status(q, job.id, JobStatus.RUNNING)
        running = q.get(job.id)
        assert running.lease_owner is not None
        assert running.lease_token is not None
        victim = int(running.lease_owner.split(":")[1])
        assert victim != worker.pid  # a child of the supervisor
        import os

        os.kill(victim, signal.SIGKILL)
        wait_for_status(q, job.id, JobStatus.COMPLETED, timeout=30)
        done = q.get(job.id)
        assert [a.outcome for a in done.history] == [AttemptOutcome.LOST, AttemptOutcome.COMPLETED]
        assert done.history[0].worker_id == running.lease_owner
        assert done.history[1].worker_id != running.lease_owner
        assert done.attempts == 2

        late = Lease(
            job_id=job.id,
            token=running.lease_token,
            task="record",
            payload={},
            user_id="default",
            queue="default",
            attempt=1,
            max_retries=3,
            lease_seconds=2,
            timeout_seconds=None,
            started_at=0.0,
        )
        with pytest.raises(LeaseLost):
            internals(q).leases.ack(late, Complete({"late": True}), running.lease_owner, q.clock.now())
        assert q.get(job.id).result == done.result
        assert q.get(job.id).status == JobStatus.COMPLETED

        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()
    q.close()


def sigterm_during_a_job(db_url: str, tmp_path: Path, mode: str, seconds: float, grace: str) -> tuple[Job, str]:
    """Start a job of ``seconds``, SIGTERM its worker while it runs; the worker must exit 0."""
    q = recorder_queue(db_url)
    job = q.submit("record", {"path": str(tmp_path / "executions.log"), "seconds": seconds})
    worker = WorkerProcess(db_url, tmp_path / "worker.log", mode=mode, QUEUELAB_SHUTDOWN_GRACE_SECONDS=grace)
    try:
        wait_for_status(q, job.id, JobStatus.RUNNING)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()
    after = q.get(job.id)
    q.close()
    return after, worker.output()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_sigterm_lets_a_running_job_finish_and_exits_zero(db_url: str, tmp_path: Path, mode: str) -> None:
    done, _ = sigterm_during_a_job(db_url, tmp_path, mode, seconds=1.5, grace="20")
    assert (done.status, done.attempts) == (JobStatus.COMPLETED, 1)
    assert [event for *_, event, _ in read_records(tmp_path / "executions.log")] == ["start", "end"]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_sigterm_releases_a_job_that_outlives_the_grace_period(db_url: str, tmp_path: Path, mode: str) -> None:
    released, output = sigterm_during_a_job(db_url, tmp_path, mode, seconds=60, grace="0.5")
    assert (released.status, released.attempts, released.lease_token) == (JobStatus.PENDING, 0, None)
    assert released.history[-1].outcome == AttemptOutcome.RELEASED
    assert "released job" in output


def test_process_mode_kills_a_job_past_its_timeout_and_keeps_working(db_url: str, tmp_path: Path) -> None:
    record = tmp_path / "executions.log"
    q = recorder_queue(db_url)
    stuck = q.submit("stuck", {"path": str(record)})  # timeout_seconds=1, max_retries=0
    worker = WorkerProcess(db_url, tmp_path / "worker.log", mode="process", concurrency=1)
    try:
        wait_for_status(q, stuck.id, JobStatus.FAILED, timeout=30)
        after = q.submit("record", {"path": str(record)})
        wait_for_status(q, after.id, JobStatus.COMPLETED, timeout=30)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()
    dead = q.get(stuck.id)
    assert dead.errors[-1].outcome == AttemptOutcome.TIMEOUT
    assert dead.errors[-1].error_type == "JobTimeout"
    stuck_pid = next(pid for job_id, _, pid, _, _ in read_records(record) if job_id == stuck.id)
    after_pid = next(pid for job_id, _, pid, _, _ in read_records(record) if job_id == after.id)
    assert stuck_pid != after_pid  # the stuck process was killed and replaced
    assert "timed out" in worker.output()
    q.close()


def test_a_running_quota_holds_across_eight_worker_processes(db_url: str, tmp_path: Path) -> None:
    record = tmp_path / "executions.log"
    q = recorder_queue(db_url)
    q.set_limits("alice", max_running=3)
    jobs = q.submit_many(
        Submission(task="record", payload={"path": str(record), "seconds": 0.05}, user_id="alice") for _ in range(200)
    )
    worker = WorkerProcess(db_url, tmp_path / "worker.log", mode="process", concurrency=8)
    try:
        wait_until(
            lambda: q.stats().by_status["COMPLETED"] == 200, timeout=240, interval=0.5, what="200 jobs to complete"
        )
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()
    records = read_records(record)
    events = sorted((when, 1 if event == "start" else -1) for _, _, _, event, when in records)
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 3  # never more, and the quota was used, not stuck below it
    assert set(starts_per_job(record).values()) == {1}
    assert {q.get(job.id).attempts for job in jobs[:20]} == {1}  # deferrals spend no attempt
    assert (q.jobs_frame()["attempts"] == 1).all()
    q.close()
