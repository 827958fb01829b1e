"""Submitting inside the caller's own transaction (``Queue.submit(..., connection=conn)``).

The job is written on the application's connection, in its open transaction, so it exists
exactly when the application's own rows do: rolled back with them, visible to workers once
they commit, and woken then (PostgreSQL delivers the submit's ``NOTIFY`` at that commit; on
SQLite the commit moves the ``data_version`` counter idle workers watch). The checks, the
limits and the fair ranks are those of any submit, run on that connection.

The connection must reach the queue's own database with the same driver (the job path runs
some statements on the driver's connection): :func:`enlisted` checks what it can see, the
dialect, the driver and the database's address, and refuses anything else by name.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.errors import InvalidArgument
from queuelab.store.database import Database


def enlisted(db: Database, connection: object) -> Connection:
    """The SQLAlchemy Connection to write on: ``connection`` itself, or a Session's (which
    begins the session's transaction if it has none yet)."""
    conn = _connection_of(connection)
    mine, theirs = db.engine.url, conn.engine.url
    if (conn.dialect.name, conn.dialect.driver) != (db.engine.dialect.name, db.engine.dialect.driver):
        raise InvalidArgument(
            f"connection must be a {db.engine.dialect.name}+{db.engine.dialect.driver} connection to the "
            f"queue's database, got {conn.dialect.name}+{conn.dialect.driver}"
        )
    if _address(db, theirs) != _address(db, mine):
        raise InvalidArgument(
            f"connection must reach the queue's database {db.describe()}, "
            f"got one to {theirs.render_as_string(hide_password=True)}"
        )
    return conn


def _connection_of(connection: object) -> Connection:
    if isinstance(connection, Connection):
        return connection
    from sqlalchemy.orm import Session  # only for callers that pass one

    if isinstance(connection, Session):
        return connection.connection()
    raise InvalidArgument(f"connection must be a SQLAlchemy Connection or Session, got {type(connection).__name__}")


def _address(db: Database, url: sa.URL) -> tuple[Any, ...]:
    if db.is_sqlite:
        return (os.path.realpath(url.database or ""),)
    return (url.host or "localhost", url.port or 5432, url.database)
