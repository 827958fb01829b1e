"""The job path's few statements, run on SQLite's own cursor.

On SQLite a job costs little in the database (a claim, an ack or an insert is a few
microseconds of work) but SQLAlchemy spends about 50 µs around each execution (an
execution context, events, parameter processing, a result object), and a worker runs three
of them per job. :func:`execute` compiles each Core statement once, with SQLAlchemy, and then
binds and runs it on the DBAPI cursor of the connection SQLAlchemy opened, inside the same
transaction. It applies the same bind processors SQLAlchemy would, and a statement that
needs anything more (defaults computed at execution, expanding parameters) takes the normal
path. On PostgreSQL :func:`execute` takes the normal path; the job path's statements
there (a submit, a worker's turn, a claim) go through :func:`execute_sql`, on psycopg's own
cursor, which does what SQLAlchemy would on an error: raises it as SQLAlchemy's and
invalidates a connection the error left broken.

Both read SQLAlchemy's compiled form beyond its public API (``positiontup``,
``_bind_processors``, ``binds``, ``bind_names``): pyproject.toml pins SQLAlchemy to the
minor they were tested on, and tests/store/test_direct.py fails, naming what changed, if the
installed SQLAlchemy no longer has them in that shape.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.base import Executable

from queuelab.store.database import Database

Params = Mapping[str, Any]
_FROM_PARAMS = object()  # a bind filled from the parameters (not a constant of the statement)


@dataclass(frozen=True, slots=True)
class Rows:
    """What a statement returned: the rows (attribute access by column name) and the count."""

    rows: Sequence[Any]
    rowcount: int


@dataclass(frozen=True, slots=True)
class _Compiled:
    statement: Executable  # held so that the id() keying the cache is never reused
    sql: str
    binds: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]  # name, constant, processor

    def values(self, params: Params) -> tuple[Any, ...]:
        out = []
        for name, constant, process in self.binds:
            value = params[name] if constant is _FROM_PARAMS else constant
            out.append(value if process is None or value is None else process(value))
        return tuple(out)


def execute(conn: Connection, db: Database, statement: Executable, params: Params) -> Rows:
    """Run ``statement`` with ``params`` on ``conn`` (in its transaction); fetch every row."""
    compiled = _compiled(db, statement, params) if db.is_sqlite else None
    if compiled is None:
        result = conn.execute(statement, dict(params))
        return Rows(result.all() if result.returns_rows else (), result.rowcount)
    cursor = conn.connection.driver_connection.execute(compiled.sql, compiled.values(params))  # type: ignore[union-attr]
    try:
        if cursor.description is None:
            return Rows((), cursor.rowcount)
        make = _row_type(tuple(d[0] for d in cursor.description))
        rows = [make._make(row) for row in cursor.fetchall()]
        return Rows(rows, cursor.rowcount)
    finally:
        cursor.close()


def execute_many(conn: Connection, db: Database, statement: Executable, params: Sequence[Params]) -> int:
    """Run a statement that returns no rows once per parameter set, in one call to the
    driver (``executemany``: one pass on SQLite, a pipeline on PostgreSQL); return the
    total row count."""
    compiled = _compiled(db, statement, params[0]) if db.is_sqlite else None
    if compiled is None:
        return int(conn.execute(statement, [dict(p) for p in params]).rowcount)
    driver = conn.connection.driver_connection
    cursor = driver.executemany(compiled.sql, [compiled.values(p) for p in params])  # type: ignore[union-attr]
    try:
        return int(cursor.rowcount)
    finally:
        cursor.close()


def insert_many(conn: Connection, db: Database, statement: sa.Insert, params: Sequence[Params]) -> None:
    """Insert one row per parameter set (all with the same keys). On SQLite, as multi-row
    ``VALUES`` statements of up to INSERT_CHUNK rows: ``executemany`` steps the statement
    once a row and lets go of the GIL at each step, which a thread that wants it back then
    waits for behind the others (measured, a write of 4 rows: 60 µs in ``executemany`` and
    33 binding). Elsewhere :func:`execute_many`."""
    compiled = _compiled(db, statement, params[0]) if db.is_sqlite else None
    if compiled is None or " VALUES " not in compiled.sql:
        execute_many(conn, db, statement, params)
        return
    driver = conn.connection.driver_connection
    for start in range(0, len(params), INSERT_CHUNK):
        chunk = params[start : start + INSERT_CHUNK]
        values = [value for p in chunk for value in compiled.values(p)]
        driver.execute(_rows_sql(compiled.sql, len(chunk)), values).close()  # type: ignore[union-attr]


# Rows a multi-row insert statement takes: 64 rows of 16 columns bind 1,024 values, far
# below SQLite's limit (32,766), and a batch of 1,000 rows is 16 statements.
INSERT_CHUNK = 64


@cache
def _rows_sql(sql: str, count: int) -> str:
    """``INSERT ... VALUES (?, ...)`` for ``count`` rows."""
    head, row = sql.split(" VALUES ", 1)
    return f"{head} VALUES {', '.join([row] * count)}"


def execute_sql(conn: Connection, db: Database, statement: Executable, params: Params) -> Sequence[Any]:
    """PostgreSQL: run a statement as its SQL text, compiled once, on psycopg's own cursor,
    in ``conn``'s transaction (or none, on an autocommit connection); every row, with
    attribute access by column name. For the job path's statements (a submit, a worker's
    turn, a claim): SQLAlchemy's work around each execution of a compiled statement grows
    with its size, 0.2 to 0.5 ms for the quota claim, more than the server's, and even
    ``exec_driver_sql`` costs about 70 µs of CPU beside psycopg's 40 (a ``SELECT 1``,
    measured). Every bind is either in ``params`` or a constant of the statement; LIMITs
    are fixed in the SQL. Driver errors are raised as SQLAlchemy's (translate_errors makes
    them a StoreError), and a connection the error left broken is invalidated, so the pool
    opens a new one instead of handing it out again, as SQLAlchemy does. Where a listener
    watches the statements (see _observed), SQLAlchemy runs it, so that the listener sees it."""
    cache = db.caches.setdefault("sql", {})
    assert isinstance(cache, dict)
    found: tuple[Executable, str, dict[str, Any]] | None = cache.get(id(statement))
    if found is None:
        compiled = statement.compile(dialect=db.engine.dialect)  # type: ignore[attr-defined]
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("execute_sql: a statement with parameters rendered at execution")
        constants = {}
        for bind, name in compiled.bind_names.items():
            if name in params:
                continue
            if bind.required or bind.callable is not None:  # SQLAlchemy would refuse it unset
                raise ValueError(f"execute_sql: no value for the bind parameter {name!r}")
            constants[name] = _plain(bind.value)
        found = cache[id(statement)] = (statement, compiled.string, constants)
    if _observed(conn):
        return conn.exec_driver_sql(found[1], {**found[2], **params}).all()
    return _run_on_psycopg(conn, found[1], {**found[2], **params})


def _observed(conn: Connection) -> bool:
    """Whether something watches this connection's statements (a cursor event listener:
    OpenTelemetry's SQLAlchemy instrumentation, a test counting round trips; or echo): they
    then take SQLAlchemy's path, where those see them, as every statement did before."""
    dispatch = conn.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute or conn._echo)


def _run_on_psycopg(conn: Connection, sql: str, params: Params) -> Sequence[Any]:
    import psycopg  # the postgres extra's: only a PostgreSQL Database gets here
    from psycopg.rows import namedtuple_row

    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
    except psycopg.Error as exc:
        broken = driver.broken or driver.closed
        if broken:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(sql, dict(params), exc, psycopg.Error, connection_invalidated=broken) from exc


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class Savepoint:
    """A savepoint of the current transaction: released at the end of the ``with`` block
    unless :meth:`rollback` undid it. On SQLite it is two statements on the driver's
    connection (SQLAlchemy's ``begin_nested`` costs ten times as much there)."""

    def __init__(self, conn: Connection, db: Database) -> None:
        self._conn, self._db = conn, db
        self._nested: Any = None
        self._done = False

    def __enter__(self) -> Savepoint:
        if self._db.is_sqlite:
            self._conn.connection.driver_connection.execute("SAVEPOINT queuelab_batch")  # type: ignore[union-attr]
        else:
            self._nested = self._conn.begin_nested()
        return self

    def rollback(self) -> None:
        if self._db.is_sqlite:
            driver = self._conn.connection.driver_connection
            driver.execute("ROLLBACK TO queuelab_batch")  # type: ignore[union-attr]
            driver.execute("RELEASE queuelab_batch")  # type: ignore[union-attr]
        else:
            self._nested.rollback()
        self._done = True

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if self._done or kind is not None:  # an error: the whole transaction rolls back
            return
        if self._db.is_sqlite:
            self._conn.connection.driver_connection.execute("RELEASE queuelab_batch")  # type: ignore[union-attr]
        else:
            self._nested.commit()


def _compiled(db: Database, statement: Executable, params: Params) -> _Compiled | None:
    cache = db.caches.setdefault("direct", {})
    assert isinstance(cache, dict)
    key = (id(statement), tuple(params))
    if key not in cache:  # None too: this statement takes SQLAlchemy's path
        cache[key] = _compile(db, statement, list(params))
    found: _Compiled | None = cache[key]
    return found


def _compile(db: Database, statement: Executable, keys: list[str]) -> _Compiled | None:
    """Compiled once for these parameter names; None if only SQLAlchemy can run it."""
    compiled = statement.compile(dialect=db.engine.dialect, column_keys=keys)  # type: ignore[attr-defined]
    if compiled.positiontup is None or compiled.literal_execute_params or compiled.post_compile_params:
        return None
    processors = compiled._bind_processors
    binds = []
    for name in compiled.positiontup:
        if name in keys:
            constant = _FROM_PARAMS
        else:
            bind = compiled.binds.get(name)
            if bind is None or bind.required or bind.callable is not None:
                return None  # a default SQLAlchemy computes at execution
            constant = bind.value
        binds.append((name, constant, processors.get(name)))
    return _Compiled(statement, compiled.string, tuple(binds))


_ROW_TYPES: dict[tuple[str, ...], Any] = {}


def _row_type(names: tuple[str, ...]) -> Any:
    found = _ROW_TYPES.get(names)
    if found is None:
        found = _ROW_TYPES[names] = namedtuple("Row", names, rename=True)
    return found
