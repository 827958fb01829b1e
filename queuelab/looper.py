"""One shape for every background loop: a thread that calls ``tick(now, mono)`` every
``interval()`` seconds until ``stop()``.

A loop's work is its :meth:`Looper.tick`, a plain method that takes the time as arguments
(``now``: epoch seconds from the injected clock; ``mono``: :func:`time.monotonic`), so tests
call it with fixed times and no thread. The thread around it is this class, the same for
every loop: one start, one stop, one wake-up, one error policy. A tick that raises is
logged (a :class:`~queuelab.errors.StoreError` in one line, anything else with its
traceback) and the loop goes on: a background loop that dies silently (leases no longer
heartbeated, a pool no longer scaled) is worse than one that keeps trying.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Self

from queuelab.clock import Clock, SystemClock
from queuelab.errors import StoreError

log = logging.getLogger("queuelab.looper")


class Looper:
    """Subclass and override :meth:`tick` (and :meth:`interval` for a cadence other
    than ``every``). ``name`` names the thread and the log lines."""

    def __init__(self, name: str, *, every: float = 1.0, clock: Clock | None = None) -> None:
        self.name = name
        self.every = every
        self.clock: Clock = clock or SystemClock()
        self.errors = 0  # ticks that raised, for tests and status pages
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float, mono: float) -> None:
        """One round of the loop's work."""
        raise NotImplementedError

    def interval(self) -> float:
        """Seconds from the end of one tick to the start of the next."""
        return self.every

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        if self._thread is not None:  # started already: one thread per loop
            return self
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Tick now rather than at the end of the current interval. Cheap when the loop has
        a wake-up it has not seen yet (Event.set notifies under a lock each time; a SQLite
        writer calls this after each commit until the checkpoint thread has run)."""
        if not self._wake.is_set():
            self._wake.set()

    def stop(self, timeout: float | None = 5.0) -> None:
        """End the loop after the tick under way (if any); wait up to ``timeout`` for it.
        Safe to call from the loop's own tick, and more than once."""
        self._stopping.set()
        self.wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s did not stop within %gs", self.name, timeout)

    def run_tick(self) -> None:
        """One tick now, with the real times, under the error policy (the thread's body)."""
        try:
            self.tick(self.clock.now(), time.monotonic())
        except StoreError as exc:
            self.errors += 1
            log.error("%s: tick failed, will retry: %s", self.name, exc)
        except Exception:
            self.errors += 1
            log.exception("%s: tick failed unexpectedly, will retry", self.name)

    def pause(self, seconds: float) -> None:
        """The thread's wait between ticks; ended early by :meth:`wake` (and so by :meth:`stop`).
        A subclass that waits on something more overrides both."""
        self._wake.wait(seconds)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.pause(max(0.0, self.interval()))
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.run_tick()
