"""Fairness under quotas: 100 users share 4 workers. Ten heavy users queue a backlog (90%
of the jobs); once the workers are busy, 90 light users submit the rest (a few each). With a running
quota of 2 jobs per user, and without one for comparison: throughput, and the p95
submit-to-start wait of the light users (fair scheduling should put their jobs at the head
of the line) beside the heavy users'. The most RUNNING jobs any user had, sampled from the
database while the queue drains (the quota's own measure), must not pass the quota."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queuelab.bench.core import MODES, drain_floor
from queuelab.bench.harness import (
    drain_timeout,
    enqueue_noop,
    expect_completed,
    first_start,
    fresh_queue,
    running_pool,
    timeline,
    wait_idle,
    wait_started,
)
from queuelab.bench.plan import Context
from queuelab.bench.results import Finding, Result, drain_case, per_second, percentile
from queuelab.queue import Queue
from queuelab.runtime.pool import Mode
from queuelab.store.statements import RUNNING_BY_USER
from queuelab.submission import Submission

HEAVY_USERS = 10
LIGHT_USERS = 90
HEAVY_SHARE = 0.9
QUOTA = 2
WORKERS = 4


def fairness(ctx: Context, kind: str) -> list[Finding]:
    found: list[Finding] = []
    for mode in MODES:
        for quota in (QUOTA, None):
            with fresh_queue(kind, ctx.postgres_url) as q:
                found += fair_run(q, kind, ctx.sizes.jobs, mode, quota)
    return found


def fair_run(q: Queue, kind: str, n: int, mode: Mode, quota: int | None) -> list[Finding]:
    heavy = [f"heavy-{i}" for i in range(HEAVY_USERS)]
    light = [f"light-{i:02d}" for i in range(LIGHT_USERS)]
    heavy_each = max(1, round(HEAVY_SHARE * n / HEAVY_USERS))
    light_each = max(1, round((1 - HEAVY_SHARE) * n / LIGHT_USERS))
    total = heavy_each * HEAVY_USERS + light_each * LIGHT_USERS
    if quota is not None:
        q.set_limits(max_running=quota)
    peak = RunningPeak(q)
    with running_pool(q, WORKERS, mode):
        enqueue_noop(q, heavy_each * HEAVY_USERS, users=heavy)
        wait_started(q)
        for user in light:
            q.submit_many([Submission(task="simulate", user_id=user)] * light_each)
            peak()
        done = wait_idle(q, drain_timeout(total), on_tick=peak)
    expect_completed(q, total)
    rows = timeline(q)
    label = f"100 users, {'running quota ' + str(quota) if quota else 'no quota'}, {drain_case(WORKERS, mode)}"

    def result(metric: str, value: float, unit: str, floor: str = "") -> Result:
        return Result(
            database=kind,
            scenario="fairness",
            case=label,
            metric=metric,
            value=value,
            unit=unit,
            mode=mode,
            workers=WORKERS,
            jobs=total,
            floor_key=floor,
        )

    return [
        result("throughput", per_second(total, done - first_start(q)), "jobs/s", drain_floor(WORKERS, mode)),
        result("light_p95_wait", percentile(_waits(rows, "light-"), 95), "ms"),
        result("heavy_p95_wait", percentile(_waits(rows, "heavy-"), 95), "ms"),
        result("peak_running_per_user", float(peak.most), "jobs"),
    ]


def _waits(rows: Sequence[Any], prefix: str) -> list[float]:
    return [1000 * (r.started_at - r.created_at) for r in rows if r.user_id.startswith(prefix)]


class RunningPeak:
    """The most RUNNING jobs one user had in any snapshot of the jobs table (a job stays
    RUNNING until its ack commits, which is what a running quota counts)."""

    def __init__(self, q: Queue) -> None:
        self.q = q
        self.most = 0

    def __call__(self) -> None:
        with self.q.database.read() as conn:
            counts = [int(n) for _, n in conn.execute(RUNNING_BY_USER)]
        self.most = max([self.most, *counts])
