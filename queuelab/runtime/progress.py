"""A running job's progress: ``current_job().progress(0.4, "40 of 100 files")``.

Writes are throttled per job: the first report is written at once, then at most one every
``PROGRESS_INTERVAL_SECONDS``; a report that arrives sooner is kept and written when the
interval has passed (by a timer, should the task report nothing more) or when the task
returns. A task that reports in a tight loop thus costs a couple of small writes a second,
and its latest report is stored within an interval. A write
is fenced by the job's lease (a rescued job's old runner writes nothing) and best effort:
a database error is logged, never raised into the task.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from queuelab import bounds
from queuelab.errors import InvalidArgument, JobCancelled, QueuelabError
from queuelab.models import Lease

log = logging.getLogger("queuelab.progress")

PROGRESS_INTERVAL_SECONDS = 0.5
MAX_MESSAGE_LENGTH = 1000

Write = Callable[[float, str | None], object]  # (fraction, message): store it
Cancel = Callable[[], object]
Schedule = Callable[[float, Callable[[], None]], Cancel]  # (delay in seconds, callback) -> cancel it


def _timer(delay: float, callback: Callable[[], None]) -> Cancel:
    timer = threading.Timer(delay, callback)
    timer.daemon = True
    timer.start()
    return timer.cancel


class Progress:
    """The throttle between a task's reports and the store."""

    def __init__(
        self,
        write: Write,
        *,
        interval: float = PROGRESS_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule = _timer,
    ) -> None:
        self._write, self._interval, self._clock, self._schedule = write, interval, clock, schedule
        self._lock = threading.Lock()
        self._last = -math.inf  # when the last write happened (the clock's time)
        self._pending: tuple[float, str | None] | None = None
        self._cancel: Cancel | None = None  # the timer that writes a held-back report
        self.writes = 0

    def report(self, fraction: Any, message: Any = None) -> None:
        if not bounds.is_number(fraction) or not 0 <= fraction <= 1:
            raise InvalidArgument(f"progress must be a number from 0 to 1, got {fraction!r}")
        if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE_LENGTH):
            raise InvalidArgument(f"a progress message must be a string of at most {MAX_MESSAGE_LENGTH} characters")
        with self._lock:
            self._pending = (float(fraction), message)
            waited = self._clock() - self._last
            if waited >= self._interval:
                self._write_pending()
            elif self._cancel is None:
                self._cancel = self._schedule(self._interval - waited, self.flush)

    def flush(self) -> None:
        """Write the latest report if it was held back (the interval passed, or the task
        returned)."""
        with self._lock:
            self._write_pending()

    def _write_pending(self) -> None:
        if self._cancel is not None:
            self._cancel()
            self._cancel = None
        if self._pending is None:
            return
        fraction, message = self._pending
        self._pending, self._last = None, self._clock()
        self.writes += 1
        try:
            self._write(fraction, message)
        except QueuelabError as exc:  # progress is a courtesy: the job runs on
            log.warning("could not store the progress of a job: %s", exc)


class CancelSignal:
    """A running job's cancel flag, set by its worker when someone cancels the job: a
    :class:`threading.Event`'s ``is_set``, ``set`` and ``wait``, whose Event (a lock and a
    condition: 9 µs to make, a twentieth of a no-op job's whole cost) is made only when a
    task waits on it. Nearly every job only ever reads the flag, or nothing."""

    __slots__ = ("_event", "_set")
    _making = threading.Lock()  # two first waiters make one Event

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True  # before reading _event: a waiter that made it after this sees _set
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        event = self._event
        if event is None:
            with self._making:
                if self._event is None:
                    self._event = threading.Event()
                event = self._event
            if self._set:  # set() ran before the Event existed
                event.set()
        return event.wait(timeout)


class RunningJob:
    """What a task sees of its own job (:func:`~queuelab.current_job`): who and what it is,
    :meth:`progress` to say how far it has got, and whether someone cancelled it
    (:attr:`cancelled`, :meth:`check_cancelled`). The throttle is made at the first
    report: a job that reports nothing costs nothing more."""

    __slots__ = ("_cancel", "_progress", "_write", "lease")

    def __init__(self, lease: Lease, write: Write, cancel: CancelSignal | None = None) -> None:
        """``cancel``: set by the worker when someone cancels the job (``q.cancel``)."""
        self.lease, self._write = lease, write
        self._cancel = cancel if cancel is not None else CancelSignal()
        self._progress: Progress | None = None

    @property
    def cancelled(self) -> bool:
        """Whether someone cancelled this job while it ran: stop soon (the job ends CANCELLED
        whatever the task then returns). Cheap: no database read."""
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`~queuelab.JobCancelled` if someone cancelled this job."""
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.lease.job_id} was cancelled")

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once if the job is cancelled; whether it is."""
        return self._cancel.wait(timeout)

    def flush(self) -> None:
        """Store a report the throttle held back (the task has returned)."""
        if self._progress is not None:
            self._progress.flush()

    @property
    def job_id(self) -> str:
        return self.lease.job_id

    @property
    def task(self) -> str:
        return self.lease.task

    @property
    def payload(self) -> dict[str, Any]:
        return self.lease.payload

    @property
    def user_id(self) -> str:
        return self.lease.user_id

    @property
    def queue(self) -> str:
        return self.lease.queue

    @property
    def attempt(self) -> int:
        """1 for the first run."""
        return self.lease.attempt

    @property
    def max_retries(self) -> int:
        return self.lease.max_retries

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Store how far the job has got (0 to 1) and, optionally, a word on it; shown by
        ``q.get``, the status API, the dashboard, the panel and ``jobs_frame()``. Cheap to
        call often: the writes are throttled (see :mod:`queuelab.runtime.progress`).
        Raises :class:`~queuelab.JobCancelled` once the job is cancelled, so a task that
        reports progress stops at its next report."""
        self.check_cancelled()
        if self._progress is None:
            self._progress = Progress(self._write)
        self._progress.report(fraction, message)
