"""Telling callers that the jobs they wait for have finished, without polling the jobs table.

A caller registers a job id and a wake-up callable (:meth:`Completions.watch`), re-reads the
job, and sleeps until woken; one :class:`Completions` per queue does the watching for all its
callers, from one thread, and only while someone waits.

PostgreSQL: the caller first marks the job ``awaited`` (:meth:`Completions.prepare`); the
UPDATE that ends it then sends its id on :data:`~queuelab.store.schema.DONE_CHANNEL` (a
trigger, delivered at commit), which a ``LISTEN`` connection of this process hears. The
marking comes after the ``LISTEN`` is up and before the caller's read, so an ending either
precedes the read (which sees it) or follows the marking (which notifies it). While nobody
waits, endings notify nothing. A check of every waited id every :data:`FALLBACK_SECONDS`
(and at each reconnect) covers notifications lost while the connection was down.

SQLite: no channel crosses processes, so the thread reads ``PRAGMA data_version`` (a
counter in the WAL index that moves at every commit by another connection; microseconds, no
table read) every 1 to 4 ms, and at once when the WAL is written (Linux: inotify, see
wakeup.WalWatch), and re-reads the waited jobs' statuses only when it moved.

Cost per waiter: one id in the set that a check reads (a primary-key lookup each); per
process while anyone waits: on PostgreSQL one idle connection and one query a second, on
SQLite the counter reads (about 1% of a core, like an idle worker) and one query per burst
of commits.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from queuelab.looper import Looper
from queuelab.models import TERMINAL_STATUSES
from queuelab.store.database import Database
from queuelab.store.schema import DONE_CHANNEL, IS_PENDING, NOTIFY_CHANNEL, jobs
from queuelab.store.wakeup import FIRST_CONNECT_WAIT_SECONDS, Listener, SqlitePolls, WalWatch, hidden

FALLBACK_SECONDS = 1.0  # PostgreSQL: every waited job is re-read this often anyway
POLL_SECONDS = 0.1  # PostgreSQL without a LISTEN connection: how often waited jobs are re-read
IDLE_SECONDS = 3600.0  # nobody waits: the thread sleeps until a watch wakes it
_ENDED = [status.value for status in TERMINAL_STATUSES]

Wake = Callable[[], None]


class Completions(Looper):
    def __init__(self, db: Database, *, fallback_seconds: float = FALLBACK_SECONDS) -> None:
        super().__init__("queuelab-completions", every=fallback_seconds)
        self._db = db
        self._lock = threading.Lock()
        self._waiting: dict[str, dict[int, Wake]] = {}
        self._ids = itertools.count()
        self._listener: Listener | None = None
        self._version: int | None = None  # SQLite: data_version at the last check
        self._sqlite: sqlite3.Connection | None = None
        self._polls = SqlitePolls(0.0)  # SQLite: when to read data_version (restarted when someone waits)
        self._wal: WalWatch | None = None  # SQLite on Linux: the thread also wakes at a write to the WAL

    @contextmanager
    def watching(self, job_id: str, wake: Wake) -> Iterator[None]:
        """While in the block, ``wake()`` is called (from another thread) when ``job_id``
        may have finished; the caller re-reads the job to know."""
        key = next(self._ids)
        with self._lock:
            first = not self._waiting
            self._waiting.setdefault(job_id, {})[key] = wake
            if first:
                self._polls = SqlitePolls(time.monotonic())
        self._start()
        if first:
            self.wake()  # from its idle sleep to its polling cadence
        try:
            yield
        finally:
            with self._lock:
                mine = self._waiting.get(job_id, {})
                mine.pop(key, None)
                if not mine:
                    self._waiting.pop(job_id, None)

    def waiting(self) -> int:
        """Callers registered now."""
        with self._lock:
            return sum(len(wakes) for wakes in self._waiting.values())

    def prepare(self, job_id: str) -> None:
        """PostgreSQL: make the job's ending send a notification, once this process listens.
        Call inside :meth:`watching`, before reading the job. A PENDING job's row is locked
        for the moment of the marking, which a claim then skips: the marking wakes the
        workers of its queue, as a submit does, so none goes idle past it."""
        if self._db.is_sqlite:
            return
        if self._listener is not None:
            self._listener.tried.wait(FIRST_CONNECT_WAIT_SECONDS)
        mark = (
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_(["PENDING", "RUNNING"]), jobs.c.awaited.is_not(True))
            .values(awaited=True)
            .returning(jobs.c.queue, IS_PENDING.label("pending"))
        )
        with self._db.write() as conn:
            row = conn.execute(mark).first()
            if row is not None and row.pending:
                conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, row.queue)))

    def check(self) -> None:
        """Wake the callers of every waited job that has finished."""
        with self._lock:
            waited = list(self._waiting)
        if not waited:
            return
        ended: set[str] = set()
        for start in range(0, len(waited), 500):
            chunk = waited[start : start + 500]
            query = sa.select(jobs.c.id).where(jobs.c.id.in_(chunk), jobs.c.status.in_(_ENDED))
            with self._db.read() as conn:
                ended.update(conn.execute(query).scalars())
        for job_id in ended:
            self._wake_callers(job_id)

    # -- the loop -------------------------------------------------------------------------

    def interval(self) -> float:
        with self._lock:
            idle = not self._waiting
        if idle:
            return IDLE_SECONDS
        if not self._db.is_sqlite:  # not listening (no LISTEN behind a pooler, or it is down): poll
            listening = self._listener is not None and self._listener.failures == 0
            return self.every if listening else min(self.every, POLL_SECONDS)
        return self._polls.step(time.monotonic())

    def pause(self, seconds: float) -> None:
        """SQLite on Linux: a write to the WAL (a commit: a job may have ended) ends the wait
        too; data_version is then read at once, and again soon if it had not moved yet (see
        wakeup.SqlitePolls)."""
        wal = self._wal
        if wal is None:
            super().pause(seconds)
        elif wal.wait(seconds):
            self._polls.wal_written()
        if wal is not None:
            wal.clear()

    def wake(self) -> None:
        super().wake()
        if self._wal is not None:
            self._wal.poke()

    def tick(self, now: float, mono: float) -> None:
        if self._db.is_sqlite and not self._sqlite_moved():
            return
        self._polls.moved()
        self.check()

    def stop(self, timeout: float | None = 5.0) -> None:
        super().stop(timeout)
        if self._listener is not None:
            self._listener.stop(timeout)
        if not self.alive:
            if self._sqlite is not None:
                self._sqlite.close()
            if self._wal is not None:
                self._wal.close()
                self._wal = None

    def _start(self) -> None:
        if self.alive or self.stopping:
            return
        with self._lock:
            if self._db.is_sqlite:
                if self._sqlite is None:
                    # A private connection: data_version moves only for other connections' commits.
                    self._sqlite = sqlite3.connect(self._db.sqlite_path, isolation_level=None, check_same_thread=False)
                    self._wal = WalWatch.of(self._db.sqlite_path)
            elif self._listener is None and (dsn := self._db.listen_dsn()) is not None:
                self._listener = Listener(
                    dsn, hidden(dsn), self.wake, channel=DONE_CHANNEL, on_payload=self._wake_callers
                ).start()
            self.start()

    def _sqlite_moved(self) -> bool:
        assert self._sqlite is not None
        version = int(self._sqlite.execute("PRAGMA data_version").fetchone()[0])
        moved, self._version = version != self._version, version
        return moved

    def _wake_callers(self, job_id: str) -> None:
        with self._lock:
            wakes = list(self._waiting.get(job_id, {}).values())
        for wake in wakes:
            wake()
