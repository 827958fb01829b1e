"""A worker's slot threads: each takes a held job from the inbox, runs it, and asks the
worker what to run next. Growing starts threads at once; shrinking is graceful: an idle
thread takes a retire mark from the inbox, a busy one retires after its job.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from enum import Enum

from queuelab.runtime.held import Entry

_RETIRE = object()  # in the inbox after a shrink: the idle thread that takes it ends


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
        self._inbox: queue.SimpleQueue[Entry | object | None] = queue.SimpleQueue()
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
            for _ in range(max(-change, 0)):
                self._inbox.put(_RETIRE)  # an idle thread takes it; a busy one retires after its job

    def put(self, entry: Entry) -> None:
        self._inbox.put(entry)

    def queued(self) -> int:
        """Jobs (and retire marks) in the inbox, not taken by a thread yet."""
        return self._inbox.qsize()

    def alive(self) -> int:
        """Threads still running."""
        return sum(thread.is_alive() for thread in self._threads)

    def close(self) -> None:
        """Every thread ends when it next looks at the inbox."""
        for _ in self._threads:
            self._inbox.put(None)

    def _retire_one(self) -> bool:
        with self._lock:
            if self._retiring <= 0:
                return False
            self._retiring -= 1
            return True

    def _loop(self) -> None:
        item = self._inbox.get()
        while item is not None:
            if item is _RETIRE:
                if self._retire_one():
                    return
            elif isinstance(item, Entry):
                ran = self._run(item)
                if ran is Ran.END:
                    return
                if ran is Ran.FINISHED:
                    if self._retire_one():
                        self._on_retire()
                        return  # the pool shrank while this job ran
                    mine = self._after(item)
                    if mine is not None:
                        item = mine
                        continue
            item = self._inbox.get()
