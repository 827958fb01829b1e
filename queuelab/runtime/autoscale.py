"""The autoscaling policy: metrics in, a target worker count out, with the reason.

The policy is pure: no clock reads, no I/O. The defaults are the prototype's conceptual plan
(scale up by 1-2 workers while more than 10 jobs wait and workers < 50; scale down by 1 after
5 minutes with no pending job, running jobs or not), scaled on the *runnable* backlog: jobs
waiting for a future ``run_at``, a retry backoff or a user's running quota are not demand
more workers can serve.
A cooldown after every change and the idle window stop the pool from flapping.

:class:`Autoscaler` is the thin loop around it: each ``tick(now, mono)`` measures the store,
asks the policy and resizes a local pool.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from queuelab.errors import InvalidArgument
from queuelab.looper import Looper
from queuelab.store.reports import runnable_backlog
from queuelab.store.scaling import ScaleEvent, ScaleLog

if TYPE_CHECKING:
    from queuelab.runtime.context import Runtime

log = logging.getLogger("queuelab.autoscale")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalePolicy:
    min_workers: int = 1
    max_workers: int = 50
    scale_up_backlog: int = 10  # scale up while more runnable jobs than this wait
    max_step_up: int = 2
    jobs_per_new_worker: int = 10  # the step grows with the backlog: 1 per this many jobs, capped
    idle_seconds: float = 300.0  # scale down by 1 after this long with no runnable job
    cooldown_seconds: float = 30.0  # no change sooner than this after the last one
    headroom: int = 0  # idle workers kept beyond the running jobs when scaling down

    def __post_init__(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers:
            raise InvalidArgument(
                f"min_workers must be between 0 and max_workers ({self.max_workers}), got {self.min_workers}"
            )
        for name in ("scale_up_backlog", "max_step_up", "jobs_per_new_worker", "headroom"):
            if getattr(self, name) < (0 if name in ("scale_up_backlog", "headroom") else 1):
                raise InvalidArgument(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        for name in ("idle_seconds", "cooldown_seconds"):
            if getattr(self, name) < 0:
                raise InvalidArgument(f"{name} must be >= 0 seconds, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleMetrics:
    runnable_backlog: int  # PENDING, due now, not held back by a quota or a paused queue
    running: int
    workers: int
    idle_for_seconds: float  # how long the runnable backlog has been 0 (0 if it is not)
    since_last_change_seconds: float


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    workers: int
    reason: str

    def changes(self, current: int) -> bool:
        return self.workers != current


def decide_scale(m: ScaleMetrics, p: ScalePolicy) -> ScaleDecision:
    """The worker count to run next, and why."""
    if m.workers < p.min_workers:
        return ScaleDecision(p.min_workers, f"below the minimum of {p.min_workers}")
    if m.workers > p.max_workers:
        return ScaleDecision(p.max_workers, f"above the maximum of {p.max_workers}")
    if m.since_last_change_seconds < p.cooldown_seconds:
        return ScaleDecision(m.workers, f"cooling down ({m.since_last_change_seconds:.0f}s of {p.cooldown_seconds:g}s)")
    if m.runnable_backlog > p.scale_up_backlog:
        if m.workers >= p.max_workers:
            return ScaleDecision(m.workers, f"backlog {m.runnable_backlog} but already at the maximum")
        step = min(p.max_step_up, max(1, m.runnable_backlog // p.jobs_per_new_worker))
        target = min(p.max_workers, m.workers + step)
        return ScaleDecision(
            target, f"runnable backlog {m.runnable_backlog} > {p.scale_up_backlog}: +{target - m.workers}"
        )
    if m.runnable_backlog == 0 and m.idle_for_seconds >= p.idle_seconds:
        # The seed's rule (PENDING = 0 for 5 minutes: one worker less), step by step towards
        # the workers the running jobs need, plus the headroom: running jobs do not hold
        # idle workers up (they did: a trickle of jobs kept a burst's pool for hours).
        needed = max(p.min_workers, m.running + p.headroom)
        if m.workers > needed:
            return ScaleDecision(
                m.workers - 1,
                f"no runnable job for {m.idle_for_seconds:.0f}s >= {p.idle_seconds:g}s, {m.running} running: -1",
            )
        if m.workers <= p.min_workers:
            return ScaleDecision(m.workers, "idle, at the minimum")
        return ScaleDecision(m.workers, f"no runnable job; {m.running} running need {needed} workers")
    return ScaleDecision(m.workers, f"steady (runnable backlog {m.runnable_backlog}, running {m.running})")


class Resizable(Protocol):
    """What the autoscaler drives: a :class:`~queuelab.runtime.pool.ThreadPool`, a
    :class:`~queuelab.runtime.pool.ProcessPool`, or a :class:`~queuelab.runtime.worker.Worker`."""

    @property
    def size(self) -> int: ...

    def resize(self, n: int) -> None: ...


class Autoscaler(Looper):
    """Applies :func:`decide_scale` to a local pool every ``tick_seconds``, in a thread.

    Scaling down is graceful: a process pool sends SIGTERM to the surplus worker, which
    finishes or releases its job; a thread pool retires surplus slots as they come free.
    No attempt is spent either way."""

    def __init__(self, runtime: Runtime, pool: Resizable, policy: ScalePolicy, tick_seconds: float = 2.0) -> None:
        if policy.min_workers < 1:
            raise InvalidArgument(
                f"min_workers must be at least 1 for a local pool (it cannot run 0 workers), got {policy.min_workers}"
            )
        super().__init__("queuelab-autoscaler", every=tick_seconds, clock=runtime.clock)
        self.runtime, self.pool, self.policy = runtime, pool, policy
        self.hostname = socket.gethostname()
        self.id = f"{self.hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.decisions: list[ScaleEvent] = []  # every change this autoscaler made, as stored
        self.last: ScaleDecision | None = None  # the latest tick's decision, change or not
        self._idle_since: float | None = None  # monotonic
        self._changed_at = -math.inf  # monotonic; starting is not a change: no cooldown before the first one

    def tick(self, now: float, mono: float) -> None:
        """Measure, decide, and resize the pool if the decision says so. ``now`` (epoch
        seconds) decides which jobs are due; ``mono`` times the idle window and the cooldown."""
        backlog = sum(runnable_backlog(self.runtime.db, now).values())
        running = running_jobs(self.runtime)
        if backlog:  # idle: no runnable job waits (running jobs may)
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = mono
        current = self.pool.size
        metrics = ScaleMetrics(
            runnable_backlog=backlog,
            running=running,
            workers=current,
            idle_for_seconds=0.0 if self._idle_since is None else mono - self._idle_since,
            since_last_change_seconds=mono - self._changed_at,
        )
        self.last = decision = decide_scale(metrics, self.policy)
        if decision.changes(current):
            log.info("autoscale %d -> %d workers: %s", current, decision.workers, decision.reason)
            self.pool.resize(decision.workers)
            self._changed_at = mono
            self._record(now, metrics, decision)

    def _record(self, now: float, metrics: ScaleMetrics, decision: ScaleDecision) -> None:
        event = ScaleLog(self.runtime.db).record(
            at=now,
            pool_id=self.id,
            hostname=self.hostname,
            backlog=metrics.runnable_backlog,
            running=metrics.running,
            workers_before=metrics.workers,
            workers_after=decision.workers,
            reason=decision.reason,
            keep_seconds=self.runtime.settings.retention_seconds,
        )
        self.decisions.append(event)


def running_jobs(runtime: Runtime) -> int:
    from queuelab.store.claims import running_by_user

    with runtime.db.read() as conn:
        return sum(running_by_user(conn).values())
