"""Keeping a process pool's children alive: restart one that dies, and back off while they
keep dying soon after they start (the database is down, say), so a crash loop does not eat
the machine.

The supervisor knows nothing of workers: it is given ``spawn``, a function that starts one
child and returns it, and keeps a list of slots, each holding a child or waiting out the
back-off to start one. Its :meth:`Supervisor.tick` takes the monotonic time, so the back-off
is tested with the times the test chooses.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from queuelab.looper import Looper

log = logging.getLogger("queuelab.pool")

QUICK_DEATH_SECONDS = 5.0  # a child that dies sooner than this after its start counts toward the back-off
FIRST_RESTART_DELAY = 0.5  # after the first quick death; doubled for each further one in a row
MAX_RESTART_DELAY = 30.0
CHECK_SECONDS = 0.2  # how often the supervisor looks for dead children


class Child(Protocol):
    """What the supervisor needs of a child process (a :class:`multiprocessing.Process`)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


def restart_delay(quick_deaths: int) -> float:
    """Seconds to wait before starting a child again after ``quick_deaths`` children in a
    row died soon after starting (0: restart at once)."""
    if quick_deaths <= 0:
        return 0.0
    return min(MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2.0 ** (quick_deaths - 1))


@dataclass(slots=True)
class _Slot:
    child: Child | None  # None: waiting out the back-off to start a child again
    started: float  # monotonic time the child started


class Supervisor(Looper):
    """Keeps ``resize(n)`` slots, each with a live child, starting them with ``spawn``.

    The back-off is one for the whole pool: after a quick death no child is replaced or
    counted until the delay has passed, so children that all die at once (a database that is
    down) are restarted one delay apart, each delay twice the last."""

    def __init__(self, spawn: Callable[[], Child], *, every: float = CHECK_SECONDS) -> None:
        super().__init__("queuelab-supervisor", every=every)
        self._spawn = spawn
        self._lock = threading.Lock()  # the slots: the tick, resize() and the readers
        self._slots: list[_Slot] = []
        self._quick_deaths = 0  # children in a row that died soon after starting
        self._next_spawn = 0.0  # monotonic: no restart before this
        self.restarts = 0

    def resize(self, n: int, mono: float) -> None:
        """Keep ``n`` slots: start children for new ones at once; send SIGTERM to the
        children of removed ones (the newest go first). Starts nothing once stopping."""
        with self._lock:
            while len(self._slots) > n:
                terminate(self._slots.pop().child)
            while len(self._slots) < n and not self.stopping:
                self._slots.append(_Slot(self._spawn(), mono))

    def tick(self, now: float, mono: float) -> None:
        """Note the first dead child (its slot then waits out the back-off), then start a
        child in the first waiting slot if the back-off is over."""
        with self._lock:
            if self.stopping or mono < self._next_spawn:
                return
            self._bury_first_dead(mono)
            if mono >= self._next_spawn:
                self._restart_first_waiting(mono)

    def children(self) -> list[Child]:
        """The children of every slot (not the slots waiting to start one)."""
        with self._lock:
            return [slot.child for slot in self._slots if slot.child is not None]

    def pids(self) -> list[int]:
        return [c.pid for c in self.children() if c.pid is not None and c.is_alive()]

    def waiting(self) -> int:
        """Slots waiting out the back-off to start a child."""
        with self._lock:
            return sum(slot.child is None for slot in self._slots)

    def _bury_first_dead(self, mono: float) -> None:
        for slot in self._slots:
            child = slot.child
            if child is None or child.is_alive():
                continue
            lived = mono - slot.started
            self._quick_deaths = self._quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
            delay = restart_delay(self._quick_deaths)
            log.warning(
                "worker process %s exited with code %s after %.1fs; starting another%s",
                child.pid,
                child.exitcode,
                lived,
                f" in {delay:.1f}s" if delay else "",
            )
            self.restarts += 1
            slot.child = None
            self._next_spawn = mono + delay
            return

    def _restart_first_waiting(self, mono: float) -> None:
        for slot in self._slots:
            if slot.child is None:
                slot.child, slot.started = self._spawn(), mono
                return


def terminate(child: Child | None) -> None:
    """SIGTERM, so the child drains gracefully (nothing for a slot with no child)."""
    if child is not None and child.is_alive() and child.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
