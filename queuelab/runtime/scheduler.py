"""The scheduler: a worker's loop that enqueues the ticks of periodic jobs.

Every worker runs one, and none leads: each reads the schedules that are due, decides their
ticks with the pure :func:`~queuelab.schedules.plan_ticks`, and asks the store to move each
schedule on and insert its ticks' jobs in one transaction (:meth:`ScheduleStore.advance`),
which only the first scheduler to get there can do. A scheduler killed mid-tick leaves its
transaction uncommitted: nothing of it is written, and the next scheduler enqueues the tick.

:meth:`Scheduler.step` is one pass at a given ``now``, for tests and benchmarks; the thread
around it wakes at the nearest tick, and at least once a second so run-time changes (a new
schedule, a pause) are seen.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from queuelab.errors import QueuelabError, StoreError
from queuelab.looper import Looper
from queuelab.runtime.context import Runtime
from queuelab.schedules import Schedule, plan_ticks, tick_key
from queuelab.submission import Submission, build_row

log = logging.getLogger("queuelab.scheduler")

MAX_SLEEP_SECONDS = 1.0


def define_all(runtime: Runtime) -> None:
    """Write the schedules defined in code (``@q.periodic``) to the database: new ones are
    added, changed ones updated (a pause stays), unchanged ones left alone."""
    now = runtime.clock.now()
    for spec in runtime.periodic.values():
        runtime.schedules.define(spec, now)


class Scheduler(Looper):
    def __init__(self, runtime: Runtime, *, every: float = MAX_SLEEP_SECONDS) -> None:
        super().__init__("queuelab-scheduler", every=every, clock=runtime.clock)
        self.runtime = runtime
        self.enqueued = 0  # ticks this scheduler enqueued (the others' are not counted)
        self._nearest: float | None = None

    def interval(self) -> float:
        """Until the nearest tick, at most ``every``."""
        if self._nearest is None:
            return self.every
        return min(self.every, max(0.0, self._nearest - self.clock.now()))

    def tick(self, now: float, mono: float) -> None:
        self.step(now)

    def step(self, now: float) -> int:
        """One pass: enqueue every due tick this scheduler gets to first; return how many."""
        enqueued = sum([self.fire(schedule, now) for schedule in self.runtime.schedules.due(now)])
        self._nearest = self.runtime.schedules.nearest()
        self.enqueued += enqueued
        return enqueued

    def fire(self, schedule: Schedule, now: float) -> int:
        """Enqueue ``schedule``'s due ticks, unless another scheduler did: their count.
        A schedule whose task this process does not know is left to workers that do."""
        spec = schedule.spec
        plan = plan_ticks(spec, schedule.next_run_at.timestamp(), now)
        if plan is None or spec.task not in self.runtime.tasks:
            return 0
        try:
            rows = [self._row(schedule, tick, now) for tick in plan.ticks]
            won = self.runtime.schedules.advance(schedule, plan, rows, self.runtime.jobs, now)
        except StoreError:
            raise
        except QueuelabError as exc:  # refused by a limit, or the task no longer takes the payload
            log.warning("schedule %s: could not enqueue its tick, will retry: %s", spec.name, exc)
            return 0
        if won and plan.skipped_from is not None:
            log.warning("schedule %s: skipped the ticks missed since %s", spec.name, _iso(plan.skipped_from))
        return len(rows) if won else 0

    def _row(self, schedule: Schedule, tick: float, now: float) -> dict[str, Any]:
        spec = schedule.spec
        sub = Submission(
            task=spec.task,
            payload=spec.payload,
            user_id=spec.user_id,
            queue=spec.queue,
            priority=spec.priority,
            idempotency_key=tick_key(spec.name, tick),
        )
        return build_row(sub, self.runtime.tasks.get(spec.task), self.runtime.settings, now)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
