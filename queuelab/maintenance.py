"""The worker's background loop: keep its leases alive, enforce job timeouts, heartbeat
the worker registry, rescue expired leases of vanished workers, prune old jobs, and keep
PostgreSQL's statistics of the jobs table current after a bulk load."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import TYPE_CHECKING

from queuelab.errors import StoreError
from queuelab.execution import decide_after
from queuelab.models import AttemptOutcome
from queuelab.policy import Decision, Errored, decide
from queuelab.store.claims import forget_idle_users
from queuelab.store.statistics import refresh_if_stale

if TYPE_CHECKING:
    from queuelab.worker import Running, Worker

log = logging.getLogger("queuelab.maintenance")

MAX_TICK_SECONDS = 1.0
WORKER_BEAT_SECONDS = 2.0
PRUNE_EVERY_SECONDS = 600.0
TIMEOUT_EXIT_CODE = 70
PRUNE_BATCH = 5000
STATISTICS_EVERY_SECONDS = 5.0


class Maintenance:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.runtime = worker.runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="queuelab-maintenance", daemon=True)
        self._last_beat = 0.0
        self._next_statistics = time.monotonic() + random.uniform(0.0, STATISTICS_EVERY_SECONDS)
        # Spread pruning across workers that started together.
        self._next_prune = time.monotonic() + random.uniform(0.1, 1.0) * PRUNE_EVERY_SECONDS

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval()):
            try:
                self.tick()
            except StoreError as exc:
                log.error("maintenance tick failed, will retry: %s", exc)
            except Exception:  # the loop must outlive any bug: without it leases expire
                log.exception("maintenance tick failed unexpectedly, will retry")

    def _interval(self) -> float:
        leases = [e.lease.lease_seconds for e in self.worker.running()]
        return min([MAX_TICK_SECONDS, self.runtime.settings.lease_seconds / 4, *(s / 4 for s in leases)])

    def tick(self) -> None:
        if self.worker.parent_pid is not None and os.getppid() != self.worker.parent_pid:
            log.warning("worker %s: its supervisor is gone; stopping", self.worker.id)
            self.worker.stop()
        self.extend_leases()
        self.enforce_timeouts()
        self.beat()
        self.rescue()
        if time.monotonic() >= self._next_prune:
            more = self.prune()
            # One batch per tick, so lease heartbeats never wait behind a long prune.
            self._next_prune = time.monotonic() + (0.0 if more else PRUNE_EVERY_SECONDS)
        if time.monotonic() >= self._next_statistics:
            self._next_statistics = time.monotonic() + STATISTICS_EVERY_SECONDS  # even if it raises
            refresh_if_stale(self.runtime.db)

    def extend_leases(self) -> None:
        """Heartbeat the leases that have used a third of their time."""
        now_mono = time.monotonic()
        due = [e for e in self.worker.running() if now_mono - e.heartbeat_at >= e.lease.lease_seconds / 3]
        if not due:
            return
        lost = self.runtime.leases.heartbeat([e.lease for e in due], self.runtime.clock.now)
        for entry in due:
            entry.heartbeat_at = now_mono
        dropped = self.worker.drop_lost(lost)
        for lease in lost:
            if lease in dropped:
                log.warning("job %s: lease lost before it started here (it was rescued); not running it", lease.job_id)
                continue
            log.warning(
                "job %s: lease lost while running (it expired and was rescued); its result will be discarded",
                lease.job_id,
            )

    def enforce_timeouts(self) -> None:
        now_mono = time.monotonic()
        for entry in self.worker.running():
            limit = entry.lease.timeout_seconds
            if limit is None or not entry.started or now_mono - entry.started_monotonic <= limit:
                continue
            if self.worker.exit_on_timeout:
                self.worker.stop_claiming()  # this process is about to exit: take no new job
            if self.worker.abandon(entry, replace=not self.worker.exit_on_timeout):
                self._time_out(entry, limit)

    def _time_out(self, entry: Running, limit: float) -> None:
        lease = entry.lease
        error = Errored(AttemptOutcome.TIMEOUT, "JobTimeout", f"job ran longer than its timeout of {limit:g}s")
        self.worker.finish(lease, decide_after(self.runtime, lease, error))
        if self.worker.exit_on_timeout:
            log.error("job %s timed out after %gs; stopping this worker process to kill it", lease.job_id, limit)
            self.worker.prepare_exit()
            os._exit(TIMEOUT_EXIT_CODE)
        log.error(
            "job %s timed out after %gs; its thread cannot be killed and is abandoned (use process "
            "mode to kill stuck jobs)",
            lease.job_id,
            limit,
        )

    def beat(self) -> None:
        now_mono = time.monotonic()
        if now_mono - self._last_beat >= WORKER_BEAT_SECONDS:
            self.runtime.workers.beat(self.worker.id, self.runtime.clock.now(), self.worker.concurrency)
            self._last_beat = now_mono

    def rescue(self) -> int:
        policy = self.runtime.retry_policy
        now = self.runtime.clock.now()

        def decider(error: Errored, attempt: int, max_retries: int) -> Decision:
            return decide(
                error, attempt=attempt, max_retries=max_retries, policy=policy, now=now, unit_random=random.random()
            )

        rescued = self.runtime.leases.rescue(now, decider)
        if rescued:
            log.warning("rescued %d job(s) whose worker stopped heartbeating", rescued)
        return rescued

    def prune(self) -> bool:
        """Prune one batch; True if there may be more."""
        retention = self.runtime.settings.retention_seconds
        if retention is None:
            return False
        now = self.runtime.clock.now()
        pruned = self.runtime.jobs.prune(now - retention, max_batches=1)
        self.runtime.workers.forget(now - retention)
        forget_idle_users(self.runtime.db)
        if pruned:
            log.info("pruned %d finished job(s) older than %gs", pruned, retention)
        return pruned >= PRUNE_BATCH
