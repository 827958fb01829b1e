"""An idle SQLite worker's wait (store/wakeup.py): a commit by another process ends it at
once where inotify can watch the database's folder, and a poke ends it everywhere. The
reads of data_version are pushed out of reach (600 s), so a wait can only end before its
timeout by the event under test: no bound here is one a slow machine could miss."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from queuelab import Queue
from queuelab.store import wakeup
from queuelab.store.file_events import watch_writes
from queuelab.store.wakeup import SqlitePolls, SqliteWakeup

TIMEOUT = 30.0  # a wait that ran to this was not woken


@pytest.fixture
def no_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wakeup, "SQLITE_POLL_SECONDS", 600.0)
    monkeypatch.setattr(wakeup, "SQLITE_IDLE_POLL_SECONDS", 600.0)


def _database(tmp_path: Path) -> str:
    path = tmp_path / "q.db"
    Queue(f"sqlite:///{path}").close()  # the schema: later commits are only the submit's
    return str(path)


def _waited(wake: SqliteWakeup, timeout: float = TIMEOUT) -> float:
    started = time.monotonic()
    wake.wait(timeout)
    return time.monotonic() - started


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_a_commit_by_another_process_ends_the_wait_without_a_read_on_schedule(tmp_path: Path, no_reads: None) -> None:
    path = _database(tmp_path)
    assert watch_writes(str(tmp_path), ["q.db-wal"]) is not None
    wake = SqliteWakeup(path)
    try:
        wake.watch()
        code = f"from queuelab import Queue\nwith Queue('sqlite:///{path}') as q: q.submit('simulate')"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
        assert _waited(wake) < TIMEOUT
    finally:
        wake.close()
    with Queue(f"sqlite:///{path}") as q:
        assert q.status_counts("default").get("PENDING") == 1


def test_a_poke_ends_the_wait_and_mark_forgets_it(tmp_path: Path, no_reads: None) -> None:
    wake = SqliteWakeup(_database(tmp_path))
    try:
        wake.watch()
        wake.poke()
        assert _waited(wake) < TIMEOUT
        wake.poke()
        wake.mark()  # forgotten: the next wait runs to its timeout (nothing is written meanwhile)
        assert _waited(wake, 0.05) >= 0.05
    finally:
        wake.close()
    wake.poke()  # after close: nothing to wake, and no error


def test_a_poke_from_another_thread_ends_a_wait_under_way(tmp_path: Path, no_reads: None) -> None:
    """Whether the poke comes before the wait has begun or while it blocks on the WAL watch."""
    wake = SqliteWakeup(_database(tmp_path))
    waited: list[float] = []
    try:
        wake.watch()
        waiter = threading.Thread(target=lambda: waited.append(_waited(wake)))
        waiter.start()
        wake.poke()
        waiter.join(2 * TIMEOUT)
        assert len(waited) == 1
        assert waited[0] < TIMEOUT
    finally:
        wake.close()


def test_without_inotify_the_wait_reads_on_its_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Elsewhere than Linux (or with no inotify instance left) the commit is seen by the
    next read of data_version, as before."""
    monkeypatch.setattr(wakeup, "watch_writes", lambda folder, names: None)
    path = _database(tmp_path)
    wake = SqliteWakeup(path)
    try:
        wake.watch()
        with Queue(f"sqlite:///{path}") as q:
            q.submit("simulate")
        assert _waited(wake) < TIMEOUT  # the first read (1 ms into the wait) sees the commit
    finally:
        wake.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_the_watch_tells_a_write_to_the_wal_from_one_to_another_file_in_the_folder(tmp_path: Path) -> None:
    """So that a busy neighbour (a log file beside the database) costs an idle worker a
    drain, not the quick reads that follow a commit."""
    writes = watch_writes(str(tmp_path), ["q.db-wal"])
    assert writes is not None
    try:
        assert writes.drain() is False  # nothing yet
        (tmp_path / "app.log").write_text("a line\n")
        assert writes.drain() is False
        (tmp_path / "q.db-wal").write_bytes(b"frames")
        (tmp_path / "app.log").write_text("another\n")
        assert writes.drain() is True
        assert writes.drain() is False  # drained
    finally:
        writes.close()


def test_the_read_schedule_fast_then_idle_and_quick_reads_after_a_write() -> None:
    """SqlitePolls, stepped with explicit times: the schedule an idle worker's wait and the
    completions thread share."""
    polls = SqlitePolls(since=100.0)
    assert polls.step(100.0) == wakeup.SQLITE_POLL_SECONDS
    assert polls.step(100.0 + wakeup.SQLITE_FAST_POLL_FOR_SECONDS) == wakeup.SQLITE_IDLE_POLL_SECONDS
    polls.wal_written()
    quick = [polls.step(101.0) for _ in range(wakeup.SQLITE_AFTER_WRITE_READS)]
    assert quick == [wakeup.SQLITE_AFTER_WRITE_SECONDS] * wakeup.SQLITE_AFTER_WRITE_READS
    assert polls.step(101.0) == wakeup.SQLITE_IDLE_POLL_SECONDS  # then back on schedule
    polls.wal_written()
    polls.step(101.0)
    polls.moved()  # the commit showed: no more quick reads
    assert polls.step(100.1) == wakeup.SQLITE_POLL_SECONDS
