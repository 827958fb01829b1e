"""A worker's event loop: the async (``async def``) jobs it holds run there as coroutines,
many at once, beside its slot threads.

The loop runs on a thread of its own, started with the first async job the worker is
given. Each job is one asyncio task, tracked here until it ends; how many run at once is
the worker's ``async_concurrency``, kept by its claims (a turn claims async jobs only for
free places; see :func:`~queuelab.runtime.turns.plan_turn`). The job's attempt itself
(its timeout, its decision, its ack with the next turn) is the worker's: this module only
runs coroutines, cancels them, and stops the loop.

A coroutine must not block its loop: progress reports (:meth:`Coroutines.reports`) go to
the store from a thread of their own, in the order they were made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from queuelab.runtime.held import Entry
from queuelab.runtime.progress import Write

log = logging.getLogger("queuelab.worker")

Run = Callable[[Entry], Coroutine[Any, Any, None]]


class Coroutines:
    """The loop thread and the async jobs in flight on it."""

    def __init__(self, run: Run) -> None:
        """``run`` runs one held async job to its recorded outcome (it never raises)."""
        self._run = run
        self._lock = threading.Lock()  # the lazy start against close
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: dict[Entry, asyncio.Task[None]] = {}  # touched on the loop thread only
        self._writes: concurrent.futures.ThreadPoolExecutor | None = None
        self.high_water = 0  # the most jobs in flight at once

    def start(self, entry: Entry) -> concurrent.futures.Future[None]:
        """Run ``entry``'s job on the loop (started now if it is not yet); returns at once."""
        return asyncio.run_coroutine_threadsafe(self._track(entry), self._running_loop())

    def in_flight(self) -> int:
        return len(self._tasks)

    def cancel(self, entry: Entry) -> None:
        """Cancel ``entry``'s coroutine (someone cancelled its job), if it runs here."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._cancel_one, entry)

    def close(self, timeout: float) -> None:
        """Cancel the coroutines still running, wait up to ``timeout`` seconds for them to
        end, then stop the loop. The worker abandons their entries first: whatever they
        return is discarded."""
        with self._lock:
            loop, thread, writes = self._loop, self._thread, self._writes
            self._loop = self._thread = self._writes = None
        if loop is None or thread is None:
            return
        cancelled = asyncio.run_coroutine_threadsafe(self._cancel_all(), loop)
        try:
            cancelled.result(timeout)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            log.warning("async jobs still running %gs after they were cancelled; leaving them", timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if writes is not None:
            writes.shutdown(wait=True)

    def reports(self, write: Write) -> Reports:
        """One job's progress writes (``write``), made on the progress thread."""
        return Reports(self._progress_thread, write)

    # -- on the loop --------------------------------------------------------------------

    async def _track(self, entry: Entry) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks[entry] = task
        self.high_water = max(self.high_water, len(self._tasks))
        try:
            await self._run(entry)
        except asyncio.CancelledError:  # the worker is stopping: it hands the job back
            pass
        except BaseException:  # a bug (run never raises): the job's lease expires and it is rescued
            log.exception("job %s: its coroutine failed outside its attempt", entry.lease.job_id)
        finally:
            del self._tasks[entry]

    def _cancel_one(self, entry: Entry) -> None:
        task = self._tasks.get(entry)
        if task is not None:
            task.cancel()

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- threads --------------------------------------------------------------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=_serve, args=(self._loop,), name="queuelab-async", daemon=True)
                self._thread.start()
            return self._loop

    def _progress_thread(self) -> concurrent.futures.ThreadPoolExecutor:
        """One thread: the reports of a job are written in the order it made them."""
        with self._lock:
            if self._writes is None:
                self._writes = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="queuelab-progress")
            return self._writes


class Reports:
    """A :data:`~queuelab.runtime.progress.Write` that hands each write to the progress
    thread and returns at once, so that the coroutine reporting goes on; :meth:`written`
    waits for the last one (before the job's outcome is acked, which ends its lease)."""

    def __init__(self, pool: Callable[[], concurrent.futures.Executor], write: Write) -> None:
        self._pool, self._write = pool, write
        self._last: concurrent.futures.Future[object] | None = None

    def __call__(self, fraction: float, message: str | None) -> None:
        # (Progress calls this under its own lock: from the loop, or from its timer thread.)
        self._last = self._pool().submit(_quietly, self._write, fraction, message)

    async def written(self) -> None:
        """Wait, without blocking the loop, until this job's reports are stored."""
        if self._last is not None:
            await asyncio.wrap_future(self._last)


def _quietly(write: Write, fraction: float, message: str | None) -> None:
    """Progress is a courtesy: a failed write is logged, and the job runs on."""
    try:
        write(fraction, message)
    except Exception as exc:
        log.warning("could not store the progress of a job: %s", exc)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()
