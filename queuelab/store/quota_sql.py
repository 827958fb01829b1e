"""The claim statements under per-user running quotas, built once like the others.

A user's quota is read in SQL: their own ``max_running`` row, else the ``*`` row, else the
settings' default (``p_default_quota``); 0 or none means no quota. A user's *room* is their
quota minus their RUNNING jobs; a candidate is taken when it ranks within its user's room
(``row_number() over (partition by user)``), so one statement can take several jobs of one
user without passing the quota.

SQLite runs the whole claim as one statement (the transaction holds the write lock).
PostgreSQL runs it as one statement too, made exact by a row per user
(``queuelab_user_locks``): see :func:`postgres_quota_claim`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.dml import Update

from queuelab.store.schema import IS_PENDING, IS_RUNNING, jobs, limits, user_locks
from queuelab.store.statements import _TAKE, CLAIMED_COLUMNS, TID, runnable

UNLIMITED = 2**31 - 1
DEFAULTS = "*"


def quota_of(user: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    own = sa.select(limits.c.max_running).where(limits.c.user_id == user).scalar_subquery()
    star = sa.select(limits.c.max_running).where(limits.c.user_id == DEFAULTS).scalar_subquery()
    quota = sa.func.coalesce(own, star, sa.bindparam("p_default_quota", type_=sa.Integer))
    return sa.func.coalesce(sa.func.nullif(quota, 0), UNLIMITED)


def running_of(user: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    running = jobs.alias("running")
    return (
        sa.select(sa.func.count())
        .where(running.c.user_id == user, running.c.status == sa.literal_column("'RUNNING'"))
        .scalar_subquery()
    )


def _limit(name: str, fixed: int | None) -> sa.ColumnElement[int]:
    """A LIMIT: bound at execution, or ``fixed`` into the SQL (PostgreSQL), so the server,
    which knows the limit, can plan the statement once and reuse the plan; with an unknown
    limit it estimates a tenth of the table and re-plans each execution instead."""
    if fixed is None:
        return sa.bindparam(name, type_=sa.Integer)
    return sa.literal_column(str(int(fixed)), sa.Integer)


def _candidates(
    queues: int, tasks: int, skip_queues: int, overfetch: int | None = None, skip: tuple[int, int] = (0, 0)
) -> sa.Select[Any]:
    """Runnable jobs in claim order, leaving out users already at their quota."""
    at_quota = sa.select(jobs.c.user_id).where(IS_RUNNING).group_by(jobs.c.user_id)
    at_quota = at_quota.having(sa.func.count() >= quota_of(jobs.c.user_id))
    columns = sa.select(jobs.c.id, jobs.c.user_id, jobs.c.priority, jobs.c.fair_rank)
    if overfetch is not None:  # PostgreSQL
        columns = columns.add_columns(TID.label("tid"))
    pick = runnable(columns.where(jobs.c.user_id.not_in(at_quota)), queues, tasks, skip_queues, *skip)
    return pick.order_by(jobs.c.priority.desc(), jobs.c.fair_rank).limit(_limit("p_overfetch", overfetch))


def _within_room(candidates: sa.Subquery, limit: int | None = None) -> sa.Select[Any]:
    """The candidates that fit in their user's room, in claim order, up to ``p_limit``:
    their ids (SQLite), their row addresses (PostgreSQL: ``limit`` fixed)."""
    postgres = limit is not None
    order = (candidates.c.priority.desc(), candidates.c.fair_rank)
    ranked = sa.select(
        candidates.c.tid if postgres else candidates.c.id,
        candidates.c.priority,
        candidates.c.fair_rank,
        sa.func.row_number().over(partition_by=candidates.c.user_id, order_by=order).label("rn"),
        (quota_of(candidates.c.user_id) - running_of(candidates.c.user_id)).label("room"),
    ).subquery("ranked")
    return (
        sa.select(ranked.c.tid if postgres else ranked.c.id)
        .where(ranked.c.rn <= ranked.c.room)
        .order_by(ranked.c.priority.desc(), ranked.c.fair_rank)
        .limit(_limit("p_limit", limit))
    )


def _take(chosen: sa.Select[Any], *, postgres: bool = False) -> Update:
    """Take the ``chosen`` jobs.

    PostgreSQL: by row address, ``ctid = ANY(ARRAY(chosen))``, a TID scan whatever the
    planner believes of the table. Each form by id let it read far more than the few rows:
    ``id IN (chosen)`` a semi join over the pending rows (9 ms at 2,850 pending, without
    statistics, as on a fresh backlog); ``id = ANY(...) AND status = 'PENDING'`` the partial
    pending index with the ids as a filter, or without the status test the whole table, in
    the generic plan that a prepared statement keeps from when the table was small (0.8 to
    1.3 ms at 3,000 pending). The addresses are of rows this statement locked ``FOR UPDATE``,
    which re-checked them PENDING: no one else changes them until it commits, so nothing
    else can be taken. One rare miss is left: a row another transaction changed (and left
    PENDING) after this statement's snapshot is locked in its newest version, whose address
    the UPDATE, reading that snapshot, does not see; the job is then not taken this time."""
    if postgres:
        taken = sa.any_(sa.func.array(chosen.scalar_subquery())) == TID
        return jobs.update().where(taken).values(**_TAKE).returning(*CLAIMED_COLUMNS)
    taken = jobs.c.id.in_(chosen.scalar_subquery())
    return jobs.update().where(taken, IS_PENDING).values(**_TAKE).returning(*CLAIMED_COLUMNS)


@cache
def sqlite_quota_claim(queues: int, tasks: int, skip_queues: int, skip_tasks: int = 0, skip_users: int = 0) -> Update:
    """Pick, check the quotas and take, in one statement (under SQLite's write lock).
    ``skip_tasks``, ``skip_users``: as in statements.runnable (execution throttles)."""
    candidates = _candidates(queues, tasks, skip_queues, skip=(skip_tasks, skip_users))
    return _take(_within_room(candidates.subquery("candidates")))


@cache
def postgres_quota_claim(
    queues: int, tasks: int, skip_queues: int, limit: int, overfetch: int, skip_tasks: int = 0, skip_users: int = 0
) -> sa.Select[Any]:
    """The PostgreSQL claim under quotas, one statement that never waits on a lock: up to
    ``limit`` jobs from the first ``overfetch`` candidates (both fixed in the SQL).

    1. ``picked``: the candidates, row-locked, skipping rows another claimer holds.
    2. ``locked``: their users' rows in ``queuelab_user_locks``, locked the same way, as
       many as jobs are wanted, in claim order. A row
       that another transaction changed and committed after this statement's snapshot is
       returned as changed (READ COMMITTED re-reads the newest version of a row it locks).
    3. ``ok``: users whose row is locked here and unchanged since the snapshot. No claim for
       them committed after the snapshot (every claim bumps the row), and the ones before it
       are counted by the snapshot; an ack meanwhile only lowers the count. So the snapshot's
       count of their RUNNING jobs is safe to take against, though the lock came later.
    4. Take within those users' room, bump their rows (held until commit, so a concurrent
       claimer skips them or, after the commit, sees them changed).

    Every row has the taken job's columns, except one row with NULLs when nothing was taken;
    each row also counts the candidates passed over (``passed``: their user was not locked
    here, as not needed, or held by another claimer, changed, or without a row) and names
    the candidates' users without a row (``missing``): the caller adds those rows, so that
    the next claim can take their jobs."""
    picked = _candidates(queues, tasks, skip_queues, overfetch, (skip_tasks, skip_users))
    picked = picked.with_for_update(of=jobs, skip_locked=True)
    candidates = picked.cte("picked").prefix_with("MATERIALIZED")
    # Lock no more users than jobs wanted, in claim order: every candidate's user has room
    # in the snapshot, and a user locked here is passed over by every other claimer.
    order = sa.func.row_number().over(order_by=(candidates.c.priority.desc(), candidates.c.fair_rank))
    placed = sa.select(candidates.c.user_id, order.label("place")).subquery("placed")
    first = sa.select(placed.c.user_id, sa.func.min(placed.c.place).label("first")).group_by(placed.c.user_id)
    users = first.subquery("users")
    locked = (
        sa.select(user_locks.c.user_id, user_locks.c.claims)
        .join(users, users.c.user_id == user_locks.c.user_id)
        .order_by(users.c.first)
        .limit(_limit("p_limit", limit))
        .with_for_update(of=user_locks, skip_locked=True)
    )
    held = locked.cte("locked").prefix_with("MATERIALIZED")
    seen = user_locks.alias("seen")
    unchanged = (seen.c.user_id == held.c.user_id) & (seen.c.claims == held.c.claims)
    ok = sa.select(held.c.user_id).join(seen, unchanged).cte("ok")
    mine = sa.select(candidates).where(candidates.c.user_id.in_(sa.select(ok.c.user_id))).subquery("candidates")
    taken = _take(_within_room(mine, limit), postgres=True).cte("taken")
    bumped = user_locks.update().where(user_locks.c.user_id.in_(sa.select(taken.c.user_id)))
    bumped = bumped.values(claims=user_locks.c.claims + 1)
    passed = sa.select(sa.func.count()).where(candidates.c.user_id.not_in(sa.select(ok.c.user_id)))
    has_row = sa.exists().where(seen.c.user_id == candidates.c.user_id)
    missing = sa.select(candidates.c.user_id).where(~has_row).distinct()
    summary = sa.select(
        passed.scalar_subquery().label("passed"),
        sa.func.array(missing.scalar_subquery()).label("missing"),
    ).subquery("summary")
    statement = sa.select(*taken.c, summary.c.passed, summary.c.missing)
    return statement.select_from(summary.outerjoin(taken, sa.true())).add_cte(bumped.cte("bumped"))


# A user's row, added outside the claim's transaction (see claims.py).
ADD_USER_LOCKS = sa.text(
    "INSERT INTO queuelab_user_locks (user_id, claims) SELECT u, 0 FROM unnest(CAST(:users AS text[])) AS u "
    "ORDER BY u ON CONFLICT DO NOTHING"
)
# The rows of users with no PENDING or RUNNING job, which no claim needs; locked rows
# (a claim is taking that user's jobs) are left for next time, so this never waits.
FORGET_IDLE_USER_LOCKS = sa.text(
    "DELETE FROM queuelab_user_locks WHERE user_id IN (SELECT l.user_id FROM queuelab_user_locks AS l "
    "WHERE NOT EXISTS (SELECT FROM queuelab_jobs AS j WHERE j.user_id = l.user_id AND j.status = 'PENDING') "
    "AND NOT EXISTS (SELECT FROM queuelab_jobs AS j WHERE j.user_id = l.user_id AND j.status = 'RUNNING') "
    "FOR UPDATE SKIP LOCKED)"
)
