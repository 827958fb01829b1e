"""SQLite: after a prune, the maintenance loop hands the freed pages back to the file system
in small steps, so the file stays within twice its live data; an old file is converted once
with `python -m queuelab vacuum`."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from queuelab import FakeClock, Queue, Submission
from queuelab.bench.churn import push
from queuelab.cli import main
from queuelab.policy import Complete
from queuelab.runtime.maintenance import Maintenance
from queuelab.runtime.worker import Worker
from queuelab.store import compaction
from queuelab.testing import internals

JOBS = 3000
PAD = "x" * 600  # about a fifth of a page per job: the prune frees hundreds of pages


def finished_jobs(q: Queue, n: int = JOBS) -> None:
    """``n`` jobs submitted, claimed and completed."""
    runtime = internals(q)
    q.submit_many(Submission(task="simulate", payload={"pad": PAD}) for _ in range(n))
    while leases := runtime.leases.claim("w", None, 500, q.clock.now()):
        for lease in leases:
            runtime.leases.ack(lease, Complete(None), "w", q.clock.now())


def checkpoint(q: Queue) -> None:
    """Every page of the WAL copied into the database file."""
    with internals(q).db.outside_transaction() as raw:  # not in a transaction, which would block it
        busy, _, _ = raw.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
    assert busy == 0


def test_a_new_file_is_made_with_incremental_auto_vacuum(sqlite_url: str) -> None:
    with Queue(sqlite_url) as q:
        q.open()
        assert compaction.usage(q.database).auto_vacuum == compaction.INCREMENTAL


def test_after_a_prune_the_maintenance_step_keeps_the_file_within_twice_its_live_data(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "queue.db"
    q = Queue(f"sqlite:///{path}", clock=clock, retention_seconds=60)
    finished_jobs(q)
    q.submit_many(Submission(task="simulate") for _ in range(10))  # some live data stays
    clock.advance(120)
    maintenance = Maintenance(internals(q), Worker(internals(q)).held, Worker(internals(q)).info())
    while maintenance.prune(clock.now()):  # one batch per tick, as the loop does
        pass
    pruned = compaction.usage(q.database)
    assert pruned.free_pages > pruned.page_count / 2  # the prune freed most of the file ...
    checkpoint(q)  # (the newest pages may still be in the WAL, the file shorter until a checkpoint)
    assert os.path.getsize(path) >= pruned.file_bytes  # ... and the file kept every page
    while maintenance.vacuum():  # a tick's worth of steps each time
        pass
    after = compaction.usage(q.database)
    assert after.free_pages == 0
    assert os.path.getsize(path) <= 2 * after.live_bytes
    assert {k: n for k, n in q.stats().by_status.items() if n} == {"PENDING": 10}  # nothing live was touched
    q.close()


def test_each_step_hands_back_at_most_its_pages(sqlite_url: str, clock: FakeClock) -> None:
    """The write lock is held for one step's work at a time, however much is free."""
    q = Queue(sqlite_url, clock=clock)
    finished_jobs(q)
    clock.advance(1)
    q.prune(0)
    left = compaction.usage(q.database).free_pages
    steps = 0
    while left:
        now_left = compaction.vacuum_step(q.database, pages=64)
        assert left - 64 <= now_left < left
        left, steps = now_left, steps + 1
    assert steps > 3
    q.close()


def test_the_vacuum_command_converts_an_old_file_and_compacts_it(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # as a queuelab before incremental auto-vacuum made it
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE made_before (x)")
    url = f"sqlite:///{path}"
    with Queue(url, clock=clock) as q:
        finished_jobs(q)
        clock.advance(1)
        q.prune(0)
        old = compaction.usage(q.database)
        assert (old.auto_vacuum, compaction.vacuum_step(q.database)) == (0, 0)  # nothing to hand back with
    assert main(["vacuum", "--db", url]) == 0
    assert "auto_vacuum none" in capsys.readouterr().out
    with Queue(url) as q:
        new = compaction.usage(q.database)
    assert (new.auto_vacuum, new.free_pages) == (compaction.INCREMENTAL, 0)
    assert os.path.getsize(path) <= 2 * new.live_bytes < old.file_bytes


def test_the_vacuum_command_refuses_postgresql(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vacuum", "--db", postgres_url]) == 2
    assert "SQLite" in capsys.readouterr().err


def test_a_file_with_tables_is_opened_while_another_connection_holds_the_write_lock(sqlite_url: str) -> None:
    """Incremental auto-vacuum is asked for on empty files only: on one with tables the
    pragma would wait for the write lock (a caller's open transaction: issue 20's first
    version of this change hung `submit(connection=...)` for the busy timeout)."""
    q = Queue(sqlite_url, sqlite_busy_timeout_seconds=0.5)
    q.open()
    q.database.engine.dispose()  # the read below opens a new connection
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:  # a new connection reads beside the held lock
        assert compaction.usage(q.database).auto_vacuum == compaction.INCREMENTAL
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        q.close()


def test_the_churn_bench_prunes_and_vacuums_in_every_window_however_fast_it_runs(tmp_path: Path) -> None:
    """A window that ends before PRUNE_EVERY_SECONDS (a --quick run on a fast machine) still
    prunes once: its longest vacuum step was 0, a step never taken, which the quick bench's
    check of positive figures refused."""
    with Queue(f"sqlite:///{tmp_path / 'churn.db'}") as q:
        windows = push(q, 200, windows=2)
    assert [window.vacuums > 0 for window in windows] == [True, True]
