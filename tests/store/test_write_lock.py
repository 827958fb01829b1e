"""SQLite's side lock (queuelab/store/write_lock.py): queuelab's writers in several processes
queue for the write lock on a ``flock`` beside the file. It is held for exactly a write
transaction, a crashed holder cannot keep it, and a writer outside it (SQLite's lock taken
by another tool) holds nobody up on the side lock: the waiter steps aside and gets the busy
timeout's error, as before."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from queuelab import Queue, StoreError
from queuelab.store.schema import jobs
from queuelab.store.write_lock import SUFFIX
from tests.support.helpers import wait_until


def side_lock_free(db_path: Path) -> bool:
    """Whether another open file (another process would have one) could take the side lock
    now; takes it and lets go at once if so."""
    fd = os.open(f"{db_path}{SUFFIX}", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the lock if it was taken
    return True


def stored(q: Queue) -> int:
    with q.database.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one())


def test_the_side_lock_is_held_for_a_write_transaction_and_free_after_it(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with Queue(f"sqlite:///{path}") as q:
        assert side_lock_free(path)
        with q.database.write() as conn:
            conn.execute(sa.text("SELECT 1"))
            assert not side_lock_free(path)
        assert side_lock_free(path)
        with q.database.read() as conn:  # readers take neither lock (WAL)
            conn.execute(sa.text("SELECT 1"))
            assert side_lock_free(path)
        q.submit("simulate")
        assert side_lock_free(path)


HOLD_AND_DIE = """
import sys, time
from queuelab import Queue
q = Queue(sys.argv[1])
with q.database.write():
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_leaves_neither_lock_held(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    with Queue(url) as q:
        q.submit("simulate")
        with subprocess.Popen([sys.executable, "-c", HOLD_AND_DIE, url], stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "holding"
            assert not side_lock_free(path)
            proc.kill()
            proc.wait(30)
        q.submit("simulate")  # neither the side lock nor SQLite's outlives the process
        assert stored(q) == 2


FORK_HOLD_AND_DIE = """
import os, signal, sys, time
from queuelab import Queue
q = Queue(sys.argv[1])
with q.database.write():
    child = os.fork()
    if child == 0:  # a forked worker of some server: never writes, outlives its parent
        # fork() has run the at-fork handlers (write_lock's among them) when it returns here:
        # the child says so, and the test looks only after (on a busy machine the parent could
        # die before the child first ran, its copy of the side file still open)
        print(os.getpid(), flush=True)
        time.sleep(600)
        os._exit(0)
    os.kill(os.getpid(), signal.SIGKILL)  # the parent dies holding the lock
"""


def test_a_forked_child_does_not_keep_its_dead_parents_side_lock(tmp_path: Path) -> None:
    """A ``flock`` belongs to the open file, which a forked child's copy of the descriptor
    shares: the child closes its copy at fork, so the lock dies with its holder."""
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    with Queue(url) as q:
        q.submit("simulate")
        with subprocess.Popen(
            [sys.executable, "-c", FORK_HOLD_AND_DIE, url], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            child = int(proc.stdout.readline())
            try:
                assert proc.wait(30) == -9
                os.kill(child, 0)  # the child lives on
                assert side_lock_free(path)
                q.submit("simulate")
            finally:
                os.kill(child, 9)
        assert stored(q) == 2


HOLD_SQLITE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def sqlite_lock_held_outside(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another tool holds SQLite's write lock (not the side lock) until the block ends."""
    command = [sys.executable, "-c", HOLD_SQLITE, str(path)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert proc.stdout.readline().strip() == "locked"
        try:
            yield proc
        finally:
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(30)


def test_a_writer_outside_the_side_lock_costs_the_busy_timeout_and_holds_nobody_up(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with Queue(f"sqlite:///{path}", sqlite_busy_timeout_seconds=5) as q:
        q.submit("simulate")
        outcome: list[BaseException | None] = []

        def submit() -> None:
            try:
                q.submit("simulate", user_id="late")
                outcome.append(None)
            except StoreError as exc:
                outcome.append(exc)

        with sqlite_lock_held_outside(path):
            waiter = threading.Thread(target=submit)
            waiter.start()
            # The waiter found SQLite's lock taken and let go of the side lock: queuelab
            # writers of other processes wait for SQLite's lock beside it, not behind it.
            wait_until(lambda: waiter.is_alive() and side_lock_free(path), timeout=30, what="the side lock let go")
        waiter.join(30)
        assert outcome == [None]  # it went on waiting for SQLite's lock, and got it
        assert stored(q) == 2
        with sqlite_lock_held_outside(path), pytest.raises(StoreError, match="locked"):
            Queue(f"sqlite:///{path}", sqlite_busy_timeout_seconds=0.2).submit("simulate", user_id="refused")
        assert stored(q) == 2


PRODUCE = """
import sys
from queuelab import Queue
with Queue(sys.argv[1]) as q:
    for i in range(int(sys.argv[2])):
        q.submit("simulate", user_id=sys.argv[3], idempotency_key=f"{sys.argv[3]}-{i % 7}" if i % 3 == 0 else None)
"""


@pytest.mark.slow
def test_producer_processes_queued_on_the_side_lock_store_every_job_once(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    with Queue(url) as q:
        q.submit("simulate", user_id="warm")
        procs = [subprocess.Popen([sys.executable, "-c", PRODUCE, url, "150", f"p{i}"]) for i in range(4)]
        assert [proc.wait(120) for proc in procs] == [0, 0, 0, 0]
        with q.database.read() as conn:
            keys = conn.execute(sa.select(sa.func.count()).where(jobs.c.idempotency_key.is_not(None))).scalar_one()
        assert keys == 4 * 7  # one job per key, though each key was submitted 7 or 8 times
        assert stored(q) == 1 + 4 * (100 + 7)  # the 100 unkeyed of each producer, once each
