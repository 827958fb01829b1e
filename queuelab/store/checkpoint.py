"""SQLite: the WAL's checkpoints, off the commit path.

A WAL file grows with every commit until a checkpoint copies its pages back into the
database file. SQLite's own default runs one right after the commit that takes the WAL past
1,000 pages, in the committing call: it copies them and syncs both files before the call
returns. SQLite's write lock is free by then, but queuelab's (write_lock.py), taken around
the whole write transaction, is not: every other queuelab writer (a submit, a worker's turn)
waited behind it. A queuelab submit writes 7 pages, so every 120th to 140th submit took 3-6
ms instead of 0.2, and stalled the writers queued behind it (measured: 20,000 single
submits, 164 over 1 ms, p99.9 4.8 ms).

So queuelab's connections leave that to a much longer WAL (``BACKSTOP_FRAMES``: it happens
only where the loop below cannot keep up) and each process that writes runs
:class:`Checkpointer`, a background loop that checkpoints on its own connection after every
``CHECKPOINT_WRITES`` write transactions of this process, ``IDLE_SECONDS`` after a write
when fewer follow, and once more when the process closes its queue. Its checkpoints are
``PASSIVE``: they never wait for a lock (the busy timeout is 0; where another process's
checkpoint is under way they do nothing, and the next catches up), and they hold no write
lock: writers go on appending to the WAL while one copies.

Such a checkpoint, under a steady stream of writes, never ends between two of them, and the
WAL is started again from its beginning only by a writer that finds it wholly copied. So once
the WAL holds ``RESET_FRAMES`` frames, the checkpoint copies the last ones while holding
queuelab's write lock: no queuelab writer appends meanwhile, the copy is complete (unless a
reader still needs an older snapshot), and the next writer starts the WAL again (syncing its
header, as after SQLite's own checkpoints). Without that step the WAL grew without bound,
and its look-ups with it (a single submit's median 0.16 -> 0.28 ms over 20,000); with it on
every checkpoint, each held the write lock for about 1 ms and the next writer synced: a stall
for every 64 writes, not every 600.

Measured, 20,000 single submits from one thread: SQLite's own checkpoints p99 0.60 ms,
p99.9 4.8, 164 over 1 ms; these p99 0.57, p99.9 2.7, 69 over 1 ms, the WAL 2,000 frames
(8 MiB) before it starts again, against 1,000.

What a crash costs is unchanged: the WAL is the durable record either way (``synchronous``
decides when it is synced: at each checkpoint on NORMAL, so a power loss may take the
commits since the last one, as before), and a checkpoint that dies half way is redone from
the WAL. A process that writes and is killed leaves its frames to the next checkpoint of
any process, or to the backstop.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import urllib.parse
import weakref
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from queuelab.looper import Looper

log = logging.getLogger("queuelab.store")

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
BACKSTOP_FRAMES = 10_000  # SQLite's own checkpoint in the commit, where the loop falls behind


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
        self._starting = threading.Lock()
        self._no_thread = False  # a thread could not be started: leave it to the backstop
        # Held while a checkpoint runs, and by this process's own checkpoints and VACUUMs
        # (Database.outside_transaction), which would otherwise find it under way (busy).
        # Taken before the write lock, always.
        self.running = threading.Lock()
        _LIVE.add(self)

    def wrote(self) -> None:
        """One write transaction committed (called by :meth:`Database.write`). Never
        raises: the write is committed, whatever happens to its checkpoint."""
        self._writes += 1
        if self._thread is None:
            self._start()
        if self._writes >= self.every_writes:
            self.wake()

    def _start(self) -> None:
        with self._starting:  # two threads' first writes start one loop
            if self._thread is not None or self._no_thread:
                return
            try:
                self.start()
            except RuntimeError as exc:  # no new threads here (interpreter exit, a thread limit)
                self._thread, self._no_thread = None, True
                log.warning(
                    "no checkpoint thread for %s (%s): SQLite checkpoints past %d frames",
                    self.path,
                    exc,
                    BACKSTOP_FRAMES,
                )

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

    def close(self, *, last_checkpoint: bool = True) -> None:
        """Stop the loop; with ``last_checkpoint``, checkpoint this process's writes since the
        last one (a process that writes briefly and ends would otherwise leave them all to
        the next: many such processes grew the WAL without bound). Not from a finalizer:
        the last checkpoint may wait for the write lock."""
        pending = self._writes > 0
        self.stop()
        if last_checkpoint and pending and not self.alive:
            try:
                self.checkpoint()
            except sqlite3.Error as exc:  # the file is gone, or unwritable: nothing to keep
                log.warning("last checkpoint of %s failed: %s", self.path, exc)
        if self._conn is not None and not self.alive:  # else the loop's tick is still using it
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
        the parent's connection is kept but never used: closed here it could take the
        child for the file's last connection (the parent's locks are not the child's) and
        checkpoint or remove the WAL under the parent. The child's first write starts its
        own loop and connection."""
        if self._conn is not None:
            _INHERITED.append(self._conn)
        closed = self.stopping
        self._thread, self._conn, self._writes, self._no_thread = None, None, 0, False
        self._stopping, self._wake, self.running = threading.Event(), threading.Event(), threading.Lock()
        self._starting = threading.Lock()
        if closed:
            self._stopping.set()


def _passive(conn: sqlite3.Connection, *, whole: bool) -> Checkpoint:
    busy, wal_frames, copied = conn.execute(_PASSIVE).fetchone()
    return Checkpoint(int(busy), int(wal_frames), int(copied), whole)


_INHERITED: list[sqlite3.Connection] = []  # a forked child's copies of its parent's connections
_LIVE: weakref.WeakSet[Checkpointer] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for checkpointer in list(_LIVE):
        checkpointer._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
