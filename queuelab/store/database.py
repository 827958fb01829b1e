"""Engines, transactions and schema set-up for the two supported databases.

SQLite is the embedded default: WAL (readers never block the writer), a busy timeout, and
every write transaction opened with ``BEGIN IMMEDIATE`` so two writers queue on the lock
instead of failing when a reader tries to upgrade. PostgreSQL serves many workers on many
machines; row locks (``FOR UPDATE SKIP LOCKED``) do the job SQLite's database lock does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from queuelab.config import Settings
from queuelab.errors import ConfigError, SchemaVersionError, StoreError
from queuelab.extras import POSTGRES, require
from queuelab.store import autovacuum
from queuelab.store.checkpoint import BACKSTOP_FRAMES, Checkpointer
from queuelab.store.schema import (
    DONE_TRIGGER,
    NOTIFY_CHANNEL,
    POSTGRES_RELEASE_TRIGGER,
    RETIRED_INDEXES,
    SCHEMA_REVISION,
    SCHEMA_VERSION,
    SQLITE_RELEASE_TRIGGER,
    THROTTLE_FUNCTION,
    meta,
    metadata,
)
from queuelab.store.write_lock import WriteLock

log = logging.getLogger("queuelab.store")

# Any constant works; it only has to be the same in every queuelab process.
_SCHEMA_LOCK_KEY = 0x71756575656C6162  # "queuelab"


class Database:
    """One engine plus the transaction helpers every store module uses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.caches: dict[str, object] = {}  # per-database caches of the store modules
        self._writer: AbstractContextManager[Any] = contextlib.nullcontext()
        self._checkpointer: Checkpointer | None = None  # SQLite: the WAL's checkpoints (store/checkpoint.py)
        self._held: tuple[int, Connection] | None = None  # SQLite: (pid, the write connection): _writing()
        self.url = _normalise_url(settings.database_url)
        self.dialect = "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"
        if self.is_sqlite:
            lock = WriteLock(self.sqlite_path)
            self._writer = lock
            self._checkpointer = Checkpointer(self.sqlite_path, lock, synchronous=settings.sqlite_synchronous)
            # A queue dropped unclosed stops its loop too (without the last checkpoint, which
            # may wait for the write lock: a finalizer runs wherever the collector does).
            weakref.finalize(self, self._checkpointer.close, last_checkpoint=False)
            self.engine = _sqlite_engine(self.url, settings, lock)
        else:
            self.engine = _postgres_engine(self.url, settings)
        try:
            self._ensure_schema()
        except BaseException:
            self.dispose()
            raise

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def sqlite_path(self) -> str:
        return str(self.url.database)

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def listen_dsn(self) -> str | None:
        """Where a ``LISTEN`` connection goes (PostgreSQL): ``listen_url`` if set; else the
        database, unless it is reached through a transaction pooler, where a LISTEN would
        hear nothing (its server connection goes back to the pool): then None, and whoever
        would listen polls instead."""
        if self.settings.listen_url is not None:
            url = sa.make_url(self.settings.listen_url)
        elif self.settings.postgres_pooling == "transaction":
            return None
        else:
            url = self.url
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` on SQLite, a plain one on PostgreSQL.

        SQLite allows one writer per file; queuelab's writers queue for it, threads on a
        Python lock and processes on a side file's ``flock``, so neither spins for SQLite's
        own lock (:mod:`queuelab.store.write_lock`).
        """
        if not self.is_sqlite:
            with translate_errors(self), self.engine.connect() as conn, conn.begin():
                yield conn
            return
        with self._writer, translate_errors(self):
            conn = self._writing()
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                self._stop_writing()
                raise
        if self._checkpointer is not None:  # committed: its pages wait in the WAL
            self._checkpointer.wrote()

    def _writing(self) -> Connection:
        """SQLite: this process's write connection, taken from the pool once and kept, under
        the write lock, between its transactions. Its write transactions take turns anyway
        (one writer at a time), and a checkout and check-in of a pooled connection per
        transaction cost more than the transaction of a one-job submit (an empty
        ``write()``: 109-152 -> 37-50 µs of CPU, measured side by side). A forked child takes its own."""
        held = self._held
        if held is not None and held[0] == os.getpid():
            return held[1]
        conn = self.engine.connect()
        self._held = (os.getpid(), conn)
        return conn

    def _stop_writing(self) -> None:
        """After a failed write: hand the connection back to the pool (which rolls back and
        resets it, or discards it if it was invalidated); the next write takes one afresh."""
        held, self._held = self._held, None
        if held is not None and held[0] == os.getpid():
            held[1].close()

    @contextmanager
    def outside_transaction(self) -> Iterator[sqlite3.Connection]:
        """SQLite: the driver's connection, in no transaction, holding this process's write
        lock: for the statements that cannot run inside one (VACUUM, a WAL checkpoint). The
        background checkpoint (store/checkpoint.py) waits meanwhile: one under way would
        make a checkpoint here find the WAL busy."""
        assert self.is_sqlite, "PostgreSQL: use autocommit()"
        paused = self._checkpointer.running if self._checkpointer is not None else contextlib.nullcontext()
        with paused, self._writer, translate_errors(self), self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            busy_ms = int(self.settings.sqlite_busy_timeout_seconds * 1000)
            _set_busy_timeout(raw, conn.connection.info, busy_ms)  # each statement waits for the lock itself
            yield raw

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A PostgreSQL connection on which each statement is its own transaction: one
        round trip for a write that is a single statement, where ``write()`` adds BEGIN
        and COMMIT (two more, each as long as the statement on a local server)."""
        assert not self.is_sqlite, "SQLite writes take the write lock: use write()"
        with translate_errors(self), self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads: on SQLite a read transaction (``BEGIN DEFERRED``: one
        snapshot for all its statements, no write lock). On PostgreSQL each statement runs
        on its own (autocommit), which sees what it saw inside a transaction: at READ
        COMMITTED every statement takes its own snapshot anyway, so the BEGIN and the COMMIT
        were two round trips that bought nothing (``q.get``: 1.30-1.68 -> 1.16-1.38 ms back to
        back, 3.08-3.16 -> 2.51-2.84 ms after an idle spell). Do not write through it."""
        if not self.is_sqlite:
            with translate_errors(self), self.engine.connect() as conn:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
            return
        with translate_errors(self), self.engine.connect() as conn:
            conn = conn.execution_options(queuelab_begin="DEFERRED")
            with conn.begin():
                yield conn

    def notify(self, conn: Connection, queue: str) -> None:
        """Wake idle PostgreSQL workers when this transaction commits (no-op on SQLite,
        whose workers watch ``PRAGMA data_version`` instead)."""
        if not self.is_sqlite:
            conn.execute(sa.text("SELECT pg_notify(:channel, :queue)"), {"channel": NOTIFY_CHANNEL, "queue": queue})

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._stop_writing()
        self.engine.dispose()
        if isinstance(self._writer, WriteLock):
            self._writer.close()

    def _schema_is_current(self) -> bool:
        """One catalog read instead of create_all's check per table: a worker process that
        starts on a ready database (the usual case, and every restart) is ready sooner."""
        with translate_errors(self), self.engine.connect() as conn:
            if not {table.name for table in metadata.sorted_tables} <= set(sa.inspect(conn).get_table_names()):
                return False
            found = _versions(conn)
            return found.get("schema_version") == SCHEMA_VERSION and found.get("schema_revision", 0) >= SCHEMA_REVISION

    def _ensure_schema(self) -> None:
        if self._schema_is_current():
            return
        with self.write() as conn:
            if not self.is_sqlite:
                # Many workers may start at once on an empty database: serialise CREATE TABLE.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            found = _versions(conn)
            version = found.get("schema_version")
            if version is not None and version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the database {self.describe()} was written by queuelab schema version {version}, "
                    f"but this queuelab only knows versions up to {SCHEMA_VERSION}; upgrade queuelab "
                    "before using this database"
                )
            metadata.create_all(conn, checkfirst=True)
            for name in RETIRED_INDEXES:
                conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
            for table in metadata.sorted_tables:  # columns and indexes added to a table that already existed
                _add_missing_columns(conn, table)
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
            postgres = (*DONE_TRIGGER, *POSTGRES_RELEASE_TRIGGER, *THROTTLE_FUNCTION)
            for statement in SQLITE_RELEASE_TRIGGER if self.is_sqlite else postgres:
                conn.execute(sa.text(statement))
            if not self.is_sqlite:
                _tune_autovacuum(conn, self.describe())
            if version is None:
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            if found.get("schema_revision", 0) < SCHEMA_REVISION:
                conn.execute(meta.delete().where(meta.c.key == "schema_revision"))
                conn.execute(meta.insert().values(key="schema_revision", value=str(SCHEMA_REVISION)))


def _add_missing_columns(conn: Connection, table: sa.Table) -> None:
    """ALTER TABLE … ADD COLUMN for each nullable column a table written by an older
    revision lacks (a column that must hold a value would need a version bump instead)."""
    present = {column["name"] for column in sa.inspect(conn).get_columns(table.name)}
    for column in table.columns:
        if column.name in present:
            continue
        assert column.nullable, f"{table.name}.{column.name}: a new column must be nullable"
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def _tune_autovacuum(conn: Connection, where: str) -> None:
    """Revision 12: the churning tables' autovacuum settings (store/autovacuum.py)."""
    autovacuum.apply(conn)
    if autovacuum.server_autovacuum_off(conn):
        # INFO, not WARNING: said once per database, where tests that read the warnings of
        # their own code create databases by the hundred on such a server.
        log.info(
            "autovacuum is off on %s: the space of pruned jobs is never reused and the jobs table "
            "grows until someone runs VACUUM; turn it on (autovacuum = on, the default)",
            where,
        )


def _versions(conn: Connection) -> dict[str, int]:
    """The schema version and revision recorded in the database (none on a new one)."""
    if not sa.inspect(conn).has_table(meta.name):
        return {}
    keys = meta.c.key.in_(["schema_version", "schema_revision"])
    return {key: int(value) for key, value in conn.execute(sa.select(meta.c.key, meta.c.value).where(keys))}


@contextmanager
def translate_errors(db: Database) -> Iterator[None]:
    try:
        yield
    except (sa.exc.DBAPIError, sqlite3.Error) as exc:  # sqlite3's own: see store/direct.py
        orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        lines = str(orig if orig is not None else exc).strip().splitlines()
        detail = lines[0] if lines else repr(orig)
        if "locked" in detail:
            detail += (
                f" (waited {db.settings.sqlite_busy_timeout_seconds:g}s for the write lock; "
                "raise QUEUELAB_SQLITE_BUSY_TIMEOUT_SECONDS or find the process holding it)"
            )
        elif db.is_sqlite and ("unable to open" in detail or "readonly" in detail):
            detail += (
                " (the file, its directory or the file system is not writable: SQLite in WAL mode "
                "writes the -wal and -shm files beside the database, even to read it)"
            )
        elif db.is_sqlite and "full" in detail:
            detail += " (no space left where the database lives; committed jobs are kept, this write was not)"
        raise StoreError(f"database error on {db.describe()}: {detail}") from exc
    except sa.exc.TimeoutError as exc:  # the pool's, not the database's: every connection is in use
        raise StoreError(f"no connection to {db.describe()} came free in time: {exc}") from exc


def _normalise_url(raw: str) -> sa.URL:
    url = make_url(raw)
    backend = url.get_backend_name()
    if backend == "postgresql" or url.drivername == "postgres":
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
            raise ConfigError(
                f"database_url {raw!r} names an in-memory SQLite database, which worker processes "
                "cannot share; give a file path such as sqlite:///queuelab.db"
            )
        return url.set(drivername="sqlite")
    raise ConfigError(f"database_url must be a SQLite or PostgreSQL URL, got {raw!r}")


def _sqlite_engine(url: sa.URL, settings: Settings, lock: WriteLock) -> Engine:
    folder = os.path.dirname(os.path.abspath(str(url.database)))
    if not os.path.isdir(folder):
        raise ConfigError(f"database_url {url.render_as_string()!r}: the folder {folder!r} does not exist")
    engine = sa.create_engine(
        url,
        connect_args={"timeout": settings.sqlite_busy_timeout_seconds},
        pool_size=8,
        max_overflow=32,
    )
    busy_ms = int(settings.sqlite_busy_timeout_seconds * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Take transaction control from the sqlite3 module: it would open deferred
        # transactions on its own, and a deferred writer can fail with SQLITE_BUSY.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # A new file is made with incremental auto-vacuum, so a prune's free pages can be
        # handed back a step at a time (store/compaction.py). It must come before the first
        # table, and before journal_mode (which writes the file's header). Only on an empty
        # file: on one with tables it would change nothing (`python -m queuelab vacuum`
        # converts one) but wait for the write lock, which another connection may hold.
        if cursor.execute("PRAGMA page_count").fetchone() == (0,):
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
        # Checkpoints run in a background loop, not in the commit that crosses 1,000 WAL
        # pages with queuelab's write lock held (store/checkpoint.py); SQLite's own only
        # where the loop falls behind.
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_FRAMES}")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        # A write transaction's statement journal (the savepoint a worker's batch of acks
        # runs in, a multi-row UPDATE's own) in memory, not spilled to a temporary file past
        # 64 KiB: a batch of 100 acks cost twice as much with the file (24-33 against 12-21
        # µs a row, raw sqlite3 on queuelab's schema); a one-slot drain 72.5 -> 56.2 and
        # 58.7 -> 50.1 µs of CPU a job. Sorts' temporary tables go there too.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()
        record.info[_BUSY_MS] = busy_ms

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("queuelab_begin", "IMMEDIATE")
        raw, info = conn.connection.driver_connection, conn.connection.info
        if mode == "IMMEDIATE":
            _set_busy_timeout(raw, info, 0)  # the fast loop below does the waiting
            if lock.holds():  # queuelab's writers queued in the kernel: SQLite's lock is free...
                if _try_begin_immediate(raw):
                    return
                lock.step_aside()  # ...unless a writer outside queuelab's lock holds it
            if _begin_immediate_fast(raw):
                return
        _set_busy_timeout(raw, info, busy_ms)
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


FAST_LOCK_SECONDS = 1.0
_BUSY_MS = "queuelab_busy_timeout_ms"  # the busy timeout a pooled connection has now


def _set_busy_timeout(raw: Any, info: dict[Any, Any], busy_ms: int) -> None:
    """Set the connection's busy timeout, unless it has it already: a write transaction
    runs with 0 (see _begin_immediate_fast) and a read with the configured timeout, and a
    PRAGMA per transaction would be a third of a short write's statements.

    A busy timeout of 0 inside a write transaction is safe: BEGIN IMMEDIATE has taken the
    write lock and the read snapshot, so no later statement of it waits for a lock (the
    checkpoint a commit may run is passive and never waits)."""
    if info.get(_BUSY_MS) != busy_ms:
        raw.execute(f"PRAGMA busy_timeout={busy_ms}")
        info[_BUSY_MS] = busy_ms


def _try_begin_immediate(raw: Any) -> bool:
    """One try for SQLite's write lock (the connection's busy timeout is 0)."""
    try:
        raw.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False
    return True


def _begin_immediate_fast(raw: Any) -> bool:
    """Try for the write lock with short randomised sleeps (the connection's busy timeout
    is 0). SQLite's own busy handler sleeps 1, 2, 5, 10 ms... between tries, far longer
    than a queue's write transaction (a fraction of a millisecond), so N processes sharing
    one file would mostly sleep. False after FAST_LOCK_SECONDS: the caller then waits with
    the normal busy timeout."""
    deadline = time.monotonic() + FAST_LOCK_SECONDS
    ceiling = 0.0002
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                return False
        time.sleep(random.uniform(0.0, ceiling))
        ceiling = min(ceiling * 2, 0.005)


def _postgres_engine(url: sa.URL, settings: Settings) -> Engine:
    # psycopg is the postgres extra's: imported here, so a SQLite queue never loads it.
    (psycopg,) = require(POSTGRES, extra="postgres", feature="a PostgreSQL database_url")
    # Behind a transaction pooler, consecutive transactions may run on different server
    # connections: a statement psycopg prepared on one is unknown on the next.
    args = {"prepare_threshold": None} if settings.postgres_pooling == "transaction" else {}
    engine = sa.create_engine(url, pool_size=8, max_overflow=32, connect_args=args)

    @event.listens_for(engine, "checkout")
    def _drop_dead(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        # A pooled connection is idle: it runs no query and never LISTENs (the listener has
        # its own), so the server has nothing to say on it. If its socket is readable, the
        # server said goodbye (a restart or an outage sends FATAL, then closes): drop it and
        # let the pool connect afresh. Unlike pool_pre_ping this costs no round trip, and the
        # first statement after a restart succeeds instead of failing once.
        # poll, not select: select cannot watch a descriptor above 1023, which a busy
        # process (an API server with many clients) soon hands out.
        poller = select.poll()
        try:
            poller.register(dbapi_conn.pgconn.socket, select.POLLIN)
            readable = poller.poll(0)
        except (OSError, psycopg.Error) as exc:
            raise sa.exc.DisconnectionError(f"pooled connection unusable: {exc}") from exc
        if readable:
            raise sa.exc.DisconnectionError("the server closed this pooled connection")

    return engine
