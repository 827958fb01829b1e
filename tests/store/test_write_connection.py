"""SQLite: a process keeps one connection for its write transactions (Database._writing),
under the write lock, instead of a pool checkout and check-in per transaction. What must
hold: one connection is out of the pool between writes, whichever thread writes; a write
that fails is rolled back and its connection handed back; a forked child writes on a
connection of its own; closing the queue hands it back."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from queuelab import Queue
from queuelab.store.schema import jobs


def count(q: Queue) -> int:
    with q.database.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one())


def driver_connection(q: Queue) -> object:
    with q.database.write() as conn:
        return conn.connection.driver_connection


def test_writes_from_several_threads_share_one_connection_kept_out_of_the_pool(tmp_path: Path) -> None:
    q = Queue(f"sqlite:///{tmp_path / 'q.db'}")
    first = driver_connection(q)
    seen: list[object] = []

    def write() -> None:
        for _ in range(20):
            q.submit("simulate")
            seen.append(driver_connection(q))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {id(conn) for conn in seen} == {id(first)}
    assert count(q) == 80
    assert q.database.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    q.close()
    assert q.database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def delete_all_then_fail(q: Queue) -> None:
    with q.database.write() as conn:
        conn.execute(sa.delete(jobs))
        raise RuntimeError("the caller's own error, after a write")


def test_a_failed_write_is_rolled_back_and_the_next_write_works(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        q.submit("simulate")
        with pytest.raises(RuntimeError, match="the caller's own error"):
            delete_all_then_fail(q)

        assert q.database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert count(q) == 1
        q.submit("simulate")
        assert count(q) == 2


FORK_AND_WRITE = """
import os, sys
from queuelab import Queue
q = Queue(sys.argv[1])
q.submit("simulate")  # the parent's write connection is taken
child = os.fork()
if child == 0:
    q.submit("simulate")  # on a connection of the child's own
    os._exit(0)
_, status = os.waitpid(child, 0)
q.submit("simulate")
print(os.waitstatus_to_exitcode(status), flush=True)
"""


def test_a_forked_child_writes_on_its_own_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    done = subprocess.run([sys.executable, "-c", FORK_AND_WRITE, url], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    with Queue(url) as q:
        assert count(q) == 3
