"""A worker's background loop: keep its leases alive, keep its row in the worker registry
(registered at start, heartbeaten, marked stopped at the end),
rescue expired leases of vanished workers, prune old jobs (and on SQLite hand the pages they
freed back to the file system, a step at a time), and keep PostgreSQL's statistics of the
jobs table current after a bulk load.

It works over :class:`LeaseHolder`, what it needs of a worker, and never imports the
worker: timeouts, stopping and what to do with a lost lease are the worker's own.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Protocol, Self

from queuelab.errors import StoreError
from queuelab.looper import Looper
from queuelab.models import Lease
from queuelab.runtime.context import Runtime
from queuelab.store import WorkerInfo, compaction
from queuelab.store.claims import forget_idle_users
from queuelab.store.statistics import refresh_if_stale

log = logging.getLogger("queuelab.maintenance")

MAX_TICK_SECONDS = 1.0
WORKER_BEAT_SECONDS = 2.0
PRUNE_EVERY_SECONDS = 600.0
PRUNE_BATCH = 5000
STATISTICS_EVERY_SECONDS = 5.0
# SQLite: at most this long per tick handing free pages back (steps of a few ms each, the
# write lock released between them), so heartbeats and workers never wait for long.
VACUUM_SECONDS_PER_TICK = 0.05


class LeaseHolder(Protocol):
    """What maintenance needs of a worker's jobs (:class:`queuelab.runtime.held.HeldJobs`)."""

    def heartbeat_due(self, now: float) -> list[tuple[Lease, bool]]:
        """Leases to extend at ``now`` (monotonic), each with whether its job has started."""
        ...

    def leases_lost(self, leases: Sequence[Lease]) -> None:
        """A heartbeat found these no longer held (rescued elsewhere)."""
        ...

    def shortest_lease(self) -> float | None:
        """The shortest lease held now, in seconds (sets how often to tick)."""
        ...

    def not_cancelled(self) -> list[Lease]:
        """The leases of the jobs waiting or running that nobody has cancelled yet."""
        ...


class Maintenance(Looper):
    def __init__(
        self,
        runtime: Runtime,
        holder: LeaseHolder,
        info: WorkerInfo,
        size: Callable[[], int] | None = None,
        cancel: Callable[[Sequence[Lease]], None] | None = None,
    ) -> None:
        """``info``: the worker's row, registered by :meth:`start`, heartbeaten with the
        worker's current ``size()`` (its concurrency), marked stopped by :meth:`stop`.
        ``cancel``: told, each tick, which held jobs someone has cancelled."""
        super().__init__("queuelab-maintenance", every=MAX_TICK_SECONDS, clock=runtime.clock)
        self.runtime = runtime
        self.holder = holder
        self.info = info
        self.size = size or (lambda: info.concurrency)
        self.cancel = cancel
        self._next_beat = 0.0
        self._next_statistics: float | None = None
        self._next_prune: float | None = None
        self._vacuum_due = runtime.db.is_sqlite  # a file may have pages free from before this worker

    def start(self) -> Self:
        self.runtime.workers.register(self.info)  # raises here, in the worker's run(), if it cannot
        return super().start()

    def stop(self, timeout: float | None = 5.0) -> None:
        super().stop(timeout)
        try:
            self.runtime.workers.stop(self.info.id, self.runtime.clock.now())
        except StoreError as exc:
            log.warning("could not mark worker %s stopped: %s", self.info.id, exc)

    def interval(self) -> float:
        """A lease is heartbeaten when a third of it is used: tick at least every quarter."""
        shortest = self.holder.shortest_lease()
        held = [] if shortest is None else [shortest / 4]
        return min([MAX_TICK_SECONDS, self.runtime.settings.lease_seconds / 4, *held])

    def tick(self, now: float, mono: float) -> None:
        if self._next_prune is None:  # spread the work of workers that started together
            self._next_prune = mono + random.uniform(0.1, 1.0) * PRUNE_EVERY_SECONDS
            self._next_statistics = mono + random.uniform(0.0, STATISTICS_EVERY_SECONDS)
        self.heartbeat(mono)
        self.cancels()
        if mono >= self._next_beat:
            self.runtime.workers.beat(self.info.id, now, self.size())
            self._next_beat = mono + WORKER_BEAT_SECONDS
        self.rescue(now)
        if mono >= self._next_prune:
            more = self.prune(now)
            # One batch per tick, so lease heartbeats never wait behind a long prune.
            self._next_prune = mono + (0.0 if more else PRUNE_EVERY_SECONDS)
        if self._vacuum_due:
            self._vacuum_due = self.vacuum()
        if self._next_statistics is not None and mono >= self._next_statistics:
            self._next_statistics = mono + STATISTICS_EVERY_SECONDS  # even if it raises
            refresh_if_stale(self.runtime.db)

    def heartbeat(self, mono: float) -> None:
        """Extend the leases that have used a third of their time."""
        due = self.holder.heartbeat_due(mono)
        if due:
            started = {lease.job_id for lease, began in due if began}
            lost = self.runtime.leases.heartbeat([lease for lease, _ in due], self.runtime.clock.now, started)
            if lost:
                self.holder.leases_lost(lost)

    def cancels(self) -> None:
        """Tell the worker which of its jobs someone has cancelled: one read by primary key
        per tick (at most a second apart) while it holds jobs, so a cancel reaches a job
        within about a second, however long its lease; the claim and ack paths pay nothing."""
        if self.cancel is None:
            return
        asked = self.runtime.leases.cancel_requests(self.holder.not_cancelled())
        if asked:
            self.cancel(asked)

    def rescue(self, now: float) -> int:
        """Retry or dead-letter the jobs whose lease expired, each decided like any other
        outcome (``Runtime.decide``: the job's task's retry policy where it is known here)."""
        metrics = self.runtime.metrics
        decide = self.runtime.decide if metrics is None else metrics.counting(self.runtime.decide)
        rescued = self.runtime.leases.rescue(now, decide)
        if rescued:
            log.warning("rescued %d job(s) whose worker stopped heartbeating", rescued)
            if metrics is not None:
                metrics.rescued(rescued)
        return rescued

    def vacuum(self) -> bool:
        """SQLite: hand free pages back for up to VACUUM_SECONDS_PER_TICK; True if some are
        left (the next tick goes on)."""
        return compaction.vacuum_for(self.runtime.db, VACUUM_SECONDS_PER_TICK)

    def prune(self, now: float) -> bool:
        """Prune one batch; True if there may be more."""
        retention = self.runtime.settings.retention_seconds
        if retention is None:
            return False
        pruned = self.runtime.jobs.prune(now - retention, max_batches=1)
        self._vacuum_due = self._vacuum_due or (pruned > 0 and self.runtime.db.is_sqlite)
        self.runtime.workers.forget(now - retention)
        forget_idle_users(self.runtime.db)
        if pruned:
            log.info("pruned %d finished job(s) older than %gs", pruned, retention)
        return pruned >= PRUNE_BATCH
