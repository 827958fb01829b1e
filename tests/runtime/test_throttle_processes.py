"""Execution throttles across real worker processes, on SQLite and PostgreSQL: the peak
number of starts in any sliding window never passes the throttle, and other tasks run on."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from queuelab import Queue
from queuelab.store.schema import jobs
from queuelab.submission import Submission
from queuelab.testing import internals
from tests.support.helpers import WorkerProcess, recorder_queue, wait_until

WORKERS = 4


def peak_in_window(times: list[float], window: float) -> int:
    """The most starts in any window of ``window`` seconds (a start at t leaves the window
    that opens at t at t + window, as the throttle counts)."""
    times = sorted(times)
    peak = first = 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def test_peak_in_window_counts_a_sliding_window() -> None:
    assert peak_in_window([], 10.0) == 0
    assert peak_in_window([0.0, 9.999, 10.0, 20.0], 10.0) == 2
    assert peak_in_window([0.0, 9.999, 10.0, 19.0], 10.0) == 3
    assert peak_in_window([5.0, 0.0, 1.0, 2.0, 20.0], 10.0) == 4


def started(q: Queue, task: str) -> list[tuple[float, float | None, int]]:
    """(started_at, finished_at, attempts) of the task's completed jobs, as the claim
    recorded them: the start a throttle counts."""
    columns = (jobs.c.started_at, jobs.c.finished_at, jobs.c.attempts)
    query = sa.select(*columns).where(jobs.c.task == task, jobs.c.status == "COMPLETED")
    with internals(q).db.read() as conn:
        return [(float(s), f, int(n)) for s, f, n in conn.execute(query)]


def throttled_run(db_url: str, tmp_path: Path, throttle: str, window: float, n: int, backlog: int) -> None:
    record = str(tmp_path / "executions.log")
    q = recorder_queue(db_url)
    q.set_throttle(throttle, task="record")
    q.submit_many(Submission(task="record", payload={"path": record}) for _ in range(backlog))
    q.submit_many(Submission(task="record_other", payload={"path": record}) for _ in range(50))  # behind them
    with ExitStack() as stack:
        workers = []
        for i in range(WORKERS):
            # prefetch 0: each job's started_at stays its claim's time, which the throttle counts
            worker = WorkerProcess(db_url, tmp_path / f"worker{i}.log", concurrency=2, prefetch=0)
            stack.callback(worker.stop)
            workers.append(worker)
        wait_until(
            lambda: q.stats().by_status["COMPLETED"] == backlog + 50,
            timeout=backlog / n * window * 1.5 + 60,
            interval=0.5,
            what=f"{backlog + 50} jobs to complete",
        )
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait() == 0, worker.output()
    throttled, others = started(q, "record"), started(q, "record_other")
    assert peak_in_window([s for s, _, _ in throttled], window) == n  # never more, and used to the full
    assert {a for _, _, a in throttled + others} == {1}  # a throttled job spent no attempt
    # The others ran while the throttled backlog waited (it takes at least backlog/n windows).
    last_other = max(f for _, f, _ in others if f is not None)
    assert last_other < max(s for s, _, _ in throttled) - window
    q.close()


def test_a_throttle_of_5_per_2s_holds_across_four_worker_processes(db_url: str, tmp_path: Path) -> None:
    throttled_run(db_url, tmp_path, "5/2s", 2.0, 5, 40)


@pytest.mark.slow
def test_a_throttle_of_20_per_10s_holds_across_four_worker_processes_with_200_jobs(db_url: str, tmp_path: Path) -> None:
    """The issue's figures: about 100 s on each database."""
    throttled_run(db_url, tmp_path, "20/10s", 10.0, 20, 200)
