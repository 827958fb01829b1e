"""SQLite under faults: another process holding the write lock for seconds, a file system
gone read-only, a full disk. Each gives a clear error or a wait, never a corrupt file or a
lost job."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from queuelab import JobStatus, Queue, StoreError, Submission
from tests.support.helpers import wait_until

pytestmark = pytest.mark.slow

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


@contextmanager
def hold_write_lock(path: Path, seconds: float) -> Iterator[None]:
    """Another process takes SQLite's write lock and keeps it for ``seconds``."""
    command = [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield
        proc.wait(seconds + 10)


def test_a_writer_holding_the_lock_for_seconds_only_delays_work(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with Queue(f"sqlite:///{path}") as q:
        first = q.submit("simulate")
        with q.worker(2):
            with hold_write_lock(path, 3.0):
                started = time.monotonic()
                late = q.submit("simulate")  # waits for the lock, then commits
                waited = time.monotonic() - started
            wait_until(lambda: q.get(late.id).status == JobStatus.COMPLETED, timeout=30, what="the late job")
        assert waited > 1.0
        assert q.get(first.id).status == JobStatus.COMPLETED


def test_a_short_busy_timeout_fails_clearly_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with Queue(f"sqlite:///{path}", sqlite_busy_timeout_seconds=0.5) as q:
        q.submit("simulate")
        with hold_write_lock(path, 3.0), pytest.raises(StoreError, match=r"locked.*waited 0.5s for the write lock"):
            q.submit("simulate", user_id="refused")
        assert q.stats().by_status["PENDING"] == 1
        q.submit("simulate")  # and it works again once the lock is free
        assert q.stats().by_status["PENDING"] == 2


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs of our own (needs root, as CI has; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_a_full_disk_is_a_clear_error_and_the_file_stays_sound(small_disk: Path) -> None:
    path = small_disk / "q.db"
    big = {"blob": "x" * 50_000}
    stored = 0
    with Queue(f"sqlite:///{path}", max_payload_bytes=100_000) as q:

        def fill() -> None:
            nonlocal stored
            for _ in range(200):
                q.submit_many([Submission(task="simulate", payload=big) for _ in range(5)])
                stored += 5

        with pytest.raises(StoreError, match=r"full.*no space left where the database lives"):
            fill()
        assert stored > 0
        assert q.stats().by_status["PENDING"] == stored  # every committed batch, and none of the failed one
        kept = q.jobs(limit=1)[0]
        assert kept.payload == big
    assert _integrity(path) == "ok"


def test_a_read_only_file_system_is_a_clear_error_and_loses_nothing(small_disk: Path) -> None:
    path = small_disk / "q.db"
    with Queue(f"sqlite:///{path}") as q:
        job = q.submit("simulate", {"duration": 0})
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with Queue(f"sqlite:///{path}") as q:
        actions: list[Callable[[], object]] = [lambda: q.submit("simulate"), lambda: q.get(job.id)]
        for action in actions:
            with pytest.raises(StoreError, match="not writable: SQLite in WAL mode writes the -wal and -shm"):
                action()
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert _integrity(path) == "ok"
    with Queue(f"sqlite:///{path}") as q:
        assert q.get(job.id).status == JobStatus.PENDING  # nothing was lost on the way
