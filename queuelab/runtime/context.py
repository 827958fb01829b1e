"""What a worker, the maintenance loop and the facade share: settings, clock, tasks and
the stores over one database. The database is opened on first use, so building a
``Queue`` at import time (as ``@q.task`` modules do) costs nothing."""

from __future__ import annotations

import logging
import random
import threading
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from queuelab.clock import Clock, SystemClock
from queuelab.config import Settings
from queuelab.logs import job_fields
from queuelab.models import Lease, RetryPolicy
from queuelab.policy import Cancel, DeadLetter, Decision, Outcome, Retry, decide_for, policy_for
from queuelab.schedules import ScheduleSpec
from queuelab.store import Database, JobStore, LeaseStore, WorkerRegistry
from queuelab.store.completions import Completions
from queuelab.store.limits import LimitStore
from queuelab.store.schedules import ScheduleStore
from queuelab.tasks import TaskRegistry, builtin_tasks

log = logging.getLogger("queuelab.jobs")

if TYPE_CHECKING:
    from queuelab.runtime.metrics import JobMetrics
    from queuelab.store.redis_limiter import RedisRateLimiter


class Runtime:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.tasks = TaskRegistry()
        for task in builtin_tasks():
            self.tasks.add(task)
        # Schedules defined in code (``@q.periodic``), written to the database when a worker
        # starts (:func:`queuelab.runtime.scheduler.define_all`).
        self.periodic: dict[str, ScheduleSpec] = {}
        self._open_lock = threading.Lock()
        self._db: Database | None = None
        # What this process's submitters and workers did (queuelab.runtime.metrics); None:
        # not counted (the default: a job then pays one `is None` check).
        self.metrics: JobMetrics | None = None

    @property
    def db(self) -> Database:
        with self._open_lock:
            if self._db is None:
                self._db = Database(self.settings)
            return self._db

    @cached_property
    def jobs(self) -> JobStore:
        return JobStore(self.db)

    @cached_property
    def leases(self) -> LeaseStore:
        return LeaseStore(self.db)

    @cached_property
    def completions(self) -> Completions:
        """Wakes :meth:`Queue.wait <queuelab.Queue.wait>` callers (a thread, started at the first wait)."""
        return Completions(self.db)

    @cached_property
    def workers(self) -> WorkerRegistry:
        return WorkerRegistry(self.db)

    @cached_property
    def schedules(self) -> ScheduleStore:
        return ScheduleStore(self.db)

    @cached_property
    def limits(self) -> LimitStore:
        return LimitStore(self.db, self.settings)

    @cached_property
    def rate_limiter(self) -> RedisRateLimiter | None:
        """The Redis limiter when ``redis_url`` is set; else None (the SQL one runs)."""
        if self.settings.redis_url is None:
            return None
        from queuelab.store.redis_limiter import RedisRateLimiter

        return RedisRateLimiter(self.settings.redis_url)

    @property
    def retry_policy(self) -> RetryPolicy:
        return _settings_policy(self.settings.retry_base_seconds, self.settings.retry_max_seconds)

    def retry_policy_for(self, task: str) -> RetryPolicy:
        """The retry policy of ``task``'s jobs: the task's own, or the settings' if the task
        declared none or is not registered in this process."""
        known = self.tasks.get(task) if task in self.tasks else None
        return policy_for(known.retry if known is not None else None, self.retry_policy)

    def decide(self, lease: Lease, outcome: Outcome) -> Decision:
        """What happens to the job after this attempt: the one place every outcome (the
        task's, a timeout's, a rescued lease's) is decided, now, with the job's task's policy."""
        policy = self.retry_policy_for(lease.task)
        now = self.clock.now()
        decision = decide_for(lease, outcome, policy=policy, now=now, unit_random=random.random())
        _log_decision(lease, decision, now)
        return decision

    def close(self) -> None:
        completions = self.__dict__.get("completions")
        if completions is not None:
            completions.stop()
        jobs = self.__dict__.get("jobs")
        if jobs is not None:
            jobs.group.close()
        if self._db is not None:
            self._db.dispose()
        limiter = self.__dict__.get("rate_limiter")
        if limiter is not None:
            limiter.close()


@lru_cache(maxsize=8)
def _settings_policy(base_seconds: float, max_seconds: float) -> RetryPolicy:
    """The settings' retry policy, built (and checked) once, not once per attempt's end."""
    return RetryPolicy(base_seconds=base_seconds, max_seconds=max_seconds)


def _log_decision(lease: Lease, decision: Decision, now: float) -> None:
    """One line per attempt's end, with the job's fields (see :mod:`queuelab.logs`) and an
    ``event``: a success at INFO with its run time (``completed``), a failure with its error
    and what follows: at WARNING a retry with when (``retry_scheduled``), at ERROR the
    dead-letter queue with why (``dead_lettered``): what happened shows in the worker's log,
    not only in the database."""
    if not isinstance(decision, (Retry, DeadLetter, Cancel)):  # a tuple: a union would be built per job
        if log.isEnabledFor(logging.INFO):
            fields = {**job_fields(lease), "event": "completed", "seconds": round(max(0.0, now - lease.started_at), 6)}
            done = (lease.job_id, lease.task, lease.attempt, fields["seconds"])
            log.info("job %s (%s) attempt %d completed in %.3fs", *done, extra={"fields": fields})
        return
    fields = job_fields(lease)
    if isinstance(decision, Retry):
        when = datetime.fromtimestamp(decision.run_at, UTC).isoformat(timespec="milliseconds")
        level, then = logging.WARNING, f"retry scheduled in {max(0.0, decision.run_at - now):.1f}s, at {when}"
        fields.update(event="retry_scheduled", retry_at=decision.run_at)
    elif isinstance(decision, DeadLetter):
        level, then = logging.ERROR, f"to the dead-letter queue ({decision.reason})"
        fields.update(event="dead_lettered", reason=decision.reason)
    else:
        fields["event"] = "cancelled"
        said = (lease.job_id, lease.task, lease.attempt, decision.message)
        log.info("job %s (%s) attempt %d %s", *said, extra={"fields": fields})
        return
    error = decision.error
    fields["error_type"] = error.error_type
    where = (lease.job_id, lease.task, lease.attempt, error.error_type, error.message, then)
    log.log(level, "job %s (%s) attempt %d failed: %s: %s; %s", *where, extra={"fields": fields})
