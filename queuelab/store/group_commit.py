"""Group commit: submitters that write at the same time share one transaction.

A submit that finds no write under way leads one at once, with its own rows: a lone caller
waits for nothing. Submits that arrive while a write is under way queue; when it commits,
the first of them leads the next write, with every row queued meanwhile (up to
``MAX_ROWS``).

Under the GIL, callers rarely arrive "while a write is under way" unaided: the leader gives
the GIL up only for the moments SQLite runs, takes it straight back, and the other threads,
each a row's worth of Python from queueing, wait for the GIL rather than in line. Measured, 4
producer threads: about 90 % of writes carried one row (3,190 of 3,462 in one run), so the
threads paid a transaction per job, as one caller does, and a transaction is most of a
submit's cost (CPU per job here: 267 µs one row per transaction, 80 µs four). So a leader
first waits for its *siblings*, the other threads that wrote in the last
``sibling_seconds``, to queue, for at most ``gather_seconds`` (PostgreSQL's
``commit_delay`` with ``commit_siblings``, the same idea): a thread that writes alone, or
beside threads that write seldom, never waits.

Each caller returns once its own rows are committed, with its own result. If a shared
write fails (a row refused by a rate limit or a quota, a database error), the
leader writes each caller's rows alone, so a refusal fails only its own caller. Rows with
an idempotency key are never shared: two callers with one key must see each other's job.

Coroutines join the same queue with :meth:`GroupCommit.awrite` but never lead: a writer
thread of the group's own leads for them, so an event loop waits on a future, not on the
database (one hop to that thread per shared write, not one per caller). The loop starts
that write at the end of its turn, not when the first coroutine queues: the requests it
read in the same turn run up to their submit first and join the write. After a write, a
thread next in line is made leader at once; a coroutine's loop is asked to start the next
write, again at the end of a turn, so the requests that came in while the write ran join
it. (Started at once, the writer took the GIL when the loop let go of it for a moment, and
wrote the one row queued so far: under 16 HTTP clients on SQLite, 72 % of the writes
were of one row, at 170 µs of CPU a write against 42 µs a row in writes of 16.)

One ``GroupCommit`` serves one process (threads and event loops); processes each have their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from queuelab.models import Job

Rows = list[dict[str, Any]]
Write = Callable[[Rows, float], dict[str, Job]]  # (rows, now) -> the jobs found by idempotency key
MAX_ROWS = 1000  # the most rows one shared write takes
# A thread that wrote this recently is expected back soon: 4 producer threads each write
# about once a millisecond here. An API thread that submits for one request in ten is not.
SIBLING_SECONDS = 0.005
# The longest a leader waits for its siblings: each is a row's Python (about 50 µs) from
# queueing, and they take the GIL in turn.
GATHER_SECONDS = 0.0005


@dataclass(eq=False)
class _Call:
    rows: Rows
    now: float
    ready: threading.Event = field(default_factory=threading.Event)  # result set, or made leader
    future: asyncio.Future[None] | None = None  # a coroutine's call: resolved on its loop
    lead: bool = False
    result: dict[str, Job] | None = None
    error: BaseException | None = None

    def outcome(self) -> dict[str, Job]:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _settle(futures: list[asyncio.Future[None]]) -> None:
    """On the futures' loop: wake their coroutines (a cancelled one has gone)."""
    for future in futures:
        if not future.done():
            future.set_result(None)


def _wake(batch: list[_Call]) -> None:
    """Tell each caller of ``batch`` its result is set: a thread by its event, coroutines
    by one call into each loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for call in batch:
        if call.future is None:
            call.ready.set()
        else:
            by_loop.setdefault(call.future.get_loop(), []).append(call.future)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed while its callers waited: nobody to tell
            loop.call_soon_threadsafe(_settle, futures)


def siblings(last_write: dict[int, float], now: float, window: float) -> int:
    """How many threads wrote within ``window`` seconds of ``now`` (monotonic), forgetting
    (removing) the others."""
    for thread in [t for t, at in last_write.items() if now - at > window]:
        del last_write[thread]
    return len(last_write)


class GroupCommit:
    def __init__(
        self, write: Write, *, sibling_seconds: float = SIBLING_SECONDS, gather_seconds: float = GATHER_SECONDS
    ) -> None:
        """``write`` stores rows in one transaction (all or nothing) and returns the jobs
        found by idempotency key (:meth:`queuelab.store.jobs.JobStore.insert`). A shared
        write takes the latest ``now`` of its callers."""
        self._write = write
        self._sibling_seconds = sibling_seconds
        self._gather_seconds = gather_seconds
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # a gathering leader's line is full
        self._wanted = 0  # callers in line that wake a gathering leader (0: none gathers)
        self._last_write: dict[int, float] = {}  # thread -> when it last wrote (monotonic)
        self._queued: deque[_Call] = deque()
        self._busy = False  # a leader is writing, or about to
        self._writer: ThreadPoolExecutor | None = None  # leads for coroutines; made on first use
        self.shared_writes = 0  # writes that carried more than one caller's rows

    def write(self, rows: Rows, now: float) -> dict[str, Job]:
        if any(row["idempotency_key"] is not None for row in rows):
            return self._write(rows, now)
        call = _Call(rows, now)
        with self._lock:
            self._last_write[threading.get_ident()] = time.monotonic()
            self._queued.append(call)
            if not self._busy:
                self._busy = call.lead = True
            elif 0 < self._wanted <= len(self._queued):
                self._arrived.notify()
        while not call.lead:
            call.ready.wait()
            if call.result is not None or call.error is not None:
                return call.outcome()
            call.ready.clear()  # made leader: lead the next write
        if self._lead(gather=True):
            self._start_writer()
        return call.outcome()

    async def awrite(self, rows: Rows, now: float) -> dict[str, Job]:
        """:meth:`write` for a coroutine: its event loop runs on while the rows are
        written. Rows with an idempotency key are written alone, in the writer thread."""
        loop = asyncio.get_running_loop()
        if any(row["idempotency_key"] is not None for row in rows):
            return await loop.run_in_executor(self._executor(), self._write, rows, now)
        call = _Call(rows, now, future=loop.create_future())
        with self._lock:
            self._queued.append(call)
            start = not self._busy
            self._busy = True
        if start:
            loop.call_soon(self._start_writer)  # at the end of this turn of the loop
        assert call.future is not None
        # Shielded: a cancelled caller stops waiting, its rows are written all the same
        # (they may be in a shared write already), as a thread's would be.
        await asyncio.shield(call.future)
        return call.outcome()

    def close(self) -> None:
        """Stop the writer thread once it has written what is queued. A write after this
        starts a new one (a closed Queue opens again on its next call, as its engine does)."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queuelab-group-commit")
            return self._writer

    def _start_writer(self) -> None:
        self._executor().submit(self._writer_leads)

    def _writer_leads(self) -> None:
        if self._lead():
            self._start_from_loop()

    def _start_from_loop(self) -> None:
        """Ask the loop of the coroutine first in line to start the next write at the end of
        its next turn: the turn that settles the write just made and reads the requests that
        came in while it ran (they are written with it). Started here, in the writer thread,
        the write would take only the callers queued so far."""
        with self._lock:
            future = self._queued[0].future
        assert future is not None  # only a coroutine's call stays first in line here
        loop = future.get_loop()
        if not loop.is_running():  # stopped or closed: nobody waits there, lead at once
            self._start_writer()
            return
        try:
            loop.call_soon_threadsafe(loop.call_soon, self._start_writer)
        except RuntimeError:  # it closed meanwhile
            self._start_writer()

    def _gather(self) -> None:
        """With the lock held, as a thread's leader: wait (the lock and the GIL let go) until
        every sibling is in line, or for ``gather_seconds`` at most."""
        started = time.monotonic()
        wanted = siblings(self._last_write, started, self._sibling_seconds)
        if len(self._queued) >= wanted:
            return
        self._wanted = wanted
        try:
            self._arrived.wait_for(lambda: len(self._queued) >= wanted, self._gather_seconds)
        finally:
            self._wanted = 0

    def _lead(self, *, gather: bool = False) -> bool:
        """Write the next batch (first, if ``gather``, waiting for the siblings); True if
        the caller now first in line is a coroutine, for the writer thread to lead (a
        thread first in line is made leader here)."""
        with self._lock:
            if gather:
                self._gather()
            batch = [self._queued.popleft()]
            rows = len(batch[0].rows)
            while self._queued and rows + len(self._queued[0].rows) <= MAX_ROWS:
                rows += len(self._queued[0].rows)
                batch.append(self._queued.popleft())
        writer_next = False
        try:
            self._run(batch)
        finally:
            with self._lock:
                if not self._queued:
                    self._busy = False
                elif self._queued[0].future is not None:
                    writer_next = True
                else:
                    successor = self._queued[0]
                    successor.lead = True
                    successor.ready.set()
            _wake(batch)
        return writer_next

    def _run(self, batch: list[_Call]) -> None:
        if len(batch) > 1:
            try:
                found = self._write([row for call in batch for row in call.rows], max(c.now for c in batch))
            except Exception:  # written alone below, where each caller gets its own error
                pass
            except BaseException as exc:  # an interrupt: every caller of the write is told
                for call in batch:  # (else the others, woken with no outcome, would wait forever)
                    call.error = exc
                return
            else:
                self.shared_writes += 1
                for call in batch:
                    call.result = found
                return
        for call in batch:
            try:
                call.result = self._write(call.rows, call.now)
            except BaseException as exc:  # the caller's own: raised in its thread
                call.error = exc
