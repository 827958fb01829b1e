"""Waking idle workers without busy polling the jobs table.

PostgreSQL: a listener thread holds a ``LISTEN`` connection; every submit sends a
``NOTIFY`` that is delivered when its transaction commits. SQLite has no such channel
across processes, so an idle worker watches ``PRAGMA data_version``: a read of a counter
in the shared-memory WAL index that changes whenever another connection commits. It costs
microseconds and touches no table, unlike re-running the claim query.

Protocol for a worker: ``mark()`` at the top of each turn (a poke after it ends the next
wait), ``watch()`` before a claim that may leave it idle, ``wait(timeout)`` when that claim
came back empty. Anything committed after ``watch()`` ends the wait at once. A busy turn
(one that acks, or has no free slot) never waits on the database, so it skips ``watch()``
and its read.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Protocol

from queuelab.store.database import Database
from queuelab.store.schema import NOTIFY_CHANNEL

log = logging.getLogger("queuelab.wakeup")

# How often an idle worker reads data_version: every millisecond just after it went idle
# (a job often follows), then every 4 ms, so an idle worker costs about 1% of a core.
SQLITE_POLL_SECONDS = 0.001
SQLITE_IDLE_POLL_SECONDS = 0.004
SQLITE_FAST_POLL_FOR_SECONDS = 0.2


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


class SqliteWakeup:
    def __init__(self, path: str) -> None:
        # A private connection: data_version only moves for commits by *other* connections.
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._event = threading.Event()
        self._version = self._read()

    def mark(self) -> None:
        self._event.clear()

    def watch(self) -> None:
        self._version = self._read()

    def wait(self, timeout: float, *, database: bool = True) -> None:
        if not database:
            self._event.wait(timeout)
            return
        start = time.monotonic()
        deadline = start + timeout
        while True:
            now = time.monotonic()
            remaining = deadline - now
            step = SQLITE_POLL_SECONDS if now - start < SQLITE_FAST_POLL_FOR_SECONDS else SQLITE_IDLE_POLL_SECONDS
            if remaining <= 0 or self._event.wait(min(step, remaining)):
                return
            if self._read() != self._version:
                return

    def poke(self) -> None:
        self._event.set()

    def close(self) -> None:
        self._event.set()
        self._conn.close()

    def _read(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])


class PostgresWakeup:
    def __init__(self, db: Database) -> None:
        self._dsn = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._where = db.describe()
        self._event = threading.Event()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="queuelab-listen", daemon=True)
        self._thread.start()
        self._listening.wait(5.0)

    def mark(self) -> None:
        self._event.clear()

    def watch(self) -> None:
        """Nothing to note: every submit's NOTIFY pokes the listener."""

    def wait(self, timeout: float, *, database: bool = True) -> None:
        self._event.wait(timeout)

    def poke(self) -> None:
        self._event.set()

    def close(self) -> None:
        self._stop.set()
        self._event.set()
        self._thread.join(timeout=2.0)

    def _listen(self) -> None:
        import psycopg

        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    if failures:
                        log.warning("LISTEN connection to %s is back", self._where)
                    failures = 0
                    self._listening.set()
                    self._event.set()  # jobs may have arrived while we were not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._event.set()
            except psycopg.Error as exc:
                failures += 1
                log.warning("LISTEN connection to %s failed (%s); polling until it is back", self._where, exc)
                self._listening.set()
                self._stop.wait(min(5.0, 0.2 * 2**failures))
