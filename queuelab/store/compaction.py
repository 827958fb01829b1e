"""SQLite: give the pages a prune freed back to the file system, a few at a time.

Deleting rows puts their pages on the file's freelist; the file never shrinks. A file made
with ``auto_vacuum = INCREMENTAL`` (every file queuelab creates: see database.py) can hand
free pages back with ``PRAGMA incremental_vacuum(N)``: it moves up to N pages from the end
of the file into free slots and truncates. Each step is its own write transaction, so the
writer lock is held for one step (``STEP_PAGES`` pages: under a millisecond here, most of
the time) and workers claim and ack in between. The main file shrinks when the WAL is next
checkpointed.

A file made before (``auto_vacuum = NONE``) cannot do this until it is converted once, with
a full VACUUM that holds the write lock throughout: :func:`compact`, behind
``python -m queuelab vacuum`` (run it when the workers can wait).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from queuelab.errors import InvalidArgument
from queuelab.store.database import Database

# Half a MiB of 4 KiB pages per write transaction: 0.4 ms per step here (median; 5 ms at
# most, measured when a step's commit could also checkpoint), against 1.9 ms (11 ms) for
# 256 pages.
STEP_PAGES = 128
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
TRUNCATE_TRIES = 50


@dataclass(frozen=True, slots=True)
class FileUsage:
    page_size: int
    page_count: int
    free_pages: int
    auto_vacuum: int  # 0 NONE, 1 FULL, 2 INCREMENTAL

    @property
    def file_bytes(self) -> int:
        return self.page_size * self.page_count

    @property
    def live_bytes(self) -> int:
        return self.page_size * (self.page_count - self.free_pages)


def usage(db: Database) -> FileUsage:
    """The file's pages, as SQLite counts them (the main file, as of the last commit)."""
    _require_sqlite(db, "usage")
    with db.read() as conn:
        values = [conn.exec_driver_sql(f"PRAGMA {name}").scalar_one() for name in _USAGE]
    return FileUsage(*(int(value) for value in values))


_USAGE = ("page_size", "page_count", "freelist_count", "auto_vacuum")


def vacuum_step(db: Database, pages: int = STEP_PAGES) -> int:
    """Hand up to ``pages`` free pages back, in one write transaction of its own; the free
    pages left. A file without incremental auto-vacuum frees nothing: 0 (see compact)."""
    _require_sqlite(db, "vacuum_step")
    with db.outside_transaction() as conn:
        if conn.execute("PRAGMA auto_vacuum").fetchone() != (INCREMENTAL,):
            return 0
        # executescript, not execute: the pragma frees one page each time it is stepped,
        # and the driver steps a statement without result columns only once.
        conn.executescript(f"PRAGMA incremental_vacuum({int(pages)})")
        return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def vacuum_for(db: Database, budget_seconds: float, pages: int = STEP_PAGES) -> bool:
    """Steps until nothing is free or ``budget_seconds`` have passed; True if pages are
    still free (call again). Checkpoints the WAL (passively: it waits for nobody) once all
    are handed back, so the main file shrinks now rather than at the next automatic one."""
    deadline = time.monotonic() + budget_seconds
    while vacuum_step(db, pages) > 0:
        if time.monotonic() >= deadline:
            return True
    with db.outside_transaction() as conn:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return False


def compact(db: Database) -> tuple[FileUsage, FileUsage]:
    """Convert the file to incremental auto-vacuum (if it is not) and rewrite it without its
    free pages: one VACUUM, holding the write lock until it ends. (usage before, after)."""
    _require_sqlite(db, "compact (python -m queuelab vacuum)")
    before = usage(db)
    with db.outside_transaction() as conn:
        conn.execute(f"PRAGMA auto_vacuum={INCREMENTAL}")
        conn.execute("VACUUM")
        # Busy, at once, while another process's checkpoint (store/checkpoint.py) copies:
        # a passive one takes milliseconds, so try again for a second.
        for _ in range(TRUNCATE_TRIES):
            if conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                break
            time.sleep(0.02)
    return before, usage(db)


def _require_sqlite(db: Database, what: str) -> None:
    if not db.is_sqlite:
        raise InvalidArgument(f"{what} works on a SQLite database; {db.describe()} is PostgreSQL (autovacuum's job)")
