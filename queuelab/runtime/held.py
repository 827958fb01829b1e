"""The jobs a worker holds a lease on: each has one state, and every change of state
happens in :meth:`HeldJobs._move`, under one lock.

::

    WAITING ──start──▶ RUNNING ──finish──▶ FINISHED ──ack──▶ (forgotten)
       │ │                 │
       │ └─abandon─┐       └─abandon──▶ ABANDONED
       └─drop──▶ DROPPED   └──────────▶ ABANDONED

- WAITING: claimed (prefetched, or on its way to a free slot); no slot has started it.
- RUNNING: a slot thread runs it, or (an async job's) a coroutine on the worker's loop.
- FINISHED: its decision waits for the next turn, which acks it.
- ABANDONED: timed out, or handed back at a stop: whatever the task returns is discarded.
- DROPPED: still waiting when a heartbeat found its lease lost (rescued elsewhere): not run.

Abandoned, dropped and acked jobs leave the table. Entries are keyed by (job id, lease
token): after a lost lease this worker may claim the same job again while the old
attempt's thread still runs, and both must count.

Async jobs (``Entry.coroutine``) are counted apart (:attr:`Counts.async_live`): they run
on the worker's event loop under its ``async_concurrency``, not in its slots, time out on
that loop (:mod:`.coroutines`), and do not feed the slots' run-time averages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

from queuelab.models import Lease
from queuelab.policy import Decision
from queuelab.runtime.progress import CancelSignal
from queuelab.store.leases import Finished

log = logging.getLogger("queuelab.worker")

RATIO_CAP = 8.0  # the most one job's wall/CPU ratio counts for (see HeldJobs.solo_wait_ratio)
RATIO_UP, RATIO_DOWN = 0.1, 0.3  # the moving average's weight of a ratio above it, below it


class EntryState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABANDONED = "abandoned"
    DROPPED = "dropped"


_NEXT: dict[EntryState, frozenset[EntryState]] = {
    EntryState.WAITING: frozenset({EntryState.RUNNING, EntryState.ABANDONED, EntryState.DROPPED}),
    EntryState.RUNNING: frozenset({EntryState.FINISHED, EntryState.ABANDONED}),
    EntryState.FINISHED: frozenset(),
    EntryState.ABANDONED: frozenset(),
    EntryState.DROPPED: frozenset(),
}
_GONE = frozenset({EntryState.ABANDONED, EntryState.DROPPED})


@dataclass(slots=True, eq=False)
class Entry:
    lease: Lease
    heartbeat_at: float  # monotonic: the claim, then the last heartbeat
    state: EntryState = EntryState.WAITING
    started_at: float | None = None  # monotonic, once RUNNING
    solo: bool = False  # no other job of this worker, and no turn, was running when it started
    turns_at_start: int = 0  # HeldJobs.turns when it started: a turn ran meanwhile if it moved
    finished: Finished | None = None  # once FINISHED: the outcome the next turn acks
    finished_at: float | None = None  # monotonic
    coroutine: bool = False  # an async job: it runs on the worker's event loop, not in a slot
    # Set when someone cancels the job (q.cancel): the task sees it (current_job().cancelled).
    cancel: CancelSignal = field(default_factory=CancelSignal)
    cancel_deadline: float | None = None  # monotonic: stopped by force if still RUNNING after it

    @property
    def key(self) -> tuple[str, str]:
        return (self.lease.job_id, self.lease.token)


@dataclass(frozen=True, slots=True)
class Counts:
    waiting: int  # sync jobs (as running): those of the slots
    running: int
    finished: int  # sync and async
    oldest_unacked: float | None  # monotonic: when the oldest FINISHED entry finished
    async_live: int = 0  # async jobs held and not finished (waiting or running on the loop)


class HeldJobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], Entry] = {}
        self.oldest_unacked: float | None = None  # read unlocked by the slots' fast path
        self.run_seconds = 1.0  # moving average of how long a job ran (see turns.gathers_acks)
        self.runs = 0  # jobs run to an outcome here: the average is the first job's own time until then
        # Jobs that ran alone (no other job of this worker running meanwhile, and no turn):
        # moving averages of their run (wall) time and of its ratio to their thread's CPU
        # time, uninflated by waits for Python's lock on other slots or on a turn's Python
        # (see turns.lanes). Each ratio is capped (at RATIO_CAP), so that one job stalled by
        # a pause moves the average little.
        self.solo_runs = 0
        self.solo_run_seconds = 0.0
        self.solo_wait_ratio = 1.0
        # Turns begun and ended (odd: one is under way), moved by turn() around each of the
        # worker's turns, under its turn lock: a job that overlapped a turn is not solo. Before, a turn's
        # Python in the dispatcher inflated a no-op job's measured wall/CPU ratio to 3-8 on
        # PostgreSQL, which spread short jobs over every slot thread.
        self.turns = 0
        # Entries in the table per state, kept by _move, add and forget: a turn is planned
        # per job, and counting a prefetching worker's hundred entries each time cost more.
        # Sync entries (those of the slots) and async ones apart, keyed by Entry.coroutine.
        self._counted = {False: dict.fromkeys(EntryState, 0), True: dict.fromkeys(EntryState, 0)}
        self._in_state = self._counted[False]

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Around a turn (and the hand-out of its jobs), under the worker's turn lock: a job
        that runs meanwhile is not measured as alone (see ``turns``)."""
        self.turns += 1
        try:
            yield
        finally:
            self.turns += 1

    def _move(self, entry: Entry, to: EntryState) -> bool:
        """The one place an entry changes state (the caller holds the lock). False, and
        nothing changed, where the state machine has no such step."""
        if to not in _NEXT[entry.state]:
            return False
        in_state = self._counted[entry.coroutine]
        in_state[entry.state] -= 1
        entry.state = to
        if to in _GONE:
            self._entries.pop(entry.key, None)
        else:
            in_state[to] += 1
        return True

    def add(
        self, leases: Iterable[Lease], now: float, coroutine: Callable[[Lease], bool] = lambda _: False
    ) -> list[Entry]:
        """Hold new leases, WAITING; ``coroutine``: whether a lease's job is an async one."""
        entries = [Entry(lease, heartbeat_at=now, coroutine=coroutine(lease)) for lease in leases]
        with self._lock:
            for entry in entries:
                self._entries[entry.key] = entry
                self._counted[entry.coroutine][EntryState.WAITING] += 1
        return entries

    def start(self, entry: Entry, now: float, started_at: float | None = None) -> bool:
        """WAITING → RUNNING. ``started_at`` (wall time): when the attempt really started,
        for a job that waited since its claim. False if it may not start (dropped, abandoned)."""
        with self._lock:
            if not self._move(entry, EntryState.RUNNING):
                return False
            entry.started_at = now
            entry.turns_at_start = turns = self.turns
            entry.solo = not entry.coroutine and self._in_state[EntryState.RUNNING] == 1 and turns % 2 == 0
            if started_at is not None:
                entry.lease = entry.lease.started(started_at)
            return True

    def finish(self, entry: Entry, decision: Decision, finished_at: float, now: float, cpu: float = 0.0) -> bool:
        """RUNNING → FINISHED with the attempt's decision (``cpu``: the CPU seconds its
        thread spent on it). False if it was abandoned meanwhile."""
        with self._lock:
            solo = entry.solo and self._in_state[EntryState.RUNNING] == 1 and self.turns == entry.turns_at_start
            if not self._move(entry, EntryState.FINISHED):
                return False
            entry.finished = Finished(entry.lease, decision, finished_at)
            entry.finished_at = now
            if self.oldest_unacked is None:
                self.oldest_unacked = now
            if not entry.coroutine:
                self._measure(now - (entry.started_at or now), solo, cpu)
            return True

    def _measure(self, ran: float, solo: bool, cpu: float) -> None:
        """Fold a slot job's run into the moving averages (the caller holds the lock)."""
        self.run_seconds = ran if not self.runs else self.run_seconds + 0.2 * (ran - self.run_seconds)
        self.runs += 1
        if solo:
            first = not self.solo_runs
            ratio = min(RATIO_CAP, ran / cpu) if cpu > 0 else RATIO_CAP
            self.solo_run_seconds = ran if first else self.solo_run_seconds + 0.2 * (ran - self.solo_run_seconds)
            # From 1 (no waiting), not from the first job's ratio, and slower up than down: one
            # job that stalled (a cold file, another thread's burst) had set 4 lanes, under
            # which short jobs overlap and hardly ever run alone to correct it (a SQLite drain
            # then ran at 5,800 jobs/s against 7,200-7,800 in one lane). Jobs that do wait
            # (a network call) reach 4 lanes after six that ran alone.
            weight = RATIO_UP if ratio > self.solo_wait_ratio else RATIO_DOWN
            self.solo_wait_ratio += weight * (ratio - self.solo_wait_ratio)
            self.solo_runs += 1

    def abandon(self, entry: Entry) -> bool:
        """WAITING or RUNNING → ABANDONED; False if it had already finished or gone."""
        with self._lock:
            return self._move(entry, EntryState.ABANDONED)

    def abandon_waiting(self) -> list[Entry]:
        """Every WAITING entry → ABANDONED (to be handed back); returns them."""
        with self._lock:
            waiting = [e for e in self._entries.values() if e.state is EntryState.WAITING]
            return [e for e in waiting if self._move(e, EntryState.ABANDONED)]

    def drop(self, leases: Sequence[Lease]) -> list[Lease]:
        """Leases a heartbeat found lost: the WAITING ones among them → DROPPED; returns those."""
        with self._lock:
            entries = [self._entries.get((lease.job_id, lease.token)) for lease in leases]
            return [e.lease for e in entries if e is not None and self._move(e, EntryState.DROPPED)]

    def leases_lost(self, leases: Sequence[Lease]) -> None:
        """A heartbeat found these leases no longer ours (rescued elsewhere). A job that has
        not started is dropped: not run here. A running one runs on, and its ack will be
        refused. A finished one is left to its ack, which reports a real loss itself: the
        heartbeat may only have raced that ack, and that is no loss."""
        for lease in self.drop(leases):
            log.warning("job %s: lease lost before it started here (it was rescued); not running it", lease.job_id)
        for lease in leases:
            if self.state_of(lease) is EntryState.RUNNING:
                log.warning(
                    "job %s: lease lost while running (it expired and was rescued); its result will be discarded",
                    lease.job_id,
                )

    def not_cancelled(self) -> list[Lease]:
        """The leases of the jobs waiting or running here that nobody has cancelled (yet)."""
        with self._lock:
            live = (EntryState.WAITING, EntryState.RUNNING)
            return [e.lease for e in self._entries.values() if e.state in live and not e.cancel.is_set()]

    def request_cancel(self, leases: Sequence[Lease], deadline: float) -> list[Entry]:
        """Someone cancelled these jobs: set each one's ``cancel`` event, and its deadline to
        stop (monotonic); returns the entries newly cancelled."""
        with self._lock:
            entries = [self._entries.get((lease.job_id, lease.token)) for lease in leases]
            fresh = [e for e in entries if e is not None and not e.cancel.is_set() and e.state not in _GONE]
            for entry in fresh:
                entry.cancel_deadline = deadline
                entry.cancel.set()
            return fresh

    def shortest_lease(self) -> float | None:
        """The shortest lease held, in seconds."""
        with self._lock:
            return min((e.lease.lease_seconds for e in self._entries.values()), default=None)

    def state_of(self, lease: Lease) -> EntryState | None:
        """The state of the entry holding ``lease``, None once it left the table (acked)."""
        with self._lock:
            entry = self._entries.get((lease.job_id, lease.token))
            return None if entry is None else entry.state

    def finished(self) -> list[Finished]:
        with self._lock:
            return [e.finished for e in self._entries.values() if e.finished is not None]

    def forget(self, acked: Iterable[Finished]) -> None:
        """Acked outcomes leave the table."""
        with self._lock:
            for done in acked:
                entry = self._entries.get((done.lease.job_id, done.lease.token))
                if entry is not None and entry.finished is done:
                    del self._entries[entry.key]
                    self._counted[entry.coroutine][EntryState.FINISHED] -= 1
            self.oldest_unacked = min(
                (e.finished_at for e in self._entries.values() if e.finished_at is not None), default=None
            )

    def counts(self) -> Counts:
        with self._lock:
            in_state, on_loop = self._counted[False], self._counted[True]
            return Counts(
                waiting=in_state[EntryState.WAITING],
                running=in_state[EntryState.RUNNING],
                finished=in_state[EntryState.FINISHED] + on_loop[EntryState.FINISHED],
                oldest_unacked=self.oldest_unacked,
                async_live=on_loop[EntryState.WAITING] + on_loop[EntryState.RUNNING],
            )

    def entries(self) -> list[Entry]:
        """Every entry holding a lease here: waiting, running, or finished and not acked."""
        with self._lock:
            return list(self._entries.values())

    def heartbeat_due(self, now: float) -> list[tuple[Lease, bool]]:
        """Leases that have used a third of their time since the claim or the last
        heartbeat, each with whether its job has started (the heartbeat records the start
        of a job claimed ahead); they count as heartbeaten at ``now`` (the caller writes it)."""
        with self._lock:
            due = [e for e in self._entries.values() if now - e.heartbeat_at >= e.lease.lease_seconds / 3]
            for entry in due:
                entry.heartbeat_at = now
            return [(e.lease, e.state is not EntryState.WAITING) for e in due]

    def timed_out(self, now: float) -> list[Entry]:
        """RUNNING entries past their job's timeout, or past the grace period of their
        cancel, at ``now`` (a slot's: an async job's coroutine is cancelled on its loop at
        its timeout, and at once when it is cancelled)."""
        with self._lock:
            return [e for e in self._entries.values() if (d := _deadline(e)) is not None and now > d]

    def next_deadline(self) -> float | None:
        """When the first RUNNING job runs past its timeout (monotonic), if any has one."""
        with self._lock:
            deadlines = [d for e in self._entries.values() if (d := _deadline(e)) is not None]
        return min(deadlines, default=None)


def _deadline(entry: Entry) -> float | None:
    """When a slot's running job is stopped by force: its timeout or its cancel's grace, the first."""
    if entry.coroutine or entry.state is not EntryState.RUNNING or entry.started_at is None:
        return None
    limit = entry.lease.timeout_seconds
    timeout = None if limit is None else entry.started_at + limit
    return min((d for d in (entry.cancel_deadline, timeout) if d is not None), default=None)
