"""SQLite: the WAL's checkpoints, off the commit path.

A WAL file grows with every commit until a checkpoint copies its pages back into the
database file. SQLite's own default runs one inside the commit that takes the WAL past 1,000
pages: that commit then copies them and syncs both files before it returns, holding the write
lock throughout, so every other writer (a submit, a worker's turn) waits behind it. A
queuelab submit writes 7 pages, so every 120th to 140th submit took 3-6 ms instead of 0.2,
and stalled the writers queued behind it (measured: 20,000 single submits, 164 over 1 ms,
p99.9 4.8 ms).

So queuelab's connections turn that off (``PRAGMA wal_autocheckpoint=0``: database.py) and
each process that writes runs :class:`Checkpointer`, a background loop that checkpoints on
its own connection after every ``CHECKPOINT_WRITES`` write transactions of this process, and
otherwise ``IDLE_SECONDS`` after a write. Its checkpoints are ``PASSIVE``: they never wait
for a lock (the busy timeout is 0; where another process's checkpoint is under way they do
nothing, and the next catches up), and they hold no write lock: writers go on appending to
the WAL while one copies.

Such a checkpoint, under a steady stream of writes, never ends between two of them, and the
WAL is started again from its beginning only by a writer that finds it wholly copied. So once
the WAL holds ``RESET_FRAMES`` frames, the checkpoint copies the last ones while holding
queuelab's write lock (write_lock.py): no queuelab writer appends meanwhile, the copy is
complete (unless a reader still needs an older snapshot), and the next writer starts the WAL
again (syncing its header, as SQLite does with its own checkpoints). Without that step the
WAL grew without bound, and its look-ups with it (a single submit's median 0.16 -> 0.28 ms
over 20,000); with it, on every write, a checkpoint held the write lock for about 1 ms and
the next writer synced: a stall for every 64 writes, not every 600.

Measured, 20,000 single submits from one thread: SQLite's own checkpoints p99 0.60 ms,
p99.9 4.8, 164 over 1 ms; these p99 0.57, p99.9 2.7, 69 over 1 ms, the WAL at most 2,000
frames (8 MiB) against 1,000.

What a crash costs is unchanged: the WAL is the durable record either way (``synchronous``
decides when it is synced), and a checkpoint that dies half way is redone from the WAL.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse
import weakref
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from queuelab.looper import Looper

_PASSIVE = "PRAGMA wal_checkpoint(PASSIVE)"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one checkpoint did, as ``PRAGMA wal_checkpoint`` reports it."""

    busy: int  # 1: another connection's checkpoint was under way, and this one did nothing
    wal_frames: int  # frames in the WAL
    copied: int  # of them, copied into the database file (by this or an earlier checkpoint)
    whole: bool = False  # the last frames were copied holding the write lock


CHECKPOINT_WRITES = 64  # write transactions between checkpoints: ~450 pages of single submits
IDLE_SECONDS = 0.25  # the longest a write waits for its checkpoint when fewer follow it
RESET_FRAMES = 2000  # a WAL this long (8 MiB of 4 KiB pages) is copied whole and started again


class Checkpointer(Looper):
    """Passive WAL checkpoints of one SQLite file, in a thread started by the process's
    first write (a process that only reads starts none). :meth:`wrote` counts a committed
    write transaction; :meth:`checkpoint` runs one now (the loop's tick, and tests')."""

    def __init__(
        self,
        path: str,
        write_lock: AbstractContextManager[Any],
        *,
        every_writes: int = CHECKPOINT_WRITES,
        every: float = IDLE_SECONDS,
        reset_frames: int = RESET_FRAMES,
        synchronous: str = "NORMAL",
    ) -> None:
        super().__init__("queuelab-checkpoint", every=every)
        self.path = path
        self.write_lock = write_lock
        self.reset_frames = reset_frames
        self.synchronous = synchronous  # the file's setting: a checkpoint syncs as its writers would
        self.every_writes = every_writes
        self.done = 0  # checkpoints run by this process
        # Write transactions since the last checkpoint. A count across threads without a
        # lock: an increment lost in a race only delays a checkpoint by one write.
        self._writes = 0
        self._conn: sqlite3.Connection | None = None
        # Held while a checkpoint runs, and by this process's own checkpoints and VACUUMs
        # (Database.outside_transaction), which would otherwise find it under way (busy).
        # Taken before the write lock, always.
        self.running = threading.Lock()
        _LIVE.add(self)

    def wrote(self) -> None:
        """One write transaction committed (called by :meth:`Database.write`)."""
        self._writes += 1
        if self._thread is None:
            self.start()
        if self._writes >= self.every_writes:
            self.wake()

    def tick(self, now: float, mono: float) -> None:
        if self._writes:
            self.checkpoint()

    def checkpoint(self) -> Checkpoint:
        """One checkpoint now, beside the writers; if the WAL has grown to ``reset_frames``,
        then its last frames under the write lock, so that the next writer starts it again."""
        self._writes = 0
        with self.running:
            conn = self._connection()
            done = _passive(conn, whole=False)
            if done.wal_frames >= self.reset_frames:
                with self.write_lock:
                    done = _passive(conn, whole=True)
        self.done += 1
        return done

    def close(self) -> None:
        """Stop the loop and close its connection (a write after this starts neither)."""
        self._writes = 0
        self.stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # No transaction control (a PRAGMA only), no busy wait; used by the loop's thread,
            # or by the caller of checkpoint() while no loop runs.
            # mode=rw: a file removed since (a test's folder) is not made again, empty.
            uri = f"file:{urllib.parse.quote(self.path)}?mode=rw"
            conn = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._conn = conn
        return self._conn

    def _after_fork(self) -> None:
        """In a forked child: no loop runs here yet (the parent's thread was not copied), and
        the parent's connection is neither used nor closed (SQLite forbids carrying one
        across a fork); the child's first write starts its own."""
        closed = self.stopping
        self._thread, self._conn, self._writes = None, None, 0
        self._stopping, self._wake, self.running = threading.Event(), threading.Event(), threading.Lock()
        if closed:
            self._stopping.set()


def _passive(conn: sqlite3.Connection, *, whole: bool) -> Checkpoint:
    busy, wal_frames, copied = conn.execute(_PASSIVE).fetchone()
    return Checkpoint(int(busy), int(wal_frames), int(copied), whole)


_LIVE: weakref.WeakSet[Checkpointer] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for checkpointer in list(_LIVE):
        checkpointer._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
