"""Prefetch (``QUEUELAB_PREFETCH``): a worker claims jobs beyond its free slots and runs
them without a transaction each. On each database: every job still runs once, each
attempt's start is when it really started, a stop hands unstarted jobs back without
spending an attempt, a crash spends one only of the jobs that had started (the others are
rescued unspent), and no job is prefetched while a running quota is set."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from queuelab import JobStatus, Queue, current_job
from queuelab.models import AttemptOutcome
from queuelab.runtime.worker import Worker
from queuelab.store.schema import jobs
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


def test_two_prefetching_worker_processes_run_every_job_once(db_url: str, tmp_path: Path) -> None:
    q = recorder_queue(db_url)
    _, output = drain_each_once(q, db_url, tmp_path, 2000, concurrency=2, prefetch=50)
    assert "prefetch 50" in output
    assert "Traceback" not in output
    q.close()


def test_a_prefetched_job_records_when_it_really_started(make_queue: Callable[..., Queue]) -> None:
    q = make_queue(prefetch=5)
    jobs = [q.submit("simulate", {"duration": 0.1}) for _ in range(6)]
    with q.worker(1):  # one claim takes all six; the slot runs them one after another
        wait_until(lambda: q.stats().by_status["COMPLETED"] == 6, timeout=30, what="6 jobs to complete")
    done = [q.get(job.id) for job in jobs]
    starts = sorted(job.started_at for job in done if job.started_at is not None)
    assert len(starts) == 6
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 0.09, gaps  # each started when the one before it had run its 0.1 s
    for job in done:
        assert job.history[-1].started_at == job.started_at
        assert job.finished_at is not None
        assert job.started_at is not None
        assert 0.09 <= (job.finished_at - job.started_at).total_seconds() < 5


def test_a_stopped_worker_hands_back_its_prefetched_jobs_unspent(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()
    jobs = [q.submit("simulate", {"duration": 0.5}) for _ in range(6)]
    with q.worker(1, prefetch=5):  # the pool's own prefetch, over the setting's 0
        wait_until(lambda: q.stats().by_status["RUNNING"] == 6, timeout=30, what="one running, five prefetched")
    # The running job finished within the grace period; the five that never started are
    # PENDING again with no attempt spent, and their history says they were handed back.
    done = [q.get(job.id) for job in jobs]
    assert [job.status for job in done].count(JobStatus.COMPLETED) == 1
    waiting = [job for job in done if job.status != JobStatus.COMPLETED]
    assert len(waiting) == 5
    for job in waiting:
        assert (job.status, job.attempts, job.lease_token) == (JobStatus.PENDING, 0, None)
        assert [a.outcome for a in job.history] == [AttemptOutcome.RELEASED]
        assert job.history[0].started_at is None  # claimed, never started
    with q.worker(1):
        wait_until(lambda: q.stats().by_status["COMPLETED"] == 6, timeout=30, what="the five to run after all")
    assert all(q.get(job.id).attempts == 1 for job in waiting)


def test_a_killed_prefetching_worker_spends_an_attempt_only_of_the_job_it_had_started(
    db_url: str, tmp_path: Path
) -> None:
    record = tmp_path / "executions.log"
    q = recorder_queue(db_url)
    first = q.submit("record", {"path": str(record), "first_seconds": 60}, lease_seconds=2)
    held = [q.submit("record", {"path": str(record)}, lease_seconds=2) for _ in range(3)]
    worker = WorkerProcess(db_url, tmp_path / "worker.log", mode="process", concurrency=1, QUEUELAB_PREFETCH="3")
    try:
        wait_until(lambda: q.stats().by_status["RUNNING"] == 4, timeout=60, what="one running, three prefetched")
        victim = int((q.get(first.id).lease_owner or "").split(":")[1])
        os.kill(victim, signal.SIGKILL)
        for job in [first, *held]:
            wait_for_status(q, job.id, JobStatus.COMPLETED, timeout=60)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()
    for job in [first, *held]:
        after = q.get(job.id)
        assert [a.outcome for a in after.history] == [AttemptOutcome.LOST, AttemptOutcome.COMPLETED]
    assert q.get(first.id).attempts == 2  # it had started: the crash spent an attempt
    for job in held:  # claimed ahead, never started: handed back unspent
        after = q.get(job.id)
        assert after.attempts == 1
        assert after.history[0].started_at is None
        assert "without spending an attempt" in (after.history[0].error_message or "")
    starts = starts_per_job(record)
    assert starts[first.id] == 2
    assert all(starts[job.id] == 1 for job in held)
    q.close()


def test_a_timed_out_process_hands_back_its_prefetched_jobs_before_it_exits(db_url: str, tmp_path: Path) -> None:
    record = tmp_path / "executions.log"
    q = recorder_queue(db_url)
    stuck = q.submit("stuck", {"path": str(record)})  # timeout_seconds=1, max_retries=0
    held = [q.submit("record", {"path": str(record)}) for _ in range(3)]  # 30 s leases
    worker = WorkerProcess(db_url, tmp_path / "worker.log", mode="process", concurrency=1, QUEUELAB_PREFETCH="3")
    try:
        wait_for_status(q, stuck.id, JobStatus.FAILED, timeout=30)
        for job in held:  # well within their 30 s lease: they were handed back, not rescued
            wait_for_status(q, job.id, JobStatus.COMPLETED, timeout=20)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    finally:
        worker.stop()
    for job in held:
        after = q.get(job.id)
        assert after.attempts == 1
        assert [a.outcome for a in after.history] == [AttemptOutcome.RELEASED, AttemptOutcome.COMPLETED]
    stuck_pid = next(pid for job_id, _, pid, _, _ in read_records(record) if job_id == stuck.id)
    assert all(pid != stuck_pid for job_id, _, pid, _, _ in read_records(record) if job_id != stuck.id)
    q.close()


@pytest.mark.parametrize("prefetch", [0, 10])
def test_nothing_is_prefetched_while_a_running_quota_is_set(make_queue: Callable[..., Queue], prefetch: int) -> None:
    q = make_queue(prefetch=prefetch, max_running_per_user=2)
    jobs = [q.submit("simulate", {"duration": 0.3}, user_id="ann") for _ in range(4)]
    peak = 0
    with q.worker(1):
        deadline = time.monotonic() + 60
        while q.stats().by_status["COMPLETED"] < 4 and time.monotonic() < deadline:
            peak = max(peak, q.stats().by_status["RUNNING"])
            time.sleep(0.02)
    assert all(q.get(job.id).status == JobStatus.COMPLETED for job in jobs)
    assert peak == 1  # one slot: a prefetched job would hold ann's second running slot idle


def test_prefetched_jobs_run_in_claim_order(make_queue: Callable[..., Queue]) -> None:
    q = make_queue(prefetch=10)
    priorities = [0, 5, 1, 9, 3, 7]
    jobs = {q.submit("simulate", {"duration": 0.02}, priority=p).id: p for p in priorities}
    with q.worker(1):  # one claim takes all six; the slot runs them in the order claimed
        wait_until(lambda: q.stats().by_status["COMPLETED"] == 6, timeout=30, what="6 jobs to complete")
    started = sorted((q.get(job_id).started_at, p) for job_id, p in jobs.items())
    assert [p for _, p in started] == sorted(priorities, reverse=True)


@pytest.mark.parametrize("prefetch", [0, 5])
def test_a_stop_during_a_slots_own_turn_starts_nothing_it_claims(
    make_queue: Callable[..., Queue], prefetch: int
) -> None:
    """Review r8: the stop comes while a slot's own turn is in the database; the jobs that
    turn claims must be handed back, not started after the stop (nor after run() ends)."""
    q = make_queue(prefetch=prefetch, shutdown_grace_seconds=3.0)
    starts: dict[str, float] = {}

    @q.task(name="tagged")
    def tagged(tag: str, duration: float = 0.0) -> None:
        starts[tag] = time.monotonic()
        time.sleep(duration)

    worker = Worker(internals(q), concurrency=1)
    real_settle = internals(q).leases.ack_and_claim
    in_settle, go = threading.Event(), threading.Event()

    def settle(finished: Any, which: Any, limit: int, now: Any, ahead: int = 0) -> Any:
        if threading.current_thread().name.startswith("queuelab-slot") and finished and not in_settle.is_set():
            in_settle.set()
            go.wait(10)  # a slow round trip: the stop arrives meanwhile
        return real_settle(finished, which, limit, now, ahead)

    internals(q).leases.ack_and_claim = settle  # type: ignore[method-assign,assignment]
    q.submit("tagged", {"tag": "first", "duration": 0.2})
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert in_settle.wait(10), "the slot never took its own turn"
    worker.stop()
    stopped_at = time.monotonic()
    time.sleep(0.3)  # the dispatcher has left its loop; the drain waits for the turn
    later = [q.submit("tagged", {"tag": f"later{i}", "duration": 0.5}) for i in range(prefetch + 1)]
    go.set()
    thread.join(30)
    assert not thread.is_alive()
    # A slot thread that outlived run() could still start a job: every one must have ended.
    wait_until(lambda: worker.slots.alive() == 0, timeout=30, what="every slot thread to end")
    assert [tag for tag, at in starts.items() if at > stopped_at] == []
    for job in later:
        after = q.get(job.id)
        assert (after.status, after.attempts, after.lease_token) == (JobStatus.PENDING, 0, None)


def test_a_prefetched_job_whose_lease_was_lost_is_not_run_here(
    make_queue: Callable[..., Queue], caplog: pytest.LogCaptureFixture
) -> None:
    """Review r9: another worker holds the job now (its lease was rescued while it waited
    here); this worker must not run it as well. A runs until the worker's heartbeat has
    found B's lease gone (an event, not a duration: on a busy machine a fixed 2 s could end
    before that heartbeat, and the test would try a different race)."""
    q = make_queue(prefetch=3)
    ran: list[tuple[str, int]] = []
    release = threading.Event()

    @q.task(name="tagged_run")
    def tagged_run(tag: str, hold: bool = False) -> None:
        ran.append((tag, current_job().attempt))
        if hold:
            release.wait(120)

    q.submit("tagged_run", {"tag": "A", "hold": True}, lease_seconds=1.5)
    b = q.submit("tagged_run", {"tag": "B"}, lease_seconds=1.5)
    with caplog.at_level(logging.WARNING, logger="queuelab.worker"), q.worker(1):
        wait_until(lambda: q.get(b.id).status == JobStatus.RUNNING, timeout=10, what="B prefetched behind A")
        with internals(q).db.write() as conn:  # as if B had been rescued, claimed and started elsewhere
            elsewhere = {"lease_token": "elsewhere", "lease_owner": "other", "started_at": time.time()}
            conn.execute(jobs.update().where(jobs.c.id == b.id).values(**elsewhere))
        found_lost = f"job {b.id}: lease lost before it started here"
        wait_until(lambda: found_lost in caplog.text, timeout=60, what="the heartbeat to find B's lease lost")
        release.set()
        wait_until(lambda: q.get(b.id).status == JobStatus.COMPLETED, timeout=60, what="B to be rescued and run")
    assert ran == [("A", 1), ("B", 2)]
    assert [a.outcome for a in q.get(b.id).history] == [AttemptOutcome.LOST, AttemptOutcome.COMPLETED]
