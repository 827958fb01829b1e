"""The claim statements under per-user running quotas, built once like the others.

A user's quota is read in SQL: their own ``max_running`` row, else the ``*`` row, else the
settings' default (``p_default_quota``); 0 or none means no quota. A user's *room* is their
quota minus their RUNNING jobs; a candidate is taken when it ranks within its user's room
(``row_number() over (partition by user)``), so one statement can take several jobs of one
user without passing the quota.

SQLite runs the whole claim as one statement (the transaction holds the write lock).
PostgreSQL picks candidates first, locks their users, then takes within the room counted by
a statement that starts after the locks are held, so it sees every claim committed before.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.dml import Update

from queuelab.store.schema import IS_PENDING, IS_RUNNING, jobs, limits
from queuelab.store.statements import _TAKE, CLAIMED_COLUMNS, runnable

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


def _candidates(queues: int, tasks: int, skip_queues: int) -> sa.Select[Any]:
    """Runnable jobs in claim order, leaving out users already at their quota."""
    at_quota = sa.select(jobs.c.user_id).where(IS_RUNNING).group_by(jobs.c.user_id)
    at_quota = at_quota.having(sa.func.count() >= quota_of(jobs.c.user_id))
    columns = sa.select(jobs.c.id, jobs.c.user_id, jobs.c.priority, jobs.c.fair_rank)
    pick = runnable(columns.where(jobs.c.user_id.not_in(at_quota)), queues, tasks, skip_queues)
    return pick.order_by(jobs.c.priority.desc(), jobs.c.fair_rank).limit(sa.bindparam("p_overfetch"))


def _within_room(candidates: sa.Subquery) -> sa.Select[Any]:
    """The candidates that fit in their user's room, in claim order, up to ``p_limit``."""
    order = (candidates.c.priority.desc(), candidates.c.fair_rank)
    ranked = sa.select(
        candidates.c.id,
        candidates.c.priority,
        candidates.c.fair_rank,
        sa.func.row_number().over(partition_by=candidates.c.user_id, order_by=order).label("rn"),
        (quota_of(candidates.c.user_id) - running_of(candidates.c.user_id)).label("room"),
    ).subquery("ranked")
    return (
        sa.select(ranked.c.id)
        .where(ranked.c.rn <= ranked.c.room)
        .order_by(ranked.c.priority.desc(), ranked.c.fair_rank)
        .limit(sa.bindparam("p_limit"))
    )


def _take(chosen: sa.Select[Any]) -> Update:
    return (
        jobs.update()
        .where(jobs.c.id.in_(chosen.scalar_subquery()), IS_PENDING)
        .values(**_TAKE)
        .returning(*CLAIMED_COLUMNS)
    )


@cache
def sqlite_quota_claim(queues: int, tasks: int, skip_queues: int) -> Update:
    """Pick, check the quotas and take, in one statement (under SQLite's write lock)."""
    return _take(_within_room(_candidates(queues, tasks, skip_queues).subquery("candidates")))


@cache
def postgres_quota_pick(queues: int, tasks: int, skip_queues: int) -> sa.Select[Any]:
    """Step 1 on PostgreSQL: the candidates, row-locked (others skip them)."""
    return _candidates(queues, tasks, skip_queues).with_for_update(of=jobs, skip_locked=True)


def _picked() -> sa.Subquery:
    return (
        sa.select(jobs.c.id, jobs.c.user_id, jobs.c.priority, jobs.c.fair_rank)
        .where(jobs.c.id.in_(sa.bindparam("p_ids", expanding=True)))
        .subquery("candidates")
    )


# Step 3 on PostgreSQL, once the users' advisory locks are held: take within the room.
POSTGRES_QUOTA_TAKE = _take(_within_room(_picked()))
