"""SQLite: queuelab's writers queue for the write lock in the kernel, not in a retry loop.

SQLite has no queue for its write lock: a writer that finds it taken gets SQLITE_BUSY and
must try again (database.py's ``_begin_immediate_fast``: short random sleeps). With several
processes on few cores, the tries cost the holder CPU, a waiter sleeps past the moment the
lock came free, and whoever tries next wins, not whoever waited longest. Measured on 2
cores, 4 processes submitting one job per call: 0.3-0.8 failed tries per job, each process
in the retry loop for about 40 % of the run, 1.4-2x the CPU per job of one caller.

So every queuelab write transaction on a SQLite file first takes an exclusive ``flock`` on a
side file beside it (``<database>-queuelab-lock``), in the kernel, which wakes a waiter when
the holder lets go; the holder then finds SQLite's own lock free at its first try. Threads of
one process queue on a Python lock first, so one thread per process waits in the kernel.

What the side lock is not:

- It is not what keeps the database safe: SQLite's lock still does that, and every write
  still takes it. Readers take neither (WAL).
- It does not wait for writers outside it (another tool, an application's transaction with a
  job enlisted in it, a queuelab older than this lock): if SQLite's lock is taken when the
  side lock is held, the writer lets go of the side lock, so queuelab writers queued behind
  it are not held up, and waits for SQLite's lock as before, for the busy timeout
  (:meth:`WriteLock.step_aside`).
- A crash cannot leave it held: the kernel drops a dead process's ``flock``.

The wait for the side lock has no timeout, as the wait on the Python lock between threads
never had: its holder is a queuelab write transaction, which ends (or fails after its own
busy timeout). A process stopped in the middle of one (a debugger, ``SIGSTOP``) holds up the
other processes' writes until it goes on, as it held up its own threads' before.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import weakref
from types import TracebackType

log = logging.getLogger("queuelab.store")

SUFFIX = "-queuelab-lock"


class WriteLock:
    """The write lock of one SQLite file for this process: a Python lock for its threads,
    then the side file's ``flock`` for the processes. A context manager."""

    def __init__(self, database_path: str) -> None:
        self.path = os.path.abspath(database_path) + SUFFIX
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0  # the process that opened (or failed to open) _fd: a forked child opens its own
        self._holder: int | None = None  # the thread holding the side lock, if any
        _LIVE.add(self)

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # queues in the kernel; a dead holder's lock is dropped
                self._holder = threading.get_ident()
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.step_aside()
        finally:
            self._threads.release()

    def holds(self) -> bool:
        """True in the thread that holds the side lock now."""
        return self._holder is not None and self._holder == threading.get_ident()

    def step_aside(self) -> None:
        """Let go of the side lock (the Python lock stays held): the caller found SQLite's
        lock taken by a writer outside queuelab's lock and will wait for it alone."""
        if self._holder is None:
            return
        self._holder = None
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def _file(self) -> int | None:
        """The side file, opened once per process (a ``flock`` belongs to an open file, so
        a forked child must not share its parent's); None where it cannot be opened (a
        read-only folder): then writers wait for SQLite's lock alone, as before."""
        if self._pid == os.getpid():
            return self._fd
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            log.debug("no side lock %s (%s): writers retry for SQLite's lock", self.path, exc)
            self._fd = None
        self._pid = os.getpid()
        return self._fd

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's side file and locks. A ``flock`` belongs to
        the open file, which the child's copy of the descriptor shares: kept open, it would
        keep the lock held after the parent died holding it, for as long as the child lives
        (a web server's forked workers, say). The thread lock may have been held by a
        parent thread that does not exist here."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._pid, self._holder = None, 0, None
        self._threads = threading.Lock()


_LIVE: weakref.WeakSet[WriteLock] = weakref.WeakSet()


def _forget_parents_locks() -> None:
    for lock in list(_LIVE):
        lock._after_fork()


os.register_at_fork(after_in_child=_forget_parents_locks)
