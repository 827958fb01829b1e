"""A worker's slot threads: each takes a held job from the inbox, runs it, and asks the
worker what to run next. Growing starts threads at once; shrinking is graceful: an idle
thread takes a retire mark from the inbox, a busy one retires after its job.

The inbox lets at most ``lanes`` threads take jobs at once (see :func:`.turns.lanes`): short
jobs that keep the CPU busy run faster through one thread than through several taking
turns on Python's lock, a thread switch each; jobs that wait (on the network, a disk)
spread over every slot. When no busy thread has come for a job for ``LANE_WAIT_SECONDS``
(a long job in a lane) while jobs wait, any idle thread takes one: a long job never holds up
the jobs behind it for long.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

from queuelab.runtime.held import Entry

_RETIRE = object()  # from the inbox after a shrink: the idle thread that takes it ends
LANE_WAIT_SECONDS = 0.02


class Inbox:
    """The jobs handed to the slot threads, and how many threads take them at once."""

    def __init__(self) -> None:
        self._items: deque[Entry] = deque()
        self._moved = time.monotonic()  # when a thread last came for a job (or ran on to one)
        self._cond = threading.Condition(threading.Lock())
        self._busy = 0  # threads between taking a job and coming back for the next
        self._retire = 0  # retire marks not taken yet
        self._watching = 0  # idle threads waiting for the lanes to move (a timed wait)
        self._closed = False
        self.lanes = 1 << 30  # threads that may take jobs at once (set by the worker)

    def put(self, entry: Entry) -> None:
        with self._cond:
            self._items.append(entry)
            if self._busy < self.lanes or not self._watching:  # (else a watcher is due anyway)
                self._cond.notify()

    def retire(self, n: int) -> None:
        with self._cond:
            self._retire += n
            self._cond.notify(n)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)

    def leave(self) -> None:
        """A busy thread ends (retired, or its job abandoned): its lane is free."""
        with self._cond:
            self._busy -= 1
            if self._items:
                self._cond.notify()

    def moved(self) -> None:
        """A busy thread ran on to its next job without the inbox (its own turn claimed it)."""
        self._moved = time.monotonic()

    def take(self, was_busy: bool) -> Entry | object | None:
        """The next job for the calling thread (``was_busy``: it has just run one, and its
        lane is free again), a retire mark, or None once closed. Waits while the lanes are
        full, or for a job."""
        with self._cond:
            if was_busy:
                self._busy -= 1
            while True:
                if self._closed:
                    return None
                if self._retire:
                    self._retire -= 1
                    return _RETIRE
                if self._items:
                    now = time.monotonic()
                    # A thread that has just run a job runs on in its lane if the lane is still
                    # there: more threads busy than lanes (a stall let one in, or the lanes
                    # shrank) and it steps out, so that short jobs go back to fewer threads.
                    if self._busy < self.lanes or now - self._moved >= LANE_WAIT_SECONDS:
                        self._busy += 1
                        self._moved = now
                        if len(self._items) > 1 and (self._busy < self.lanes or not self._watching):
                            self._cond.notify()  # more jobs: to a free lane, or to watch the full ones
                        return self._items.popleft()
                    self._watching += 1
                    self._cond.wait(LANE_WAIT_SECONDS - (now - self._moved))
                    self._watching -= 1
                else:
                    self._cond.wait()


class Ran(Enum):
    """What running one job means for the slot thread that ran it."""

    FINISHED = "finished"  # its outcome is recorded: carry on
    SKIPPED = "skipped"  # it was not run (dropped): take the next
    END = "end"  # stopping, or abandoned after a timeout (a fresh thread took the slot)


class Slots:
    def __init__(
        self,
        run: Callable[[Entry], Ran],
        after: Callable[[Entry], Entry | None],
        on_retire: Callable[[], None],
    ) -> None:
        """``run`` runs one job; ``after`` a finished one returns the job to run next, or None
        (take it from the inbox); ``on_retire`` is called when a busy thread retires."""
        self._run, self._after, self._on_retire = run, after, on_retire
        self._inbox = Inbox()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # resize against start
        self._retiring = 0  # threads asked to end after a shrink, not yet ended
        self.started = False

    def start(self, n: int) -> None:
        with self._lock:
            self.started = True
            for _ in range(n):
                self.add()

    def add(self) -> None:
        """One more thread (growing, or in place of one abandoned with its job)."""
        thread = threading.Thread(target=self._loop, name=f"queuelab-slot-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def resize(self, change: int) -> None:
        """Start ``change`` threads, or retire ``-change`` (a no-op before :meth:`start`)."""
        with self._lock:
            if not self.started:
                return
            kept = min(self._retiring, max(change, 0))  # threads about to retire stay instead
            self._retiring += max(-change, 0) - kept
            for _ in range(max(change, 0) - kept):
                self.add()
            self._inbox.retire(max(-change, 0))  # an idle thread takes it; a busy one retires after its job

    def put(self, entry: Entry) -> None:
        self._inbox.put(entry)

    def queued(self) -> int:
        """Jobs in the inbox, not taken by a thread yet."""
        return len(self._inbox)

    def set_lanes(self, n: int) -> None:
        """Let at most ``n`` threads take jobs at once (see :func:`.turns.lanes`)."""
        self._inbox.lanes = n

    def alive(self) -> int:
        """Threads still running."""
        return sum(thread.is_alive() for thread in self._threads)

    def close(self) -> None:
        """Every thread ends when it next looks at the inbox."""
        self._inbox.close()

    def _retire_one(self) -> bool:
        with self._lock:
            if self._retiring <= 0:
                return False
            self._retiring -= 1
            return True

    def _loop(self) -> None:
        item = self._inbox.take(False)
        while item is not None:
            if item is _RETIRE:
                if self._retire_one():
                    return
            elif isinstance(item, Entry):
                ran = self._run(item)
                if ran is Ran.END:
                    self._inbox.leave()
                    return
                if ran is Ran.FINISHED:
                    if self._retire_one():
                        self._inbox.leave()
                        self._on_retire()
                        return  # the pool shrank while this job ran
                    mine = self._after(item)
                    if mine is not None:
                        self._inbox.moved()
                        item = mine
                        continue
            item = self._inbox.take(isinstance(item, Entry))
