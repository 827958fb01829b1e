"""Read-only aggregate queries for stats, the dashboard and the notebooks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from queuelab.config import Settings
from queuelab.limits import enabled
from queuelab.models import AttemptOutcome, Job, JobStatus
from queuelab.store import history
from queuelab.store.database import Database
from queuelab.store.dependencies import shown_priority, waiting_on
from queuelab.store.limits import effective, paused_queues, read_snapshot
from queuelab.store.schema import IS_PENDING, IS_RUNNING, attempts, jobs, workers
from queuelab.store.throttling import count_started, next_free_at
from queuelab.throttles import Throttle, matches, room

FRAME_COLUMNS = (
    "id",
    "queue",
    "task",
    "user_id",
    "status",
    "priority",
    "attempts",
    "max_retries",
    "forced",
    "dead_letter_reason",
    "progress",
    "progress_message",
    "lease_owner",
    "created_at",
    "run_at",
    "started_at",
    "finished_at",
)


class Reports:
    def __init__(self, db: Database) -> None:
        self.db = db

    def counts(self, user_id: str | None = None) -> dict[tuple[str, str], int]:
        """{(queue, status): number of jobs} (of ``user_id``'s jobs only, if given)."""
        query = sa.select(jobs.c.queue, jobs.c.status, sa.func.count()).group_by(jobs.c.queue, jobs.c.status)
        with self.db.read() as conn:
            return {(q, s): n for q, s, n in conn.execute(_of_user(query, user_id))}

    def oldest_runnable(self, now: float, user_id: str | None = None) -> float | None:
        """The earliest ``run_at`` among jobs that could run now."""
        query = sa.select(sa.func.min(jobs.c.run_at)).where(IS_PENDING, jobs.c.run_at <= now)
        with self.db.read() as conn:
            return conn.execute(_of_user(query, user_id)).scalar()

    def outcomes_since(self, since: float, user_id: str | None = None) -> dict[str, int]:
        """{attempt outcome: count} for attempts that finished at or after ``since``."""
        found = _history_of_user(
            ("outcome",), user_id, [attempts.c.finished_at >= since], [jobs.c.finished_at >= since]
        )
        query = sa.select(found.c.outcome, sa.func.count()).group_by(found.c.outcome)
        with self.db.read() as conn:
            counts = {str(o): n for o, n in conn.execute(query)}
        return {o.value: counts.get(o.value, 0) for o in AttemptOutcome}

    def job_rows(self, limit: int) -> list[dict[str, Any]]:
        query = sa.select(*(jobs.c[c] for c in FRAME_COLUMNS)).order_by(jobs.c.created_at.desc()).limit(limit)
        with self.db.read() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            row["priority"] = shown_priority(row["priority"])
        return rows

    def attempt_rows(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` attempts that finished last, newest first (no tracebacks). Each half
        (the attempts' rows, the completions the jobs' rows record) is read newest first down
        its own index to ``limit``, then merged: a UNION ordered as a whole would sort them all."""
        names = [c.name for c in attempts.c if c.name != "traceback"]
        recorded = [jobs.c[name] for name in ("id", "status", "attempts", "completed_by", "started_at", "finished_at")]
        newest = [
            sa.select(*(attempts.c[name] for name in names)).order_by(attempts.c.finished_at.desc()).limit(limit),
            sa.select(*recorded).where(history.RECORDS_COMPLETION).order_by(jobs.c.finished_at.desc()).limit(limit),
        ]
        with self.db.read() as conn:
            rows = [dict(row) for row in conn.execute(newest[0]).mappings()]
            done = (history.completing_attempt(row) for row in conn.execute(newest[1]).mappings())
            rows += [attempt for attempt in done if attempt is not None]
        rows.sort(key=lambda row: row["finished_at"], reverse=True)
        return [{name: row[name] for name in names} for row in rows[:limit]]


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What :func:`queuelab.explain.explain_job` needs to know about a job and its context."""

    job: Job
    now: float
    queue_paused: bool
    user_running: int
    user_max_running: int | None
    live_worker_queues: list[str]  # each worker's queue list ("*" = all)
    ahead: int  # runnable jobs that would be claimed before it (capped)
    throttled: Throttled | None = None  # the full throttle that holds it back, if any
    waiting_on: list[tuple[str, str | None]] = field(default_factory=list)  # parents not completed, their status


@dataclass(frozen=True, slots=True)
class Throttled:
    throttle: Throttle
    started: int  # starts in the window now
    frees_at: float  # when the next start fits


POSITION_CAP = 10_000


def job_facts(db: Database, settings: Settings, job_id: str, now: float, worker_ttl: float) -> JobFacts:
    from queuelab.store.jobs import JobStore

    job = JobStore(db).get(job_id)
    with db.read() as conn:
        paused = job.queue in paused_queues(conn)
        running = conn.execute(sa.select(sa.func.count()).where(jobs.c.user_id == job.user_id, IS_RUNNING)).scalar_one()
        quota = enabled(effective(conn, settings, [job.user_id])[job.user_id].max_running)
        live = conn.execute(
            sa.select(workers.c.queues).where(
                workers.c.stopped_at.is_(None), workers.c.last_seen_at >= now - worker_ttl
            )
        ).scalars()
        live_queues = list(live)
        ahead = 0
        parents = waiting_on(conn, job_id) if job.waiting_for else []
        if job.status == JobStatus.PENDING:
            rank = conn.execute(sa.select(jobs.c.fair_rank).where(jobs.c.id == job_id)).scalar_one()
            before = sa.or_(
                jobs.c.priority > job.priority, sa.and_(jobs.c.priority == job.priority, jobs.c.fair_rank < rank)
            )
            capped = sa.select(jobs.c.id).where(IS_PENDING, jobs.c.run_at <= now, before).limit(POSITION_CAP)
            ahead = conn.execute(sa.select(sa.func.count()).select_from(capped.subquery())).scalar_one()
        throttled = _throttled(conn, db, job, now)
    return JobFacts(job, now, paused, int(running), quota, live_queues, int(ahead), throttled, parents)


def _throttled(conn: Any, db: Database, job: Job, now: float) -> Throttled | None:
    """The throttle of the job's task, queue or user that is full now, and when it frees
    (the latest of them: the job starts once every one has room)."""
    found = None
    for throttle in read_snapshot(conn).throttles:
        if not matches(throttle, job.task, job.queue, job.user_id):
            continue
        at = next_free_at(conn, [throttle], now)
        if at is not None and (found is None or at > found.frees_at):
            found = Throttled(throttle, count_started(conn, db, [throttle], now).get(throttle.key, 0), at)
    return found


def completed_series(db: Database, now: float, seconds: int = 60, user_id: str | None = None) -> list[int]:
    """Jobs completed in each of the last ``seconds`` whole seconds, oldest first."""
    start = int(now) - seconds + 1
    completed = [attempts.c.finished_at >= start, attempts.c.outcome == AttemptOutcome.COMPLETED.value]
    found = _history_of_user(("finished_at",), user_id, completed, [jobs.c.finished_at >= start])
    second = sa.cast(found.c.finished_at, sa.Integer) if db.is_sqlite else sa.func.floor(found.c.finished_at)
    query = sa.select(second.label("second"), sa.func.count()).group_by(second)
    with db.read() as conn:
        counts = {int(s): int(n) for s, n in conn.execute(query)}
    return [counts.get(start + i, 0) for i in range(seconds)]


def runnable_backlog(db: Database, now: float) -> dict[str, int]:
    """{queue: PENDING jobs a free worker could start now}: due (not scheduled or backing
    off), in a queue that is not paused, of a user not at their running quota, and of a
    throttled task, queue or user no more than its throttle's room. This, not the PENDING
    count, is the demand more workers can serve (the autoscaler's metric)."""
    from queuelab.store.claims import running_by_user
    from queuelab.store.limits import DEFAULTS, cache_for, running_quotas

    with db.read() as conn:
        snapshot = cache_for(db).get(conn)
        query = sa.select(jobs.c.queue, sa.func.count()).where(IS_PENDING, jobs.c.run_at <= now)
        if snapshot.paused:
            query = query.where(jobs.c.queue.not_in(snapshot.paused))
        quotas = running_quotas(snapshot, db.settings)
        if quotas is not None:
            running = running_by_user(conn)
            full = [u for u, n in running.items() if (q := quotas.get(u, quotas[DEFAULTS])) and n >= q]
            if full:
                query = query.where(jobs.c.user_id.not_in(full))
        query, throttled = _throttled_demand(conn, db, query, snapshot.throttles, now)
        found = Counter({name: int(n) for name, n in conn.execute(query.group_by(jobs.c.queue))})
        return dict(found + throttled)


def _of_user(query: sa.Select[Any], user_id: str | None) -> sa.Select[Any]:
    return query if user_id is None else query.where(jobs.c.user_id == user_id)


def _history_of_user(
    columns: Sequence[str],
    user_id: str | None,
    attempts_where: Sequence[sa.ColumnElement[bool]],
    jobs_where: Sequence[sa.ColumnElement[bool]],
) -> sa.Subquery:
    """:func:`history.history` of ``columns`` (each filter on its own table's columns), of
    ``user_id``'s jobs only if given."""
    if user_id is not None:
        mine = attempts.c.job_id.in_(sa.select(jobs.c.id).where(jobs.c.user_id == user_id))
        attempts_where, jobs_where = [*attempts_where, mine], [*jobs_where, jobs.c.user_id == user_id]
    return history.history(columns, attempts_where=attempts_where, jobs_where=jobs_where)


_SCOPE_COLUMN = {"task": jobs.c.task, "queue": jobs.c.queue, "user": jobs.c.user_id}


def _throttled_demand(
    conn: Any, db: Database, query: Any, throttles: Sequence[Throttle], now: float
) -> tuple[Any, Counter[str]]:
    """``query`` without the throttled jobs, and {queue: throttled jobs more workers could
    start now}: of each throttle's jobs, no more than the room it has left (none when full).
    A job under two throttles with room may count under both: the demand errs high by that."""
    counted = count_started(conn, db, throttles, now)
    demand: Counter[str] = Counter()
    rest = query
    for throttle in throttles:
        column = _SCOPE_COLUMN[throttle.scope.value]
        rest = rest.where(column != throttle.name)
        left = room(throttle.rate, counted.get(throttle.key, 0))
        if left:
            mine = query.with_only_columns(jobs.c.queue).where(column == throttle.name).limit(left)
            demand.update(conn.execute(mine).scalars())
    return rest, demand
