"""SQLite's WAL checkpoints off the commit path (queuelab/store/checkpoint.py): queuelab's
connections never checkpoint inside a commit; a background loop of each writing process
copies the WAL beside the writers, and once the WAL is long, copies its last frames under
the write lock so that the next writer starts it again. Checkpoints are called directly
here (``Checkpointer.checkpoint``); the loop is only checked to start, run and stop."""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from queuelab import Queue
from queuelab.store.checkpoint import BACKSTOP_FRAMES, RESET_FRAMES, Checkpointer
from queuelab.testing import internals
from tests.support.helpers import wait_until


class CountingLock:
    """A write lock that counts how often it was held."""

    def __init__(self) -> None:
        self.held = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()
        self.held += 1

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


@contextmanager
def wal_file(tmp_path: Path) -> Iterator[tuple[str, sqlite3.Connection]]:
    """A WAL-mode file and a writer connection that never checkpoints by itself."""
    path = str(tmp_path / "wal.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (x TEXT)")
    try:
        yield path, writer
    finally:
        writer.close()


@contextmanager
def checkpointer_of(path: str, lock: CountingLock, *, reset_frames: int) -> Iterator[Checkpointer]:
    """A Checkpointer whose loop never starts (its checkpoints are called directly)."""
    checkpointer = Checkpointer(path, lock, reset_frames=reset_frames)
    try:
        yield checkpointer
    finally:
        checkpointer.close(last_checkpoint=False)


def write(conn: sqlite3.Connection, transactions: int) -> None:
    for _ in range(transactions):
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 3000,))  # most of a page each


def test_queuelab_connections_leave_checkpoints_to_the_loop(sqlite_url: str) -> None:
    with Queue(sqlite_url) as q:
        db = internals(q).db
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_FRAMES
        with db.write() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_FRAMES


def test_a_checkpoint_copies_the_wal_without_the_write_lock(tmp_path: Path) -> None:
    with wal_file(tmp_path) as (path, writer):
        write(writer, 20)
        lock = CountingLock()
        with checkpointer_of(path, lock, reset_frames=10_000) as checkpointer:
            done = checkpointer.checkpoint()
    assert (done.busy, done.whole) == (0, False)
    assert done.copied == done.wal_frames >= 20
    assert lock.held == 0


def test_a_long_wal_is_copied_whole_under_the_write_lock_and_started_again(tmp_path: Path) -> None:
    with wal_file(tmp_path) as (path, writer):
        write(writer, 40)
        lock = CountingLock()
        with checkpointer_of(path, lock, reset_frames=30) as checkpointer:
            long = checkpointer.checkpoint()
            write(writer, 1)  # the next writer starts the WAL from its beginning
            after = checkpointer.checkpoint()
    assert long.whole
    assert long.copied == long.wal_frames >= 40
    assert lock.held == 1
    assert not after.whole
    assert 1 <= after.wal_frames < 5  # one transaction's frames, not 41 and more


def test_writes_start_the_loop_which_checkpoints_and_stops_with_the_queue(sqlite_url: str) -> None:
    q = Queue(sqlite_url)
    db = internals(q).db
    checkpointer = db._checkpointer
    assert checkpointer is not None
    for _ in range(checkpointer.every_writes):
        q.submit("simulate")
    assert checkpointer.alive
    wait_until(lambda: checkpointer.done >= 1, timeout=60, what="a background checkpoint")
    q.close()
    assert not checkpointer.alive


def test_a_process_that_only_reads_starts_no_loop(sqlite_url: str) -> None:
    with Queue(sqlite_url) as q:  # makes the schema: a write
        q.submit("simulate")
    with Queue(sqlite_url) as q:
        q.stats()
        checkpointer = internals(q).db._checkpointer
        assert checkpointer is not None
        assert not checkpointer.alive


def test_a_vacuum_holds_off_the_loops_checkpoint(sqlite_url: str) -> None:
    """A checkpoint of one's own (compaction's) holds the lock the loop's checkpoint takes
    first, which would otherwise make it find the WAL busy."""
    with Queue(sqlite_url) as q:
        db = internals(q).db
        checkpointer = db._checkpointer
        assert checkpointer is not None
        q.submit("simulate")
        checkpointer.stop()  # no tick of the loop's own in what follows
        with db.outside_transaction() as raw:
            assert not checkpointer.running.acquire(blocking=False)
            assert raw.execute("PRAGMA wal_checkpoint(FULL)").fetchone()[0] == 0
        assert checkpointer.running.acquire(blocking=False)
        checkpointer.running.release()


def test_closing_a_queue_checkpoints_its_writes(sqlite_url: str) -> None:
    """Processes that each write a little and close (a script, a CLI command) left all their
    frames to the next checkpoint, and the WAL grew without bound beside a connection that
    kept the file open. Each close now checkpoints, and restarts a long WAL."""
    path = sqlite_url.removeprefix("sqlite:///")
    with Queue(sqlite_url) as q:  # the schema
        q.submit("simulate")
    keeper = sqlite3.connect(path)  # keeps SQLite from removing the WAL at the last close
    keeper.execute("SELECT count(*) FROM queuelab_jobs").fetchone()
    try:
        for _ in range(40):
            with Queue(sqlite_url) as q:
                for _ in range(40):  # 280 frames a queue: 11,200 in all
                    q.submit("simulate")
        wal = os.path.getsize(f"{path}-wal")
    finally:
        keeper.close()
    assert wal <= (RESET_FRAMES + 600) * (4096 + 24)


def test_a_write_is_not_failed_by_a_loop_that_cannot_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Checkpointer) -> Checkpointer:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(Checkpointer, "start", refuse)
    with wal_file(tmp_path) as (path, writer):
        checkpointer = Checkpointer(path, CountingLock())
        write(writer, 3)
        checkpointer.wrote()  # logged, not raised: the write it follows is committed
        checkpointer.wrote()  # and not tried again
        assert not checkpointer.alive
        checkpointer.close()  # nothing to join
    assert checkpointer.done == 1  # the last checkpoint ran all the same


def test_a_queue_dropped_unclosed_stops_its_loop(sqlite_url: str) -> None:
    q = Queue(sqlite_url)
    q.submit("simulate")
    checkpointer = internals(q).db._checkpointer
    assert checkpointer is not None
    assert checkpointer.alive
    del q
    gc.collect()  # the finalizer stops the loop (waiting out a checkpoint under way, if any)
    wait_until(lambda: not checkpointer.alive, timeout=60, what="the loop of a dropped queue to stop")


FORK_AND_WRITE = """
import os, sys
from queuelab import Queue
from queuelab.testing import internals
q = Queue(sys.argv[1])
q.submit("simulate")  # the parent's loop runs
child = os.fork()
if child == 0:
    checkpointer = internals(q).db._checkpointer
    fresh = not checkpointer.alive and checkpointer._thread is None
    q.submit("simulate")  # the child's first write starts its own loop
    started = checkpointer.alive
    checkpointer.checkpoint()
    os._exit(0 if fresh and started else 3)
_, status = os.waitpid(child, 0)
print(os.waitstatus_to_exitcode(status), flush=True)
q.close()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_child_runs_its_own_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    out = subprocess.run([sys.executable, "-c", FORK_AND_WRITE, url], capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout.strip()) == (0, "0"), out.stderr
    assert os.path.exists(tmp_path / "q.db")


def test_a_checkpoint_of_a_removed_file_does_not_make_it_again(tmp_path: Path) -> None:
    checkpointer = Checkpointer(str(tmp_path / "gone.db"), CountingLock())
    with pytest.raises(sqlite3.OperationalError):
        checkpointer.checkpoint()
    assert not (tmp_path / "gone.db").exists()
