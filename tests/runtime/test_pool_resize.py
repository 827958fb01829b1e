"""Resizing a live thread pool: more slots start at once; fewer slots never interrupt,
release or repeat a job. Real pools on each database; gates, not sleeps."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest

from queuelab import InvalidArgument, JobStatus, Queue
from queuelab.runtime.pool import ThreadPool
from tests.support.helpers import wait_until


class Meter:
    """Jobs running now, the high-water mark, and when each job started and ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    def enter(self, name: str) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.started[name] = time.monotonic()

    def leave(self, name: str) -> None:
        with self._lock:
            self.now -= 1
            self.ended[name] = time.monotonic()


def gated_queue(make_queue: Callable[..., Queue], meter: Meter, gate: threading.Event) -> Queue:
    q = make_queue(poll_interval_seconds=0.2)

    @q.task
    def hold(name: str) -> None:
        meter.enter(name)
        try:
            gate.wait(30)
        finally:
            meter.leave(name)

    return q


def slot_threads(pool: ThreadPool) -> int:
    return pool.worker.slots.alive()


def row_concurrency(q: Queue) -> int:
    (worker,) = q.stats().live_workers
    return worker.concurrency


def test_growing_a_thread_pool_starts_more_slots_at_once(make_queue: Callable[..., Queue]) -> None:
    meter, gate = Meter(), threading.Event()
    q = gated_queue(make_queue, meter, gate)
    jobs = [q.submit("hold", {"name": f"j{i}"}) for i in range(4)]
    with q.worker(1) as pool:
        wait_until(lambda: meter.now == 1, timeout=10, what="the first job to start")
        pool.resize(4)
        assert pool.size == 4
        wait_until(lambda: meter.now == 4, timeout=10, what="four jobs at once")
        assert row_concurrency(q) == 4
        gate.set()
        wait_until(lambda: all(q.get(j.id).status == JobStatus.COMPLETED for j in jobs), timeout=10, what="all done")
    assert meter.peak == 4


def test_shrinking_a_thread_pool_lets_running_jobs_finish_then_runs_one_at_a_time(
    make_queue: Callable[..., Queue],
) -> None:
    meter, gate = Meter(), threading.Event()
    q = gated_queue(make_queue, meter, gate)
    long_jobs = [q.submit("hold", {"name": f"long{i}"}, priority=9) for i in range(4)]
    with q.worker(4) as pool:
        assert isinstance(pool, ThreadPool)
        wait_until(lambda: meter.now == 4, timeout=10, what="four long jobs running")
        short_jobs = [q.submit("hold", {"name": f"short{i}"}) for i in range(5)]
        pool.resize(1)
        assert pool.size == 1
        assert row_concurrency(q) == 1
        assert meter.now == 4  # (the start times below show nothing started while more than one ran)
        assert all(q.get(j.id).status == JobStatus.PENDING for j in short_jobs)
        gate.set()
        every = long_jobs + short_jobs
        wait_until(lambda: all(q.get(j.id).status == JobStatus.COMPLETED for j in every), timeout=20, what="all done")
        wait_until(lambda: slot_threads(pool) == 1, timeout=5, what="the surplus slot threads to end")
    assert [q.get(j.id).attempts for j in every] == [1] * 9  # nothing released, retried or repeated
    last_long_end = max(meter.ended[f"long{i}"] for i in range(4))
    short_runs = sorted((meter.started[f"short{i}"], meter.ended[f"short{i}"]) for i in range(5))
    assert short_runs[0][0] >= last_long_end  # nothing new started while more than one ran
    assert all(start >= end for (_, end), (start, _) in itertools.pairwise(short_runs))


def test_shrinking_then_growing_again_keeps_the_right_number_of_slots(make_queue: Callable[..., Queue]) -> None:
    meter, gate = Meter(), threading.Event()
    q = gated_queue(make_queue, meter, gate)
    with q.worker(1) as pool:
        assert isinstance(pool, ThreadPool)
        for n in (4, 1, 3):
            pool.resize(n)
        wait_until(lambda: slot_threads(pool) == 3, timeout=5, what="three slot threads")
        jobs = [q.submit("hold", {"name": f"j{i}"}) for i in range(5)]
        wait_until(lambda: meter.now == 3, timeout=10, what="three jobs at once")
        gate.set()
        wait_until(lambda: all(q.get(j.id).status == JobStatus.COMPLETED for j in jobs), timeout=10, what="all done")
    assert meter.peak == 3


def test_a_pool_refuses_a_size_out_of_range(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()
    pool = q.worker(2)
    with pytest.raises(InvalidArgument, match="concurrency must be a whole number between 1 and 1024, got 0"):
        pool.resize(0)
    pool.resize(3)  # before start: the pool starts with 3
    assert pool.size == 3


def test_the_autoscaler_drives_a_thread_pool_up_and_back_down(make_queue: Callable[..., Queue]) -> None:
    from queuelab.runtime.autoscale import ScalePolicy

    meter, gate = Meter(), threading.Event()
    q = gated_queue(make_queue, meter, gate)
    policy = ScalePolicy(min_workers=1, max_workers=4, cooldown_seconds=0.2, idle_seconds=0.5)
    jobs = [q.submit("hold", {"name": f"j{i}"}) for i in range(40)]
    with q.worker(1) as pool:
        scaler = q.autoscaler(pool, policy, tick_seconds=0.1).start()
        try:
            wait_until(lambda: meter.now == 4, timeout=20, what="the pool to grow to 4 busy slots")
            gate.set()
            wait_until(lambda: all(q.get(j.id).status == JobStatus.COMPLETED for j in jobs), timeout=30, what="done")
            wait_until(lambda: pool.size == 1, timeout=20, what="the pool to shrink back to 1")
        finally:
            scaler.stop()
        wait_until(lambda: row_concurrency(q) == 1, timeout=5, what="the worker row to follow")
    assert meter.peak == 4
    assert {q.get(j.id).attempts for j in jobs} == {1}
    logged = q.scale_events()
    assert max(e.workers_after for e in logged) == 4
    assert logged[0].workers_after == 1
    assert [e.id for e in logged] == [e.id for e in reversed(scaler.decisions)]
