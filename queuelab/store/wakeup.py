"""Waking idle workers without busy polling the jobs table.

PostgreSQL: a listener loop holds a ``LISTEN`` connection; every submit sends a
``NOTIFY`` that is delivered when its transaction commits. SQLite has no such channel
across processes, so an idle worker watches ``PRAGMA data_version``: a read of a counter
in the shared-memory WAL index that changes whenever another connection commits. It costs
microseconds and touches no table, unlike re-running the claim query. On Linux a write to
the database's folder (a commit's pages going to the WAL) also ends the wait at once
(inotify, store/file_events.py), so a job submitted by another process does not wait for
the next read.

Protocol for a worker: ``mark()`` at the top of each turn (a poke after it ends the next
wait), ``watch()`` before a claim that may leave it idle, ``wait(timeout)`` when that claim
came back empty. Anything committed after ``watch()`` ends the wait at once. A busy turn
(one that acks, or has no free slot) never waits on the database, so it skips ``watch()``
and its read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from queuelab.errors import StoreError
from queuelab.looper import Looper
from queuelab.store.database import Database
from queuelab.store.file_events import FileWrites, watch_writes
from queuelab.store.schema import NOTIFY_CHANNEL

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("queuelab.wakeup")

# How often an idle worker reads data_version: every millisecond just after it went idle
# (a job often follows), then every 4 ms, so an idle worker costs about 1% of a core.
SQLITE_POLL_SECONDS = 0.001
SQLITE_IDLE_POLL_SECONDS = 0.004
SQLITE_FAST_POLL_FOR_SECONDS = 0.2
# A commit writes its pages to the WAL, then marks them committed in the shared index: a
# worker woken by the write may read data_version in between, and looks again this soon,
# up to this many times (then on its schedule).
SQLITE_AFTER_WRITE_SECONDS = 0.0002
SQLITE_AFTER_WRITE_READS = 10
# PostgreSQL: how long one tick of the listener waits for notifications (so it sees a stop
# within this), and the cap of its reconnect back-off.
NOTIFY_WAIT_SECONDS = 0.5
MAX_RECONNECT_SECONDS = 5.0
FIRST_CONNECT_WAIT_SECONDS = 5.0  # a new worker waits this long at most for its LISTEN


class Wakeup(Protocol):
    def mark(self) -> None:
        """Forget earlier pokes."""
        ...

    def watch(self) -> None:
        """Note the database's state: a commit after this ends the next ``wait``."""
        ...

    def wait(self, timeout: float, *, database: bool = True) -> None:
        """Return on a poke, on a commit by another connection (if ``database``), or at
        ``timeout``."""
        ...

    def poke(self) -> None: ...
    def close(self) -> None: ...


def wakeup_for(db: Database) -> Wakeup:
    return SqliteWakeup(db.sqlite_path) if db.is_sqlite else PostgresWakeup(db)


class WalWatch:
    """A wait that ends at a write to a SQLite database's WAL, seen by inotify (Linux:
    store/file_events.py), or at a poke. :meth:`of` gives None where inotify cannot watch."""

    def __init__(self, writes: FileWrites) -> None:
        self._writes = writes
        self._poked: int | None = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._unpoked = weakref.finalize(self, os.close, self._poked)  # closed with this, if not before
        self._poller = select.poll()
        self._poller.register(writes.fileno(), select.POLLIN)
        self._poller.register(self._poked, select.POLLIN)
        self._lock = threading.Lock()

    @classmethod
    def of(cls, path: str) -> WalWatch | None:
        folder, name = os.path.split(os.path.abspath(path))
        writes = watch_writes(folder, [f"{name}-wal"])
        return None if writes is None else cls(writes)

    def wait(self, seconds: float) -> bool:
        """Up to ``seconds``; True if the WAL was written meanwhile (a poke ends the wait
        too, and stays until :meth:`clear`)."""
        return bool(self._poller.poll(seconds * 1000.0)) and self._writes.drain()

    def poke(self) -> None:
        with self._lock:  # never into a descriptor closed (and perhaps reused) since
            if self._poked is not None:
                os.eventfd_write(self._poked, 1)

    def clear(self) -> None:
        """Forget the pokes so far."""
        with self._lock, contextlib.suppress(BlockingIOError):
            if self._poked is not None:
                os.eventfd_read(self._poked)

    def close(self) -> None:
        with self._lock:
            self._poked = None
            self._unpoked()
        self._writes.close()


class SqlitePolls:
    """When a SQLite reader waiting for other connections' commits next reads ``PRAGMA
    data_version``: every SQLITE_POLL_SECONDS for SQLITE_FAST_POLL_FOR_SECONDS after it began
    waiting, then every SQLITE_IDLE_POLL_SECONDS; after a write to the WAL (:class:`WalWatch`)
    that the read found not yet committed, SQLITE_AFTER_WRITE_READS reads
    SQLITE_AFTER_WRITE_SECONDS apart first. An idle worker's wait and the thread that wakes
    ``q.wait()`` callers (completions.py) keep this schedule."""

    def __init__(self, since: float) -> None:
        self.since = since  # when the wait began (time.monotonic)
        self._soon = 0  # reads left at SQLITE_AFTER_WRITE_SECONDS

    def step(self, now: float) -> float:
        """Seconds until the next read, from ``now``; counts one read of those after a write."""
        if self._soon:
            self._soon -= 1
            return SQLITE_AFTER_WRITE_SECONDS
        return SQLITE_POLL_SECONDS if now - self.since < SQLITE_FAST_POLL_FOR_SECONDS else SQLITE_IDLE_POLL_SECONDS

    def wal_written(self) -> None:
        self._soon = SQLITE_AFTER_WRITE_READS

    def moved(self) -> None:
        """data_version moved: back to the plain schedule."""
        self._soon = 0


class SqliteWakeup:
    """Reads ``PRAGMA data_version`` on a schedule (every 1 ms just after the worker went
    idle, then every 4 ms); where inotify can watch the database's folder (Linux), a write
    to its WAL ends the wait at once (:class:`WalWatch`), and the schedule is a backstop."""

    def __init__(self, path: str) -> None:
        # A private connection: data_version only moves for commits by *other* connections.
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._event = threading.Event()
        self._version = self._read()
        self._wal = WalWatch.of(path)
        # Set while wait() blocks on the WAL watch: only then does a poke need its descriptor
        # (a busy worker's slots poke after every job; a write to the descriptor is a syscall).
        self._on_watch = False

    def mark(self) -> None:
        self._event.clear()
        if self._wal is not None:
            self._wal.clear()

    def watch(self) -> None:
        self._version = self._read()

    def wait(self, timeout: float, *, database: bool = True) -> None:
        if not database:
            self._event.wait(timeout)
            return
        self._on_watch = self._wal is not None  # before the event is tested: a poke after this writes
        try:
            self._wait(timeout)
        finally:
            self._on_watch = False

    def _wait(self, timeout: float) -> None:
        start = time.monotonic()
        deadline = start + timeout
        polls = SqlitePolls(start)
        while True:
            now = time.monotonic()
            remaining = deadline - now
            step = polls.step(now)
            if remaining <= 0 or self._event.is_set():
                return
            if self._wal is None:
                if self._event.wait(min(step, remaining)):
                    return
            elif self._wal.wait(min(step, remaining)):
                polls.wal_written()
            if self._read() != self._version:
                return

    def poke(self) -> None:
        self._event.set()
        if self._on_watch and self._wal is not None:
            self._wal.poke()

    def close(self) -> None:
        self.poke()
        if self._wal is not None:
            self._wal.close()
        self._conn.close()

    def _read(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])


class PostgresWakeup:
    def __init__(self, db: Database) -> None:
        self._event = threading.Event()
        dsn = db.listen_dsn()
        self._listener = None if dsn is None else Listener(dsn, hidden(dsn), self._event.set).start()
        if self._listener is None:
            log.warning(
                "%s is reached through a transaction pooler and no listen_url is set: idle workers "
                "poll every poll_interval_seconds (%gs) instead of waking at each submit",
                db.describe(),
                db.settings.poll_interval_seconds,
            )
            return
        # LISTEN before the first claim, so a submit after it is not missed; but a server
        # that does not answer does not hold up the worker (it polls meanwhile).
        self._listener.tried.wait(FIRST_CONNECT_WAIT_SECONDS)

    def mark(self) -> None:
        self._event.clear()

    def watch(self) -> None:
        """Nothing to note: every submit's NOTIFY pokes the listener."""

    def wait(self, timeout: float, *, database: bool = True) -> None:
        self._event.wait(timeout)

    def poke(self) -> None:
        self._event.set()

    def close(self) -> None:
        self._event.set()
        if self._listener is not None:
            self._listener.stop(timeout=2.0)


def hidden(dsn: str) -> str:
    """``dsn`` for a log line: its password hidden."""
    return sa.make_url(dsn).render_as_string(hide_password=True)


class Listener(Looper):
    """Holds a ``LISTEN`` connection and calls ``on_notify`` for what arrives on it.

    A tick connects if there is no connection (and calls ``on_notify``: jobs may have been
    submitted while nobody listened), or else waits up to :data:`NOTIFY_WAIT_SECONDS` for
    notifications. A connection that fails is dropped, the tick raises :class:`StoreError`
    (the loop logs it in one line) and the next connect waits a back-off; meanwhile idle
    workers poll."""

    def __init__(
        self,
        dsn: str,
        where: str,
        on_notify: Callable[[], None],
        *,
        channel: str = NOTIFY_CHANNEL,
        on_payload: Callable[[str], None] | None = None,
    ) -> None:
        """``on_notify`` is called for each notification on ``channel`` and after each
        (re)connect; with ``on_payload``, a notification calls that with its payload instead."""
        super().__init__("queuelab-listen" if channel == NOTIFY_CHANNEL else f"queuelab-listen-{channel}", every=0.0)
        self._dsn, self._where, self._on_notify = dsn, where, on_notify
        self._channel, self._on_payload = channel, on_payload
        self._conn: psycopg.Connection[Any] | None = None
        self.failures = 0  # connections in a row that failed
        self.tried = threading.Event()  # the first connection was made, or failed

    @property
    def backend_pid(self) -> int | None:
        """The server process of the ``LISTEN`` connection (None: not connected)."""
        return None if self._conn is None else self._conn.info.backend_pid

    def interval(self) -> float:
        """0 while connected (the tick itself waits); a doubling back-off after failures."""
        return min(MAX_RECONNECT_SECONDS, 0.2 * 2.0**self.failures) if self.failures else 0.0

    def tick(self, now: float, mono: float) -> None:
        import psycopg  # the postgres extra's; a listener exists only for a PostgreSQL Database, which has it

        try:
            if self._conn is None:
                self._connect()
                return
            for note in self._conn.notifies(timeout=NOTIFY_WAIT_SECONDS):
                if self._on_payload is not None:
                    self._on_payload(note.payload)
                else:
                    self._on_notify()
            if self.stopping:  # the connection is the loop's: the loop closes it
                self._disconnect()
        except psycopg.Error as exc:
            self._disconnect()
            self.failures += 1
            why = " ".join(str(exc).split())  # libpq's message spans lines: keep the log line one
            raise StoreError(f"LISTEN connection to {self._where} failed ({why}); polling until it is back") from exc
        finally:
            self.tried.set()

    def stop(self, timeout: float | None = 5.0) -> None:
        super().stop(timeout)
        if not self.alive:  # stopped between two ticks: the loop is over, close its connection
            self._disconnect()

    def _connect(self) -> None:
        import psycopg

        conn = psycopg.connect(self._dsn, autocommit=True)
        self._conn = conn
        conn.execute(f"LISTEN {self._channel}")
        if self.failures:
            log.warning("LISTEN connection to %s is back", self._where)
        self.failures = 0
        self._on_notify()  # jobs may have arrived while nobody listened

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
