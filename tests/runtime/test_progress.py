"""What a running job tells: its progress (throttled writes: a tight loop costs a couple of
writes a second, the latest report is the one stored; fenced by the lease; shown while the
job runs and after) and, in the worker's log, each attempt that failed. Both databases."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from queuelab import FakeClock, InvalidArgument, JobStatus, Queue, current_job
from queuelab.models import AttemptOutcome, Lease
from queuelab.policy import Errored
from queuelab.runtime.progress import PROGRESS_INTERVAL_SECONDS, Progress
from queuelab.testing import internals
from tests.support.helpers import wait_for_status, wait_until


class Ticks:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Timers:
    """Timers the test fires: each due when the clock says so."""

    def __init__(self, clock: Ticks) -> None:
        self.clock, self.due = clock, list[tuple[float, Callable[[], None]]]()

    def __call__(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        entry = (self.clock.now + delay, callback)
        self.due.append(entry)
        return lambda: self.due.remove(entry) if entry in self.due else None

    def fire_due(self) -> None:
        for entry in [e for e in self.due if e[0] <= self.clock.now]:
            if entry in self.due:
                self.due.remove(entry)
                entry[1]()


def test_ten_thousand_reports_in_ten_seconds_make_about_twenty_writes() -> None:
    clock, written = Ticks(), []
    timers = Timers(clock)
    progress = Progress(lambda f, m: written.append((f, m)), clock=clock, schedule=timers)
    for i in range(1, 10_001):
        progress.report(i / 10_000, f"{i} of 10000")
        clock.now += 0.001  # 10 s in all
        timers.fire_due()
    progress.flush()
    assert len(written) <= 10 / PROGRESS_INTERVAL_SECONDS + 2  # the first, one per interval, the last
    assert written[0] == (0.0001, "1 of 10000")  # the first report is written at once
    assert written[-1] == (1.0, "10000 of 10000")  # and the latest one is what stays
    progress.flush()
    assert len(written) == progress.writes  # nothing left to write: a second flush writes nothing
    assert timers.due == []  # and no timer is left waiting


def test_a_held_back_report_is_written_when_the_interval_has_passed() -> None:
    clock, written = Ticks(), []
    timers = Timers(clock)
    progress = Progress(lambda f, m: written.append(f), clock=clock, schedule=timers)
    progress.report(0.1)  # written at once
    clock.now += 0.1
    progress.report(0.5)  # too soon: held back, a timer set for the rest of the interval
    assert written == [0.1]
    (due,) = timers.due
    assert due[0] == pytest.approx(PROGRESS_INTERVAL_SECONDS)
    clock.now = PROGRESS_INTERVAL_SECONDS
    timers.fire_due()  # the task reported nothing more: the timer writes it
    assert written == [0.1, 0.5]


@pytest.mark.parametrize("bad", [1.5, -0.1, True, "half", float("nan")])
def test_a_bad_fraction_is_refused_and_writes_nothing(bad: object) -> None:
    written: list[object] = []
    progress = Progress(lambda f, m: written.append(f))
    with pytest.raises(InvalidArgument, match="progress must be a number from 0 to 1"):
        progress.report(bad)
    with pytest.raises(InvalidArgument, match="at most 1000 characters"):
        progress.report(0.5, "x" * 1001)
    progress.flush()
    assert written == []


def test_progress_shows_while_the_job_runs_and_stays_after(make_queue: Callable[..., Queue]) -> None:
    q = make_queue()
    halfway, release = threading.Event(), threading.Event()
    writes: list[float] = []
    looped: list[tuple[int, float]] = []
    report = internals(q).leases.report_progress

    def counted(lease: Lease, fraction: float, message: str | None) -> bool:
        writes.append(fraction)
        return report(lease, fraction, message)

    internals(q).leases.report_progress = counted  # type: ignore[method-assign]

    @q.task
    def crunch() -> str:
        job = current_job()
        started = time.monotonic()
        for i in range(10_000):  # a tight loop: throttled
            job.progress(i / 20_000, "first half")
        looped.append((len(writes), time.monotonic() - started))
        job.progress(0.5, "halfway")
        halfway.set()
        release.wait(30)
        job.progress(1.0, "done")
        return "ok"

    job = q.submit("crunch")
    with q.worker(1):
        assert halfway.wait(30)
        wait_until(lambda: q.get(job.id).progress == 0.5, timeout=30, what="the progress to show while running")
        running = q.get(job.id)
        assert (running.status, running.progress_message) == (JobStatus.RUNNING, "halfway")
        release.set()
        wait_for_status(q, job.id, JobStatus.COMPLETED)
    done = q.get(job.id)
    assert (done.progress, done.progress_message) == (1.0, "done")
    # 10,000 reports wrote once, then at most once per interval of however long the loop took
    # (a bound from the loop's own clock, so a slow machine cannot break it)
    ((during, seconds),) = looped
    assert 1 <= during <= 1 + seconds / PROGRESS_INTERVAL_SECONDS + 1
    frame = q.jobs_frame()
    assert frame.loc[frame["id"] == job.id, "progress"].item() == 1.0


def test_a_runner_that_lost_its_lease_writes_no_progress(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate")
    (lease,) = internals(queue).leases.claim("w", None, 1, queue.clock.now())
    assert internals(queue).leases.report_progress(lease, 0.3, "mine")
    clock.advance(3600)
    internals(queue).leases.rescue(queue.clock.now(), internals(queue).decide)
    assert not internals(queue).leases.report_progress(lease, 0.9, "stale")
    rescued = queue.get(job.id)
    assert (rescued.status, rescued.progress, rescued.progress_message) == (JobStatus.PENDING, 0.3, "mine")


def test_a_requeue_clears_the_progress_of_the_run_before(queue: Queue, clock: FakeClock) -> None:
    job = queue.submit("simulate", max_retries=0)
    (lease,) = internals(queue).leases.claim("w", None, 1, queue.clock.now())
    internals(queue).leases.report_progress(lease, 0.7, "most of it")
    clock.advance(3600)
    internals(queue).leases.rescue(queue.clock.now(), internals(queue).decide)  # no retries left: the DLQ
    assert queue.get(job.id).status == JobStatus.FAILED
    assert queue.get(job.id).progress == 0.7  # what it had reached, kept for the post-mortem
    again = queue.requeue(job.id)
    assert (again.progress, again.progress_message) == (None, None)


def test_every_failed_attempt_is_logged_with_its_job(
    queue: Queue, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """What failed shows in the worker's log, not only in the database: a retry at WARNING,
    the dead-letter queue at ERROR (the one place every outcome is decided)."""
    job = queue.submit("simulate", max_retries=1)
    failed = Errored(AttemptOutcome.FAILED, "ValueError", "the file was empty")
    with caplog.at_level(logging.WARNING, logger="queuelab.jobs"):
        for _ in range(2):
            (lease,) = internals(queue).leases.claim("w", None, 1, queue.clock.now())
            decision = internals(queue).decide(lease, failed)
            internals(queue).leases.ack(lease, decision, "w", queue.clock.now())
            clock.advance(3600)  # past the backoff
    retry, dead = caplog.records
    assert (retry.levelno, dead.levelno) == (logging.WARNING, logging.ERROR)
    line = f"job {job.id} (simulate) attempt 1 failed: ValueError: the file was empty; retry scheduled in"
    assert line in retry.getMessage()
    assert "attempt 2 failed" in dead.getMessage()
    assert "to the dead-letter queue" in dead.getMessage()
