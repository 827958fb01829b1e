"""What happens inside the submit transaction before the rows are written: per-user
admission limits (active-job cap, sliding-window rate limit) and fair-scheduling ranks.

Exactness: on SQLite the whole transaction holds the database write lock (BEGIN
IMMEDIATE); on PostgreSQL each user's checks run under a transaction-scoped advisory lock
on that user, so two submitters on two connections cannot both take the last unit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.errors import QuotaExceeded, RateLimited
from queuelab.limits import RateLimit, UserLimits, enabled, rate_enabled
from queuelab.store import direct
from queuelab.store.database import Database
from queuelab.store.limits import cache_for, effective_in
from queuelab.store.schema import IS_PENDING, IS_RUNNING, NOTIFY_CHANNEL, jobs

# The first key of PostgreSQL's two-key advisory locks: queuelab's namespace for per-user
# locks, so they cannot collide with an application's own advisory locks.
USER_LOCK_SPACE = 0x716C  # "ql"
# A user's PENDING and RUNNING jobs, counted apart: each half reads its own partial index
# (queuelab_jobs_user_pending, queuelab_jobs_running_user), where ``status IN (...)``
# would match neither and read every job the user ever had.
_ACTIVE_COUNT = sa.select(
    sa.select(sa.func.count()).where(jobs.c.user_id == sa.bindparam("p_user"), IS_PENDING).scalar_subquery()
    + sa.select(sa.func.count()).where(jobs.c.user_id == sa.bindparam("p_user"), IS_RUNNING).scalar_subquery()
)
_LOCK_USERS = sa.text(
    "SELECT count(pg_advisory_xact_lock(:space, hashtext(u))) FROM (SELECT unnest(CAST(:users AS text[])) AS u "
    "ORDER BY 1) AS ordered"
)


def lock_users(conn: Connection, db: Database, users: Sequence[str]) -> None:
    """Serialise per-user checks across PostgreSQL connections (sorted: no deadlocks).
    SQLite needs nothing: the transaction already holds the database write lock."""
    if db.is_sqlite:
        return
    # One round trip for all: the sorted subquery makes every transaction take the
    # locks in the same order, so two claimers cannot deadlock on them.
    conn.execute(_LOCK_USERS, {"space": USER_LOCK_SPACE, "users": sorted(set(users))})


def admit(
    conn: Connection,
    db: Database,
    rows: Sequence[dict[str, Any]],
    now: float,
    *,
    rate_in_sql: bool,
    rank_in_sql: bool = False,
) -> None:
    """Check every user's limits for ``rows`` and give each row its fair rank; raise
    :class:`QuotaExceeded` or :class:`RateLimited` (the caller's transaction then rolls
    back, so nothing is stored). ``rank_in_sql``: give each row its rank step instead,
    under RANK_STEP, for the insert to compute the rank (:func:`ranked_insert`)."""
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_user[row["user_id"]].append(row)
    users = sorted(by_user)
    limits = effective_in(cache_for(db).get(conn), db.settings, users)
    counted = [u for u in users if _counts_rows(limits[u], rate_in_sql)]
    if counted:
        lock_users(conn, db, counted)  # only users whose checks count rows need the lock
    for user in users:
        mine, lim = by_user[user], limits[user]
        cap = enabled(lim.max_active)
        if cap is not None:
            _check_active(conn, user, len(mine), cap)
        rate = rate_enabled(lim.rate_limit)
        if rate is not None and rate_in_sql:
            _check_rate(conn, user, len(mine), rate, now)
        if rank_in_sql:
            for row in mine:
                row[RANK_STEP] = 1.0 / (lim.weight or 1)
        else:
            _assign_ranks(conn, db, user, mine, lim.weight or 1)


def fresh_ranks(conn: Connection, db: Database, rows: Sequence[dict[str, Any]]) -> None:
    """Give each of ``rows`` (``user_id``, ``priority``) the fair rank a new submission of
    it would get now, in the order given: a requeued job queues behind the work already
    waiting, as a new one would, not at the rank it had when it was first submitted."""
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_user[row["user_id"]].append(row)
    limits = effective_in(cache_for(db).get(conn), db.settings, sorted(by_user))
    for user, mine in by_user.items():
        _assign_ranks(conn, db, user, mine, limits[user].weight or 1)


def unchecked_rank_step(conn: Connection, db: Database, user: str, *, rate_in_sql: bool) -> float | None:
    """The rank step of ``user``'s next job if admitting it checks no stored rows (no
    active cap, no rate limit counted in SQL); None if it does, as it then needs a
    transaction holding the user's lock (:func:`admit`)."""
    limits = effective_in(cache_for(db).get(conn), db.settings, [user])[user]
    return None if _counts_rows(limits, rate_in_sql) else 1.0 / (limits.weight or 1)


def _counts_rows(limits: UserLimits, rate_in_sql: bool) -> bool:
    return bool(enabled(limits.max_active) or (rate_in_sql and rate_enabled(limits.rate_limit)))


def _check_active(conn: Connection, user: str, wanted: int, cap: int) -> None:
    active = int(conn.execute(_ACTIVE_COUNT, {"p_user": user}).scalar_one())
    if active + wanted > cap:
        raise QuotaExceeded(
            f"user {user!r} has {active} active jobs (PENDING or RUNNING) and the cap is {cap}; "
            f"{wanted} more would exceed it"
        )


def _check_rate(conn: Connection, user: str, wanted: int, rate: RateLimit, now: float) -> None:
    # No upper bound at ``now``: a concurrent submitter whose clock read came a moment later
    # may have committed first, and its rows count (they did not: 13 admitted for a limit of
    # 10, from 4 processes of 3 threads each; tests/store/test_limits_concurrent.py).
    recent = (jobs.c.user_id == user, jobs.c.created_at > now - rate.window_seconds)
    count = int(conn.execute(sa.select(sa.func.count()).where(*recent)).scalar_one())
    excess = count + wanted - rate.count
    if excess <= 0:
        return
    if wanted > rate.count:
        retry_after = rate.window_seconds
    else:
        oldest = sa.select(jobs.c.created_at).where(*recent).order_by(jobs.c.created_at).limit(excess)
        times = list(conn.execute(oldest).scalars())
        retry_after = max(0.0, times[-1] + rate.window_seconds - now)
    raise RateLimited(
        f"user {user!r} submitted {count} jobs in the last {rate.window_seconds:g}s and the rate limit is "
        f"{rate.count} per {rate.window_seconds:g}s; retry after {retry_after:.3f}s",
        retry_after=retry_after,
    )


# The user's last pending rank at a priority, else the head of the line there, in one trip.
# The last rank is the first row of an index scan in rank order (ORDER BY ... DESC LIMIT 1),
# not max(): on a table PostgreSQL has not analysed yet (a new schema, the first minute of a
# bulk load), it planned max() as an aggregate over every pending row at that priority (10
# ms at 30,000 rows, growing with the backlog), where the ordered form stops at the first
# row (0.02 ms). COALESCE reads the head only for a user with nothing pending there.
_PRIORITY: sa.BindParameter[int] = sa.bindparam("p_priority")
_LAST_RANK = (
    sa.select(jobs.c.fair_rank)
    .where(jobs.c.user_id == sa.bindparam("p_user"), IS_PENDING, jobs.c.priority == _PRIORITY)
    .order_by(jobs.c.fair_rank.desc())
    .limit(1)
)
_RANKS = sa.select(
    sa.func.coalesce(
        _LAST_RANK.scalar_subquery(),
        sa.select(jobs.c.fair_rank)
        .where(IS_PENDING, jobs.c.priority == _PRIORITY)
        .order_by(jobs.c.fair_rank)
        .limit(1)
        .scalar_subquery(),
        0.0,
    )
)


RANK_STEP = "p_rank_step"
_PENDING = jobs.alias("pending")
_PENDING_AT_PRIORITY = (_PENDING.c.status == sa.literal_column("'PENDING'"), _PENDING.c.priority == _PRIORITY)


@cache
def ranked_insert(columns: tuple[str, ...]) -> sa.Select[Any]:
    """PostgreSQL, one job: the rank of :func:`_assign_ranks`, the insert and the NOTIFY
    that wakes idle workers (delivered at commit, as before) in one statement, so a single
    submit makes three round trips (BEGIN, this, COMMIT) instead of five. Binds the row's
    ``columns`` plus p_user, p_priority and RANK_STEP."""
    mine = _PENDING.c.user_id == sa.bindparam("p_user")
    last = sa.select(_PENDING.c.fair_rank).where(mine, *_PENDING_AT_PRIORITY).order_by(_PENDING.c.fair_rank.desc())
    head = sa.select(_PENDING.c.fair_rank).where(*_PENDING_AT_PRIORITY).order_by(_PENDING.c.fair_rank).limit(1)
    start = sa.func.coalesce(last.limit(1).scalar_subquery(), head.scalar_subquery(), 0.0)  # as _RANKS
    values: dict[str, Any] = {name: sa.bindparam(name, type_=jobs.c[name].type) for name in columns}
    values["fair_rank"] = start + sa.bindparam(RANK_STEP, type_=sa.Double)
    inserted = jobs.insert().values(values).returning(jobs.c.queue).cte("inserted")
    return sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, inserted.c.queue))


@cache
def sqlite_ranked_insert(columns: tuple[str, ...]) -> sa.Insert:
    """SQLite, one job: the rank of :func:`_assign_ranks` computed in the insert, one
    statement where there were two (a single submit's transaction, under the write lock, is
    BEGIN, this and COMMIT). Binds the row's ``columns`` plus p_user, p_priority and
    RANK_STEP; SQLite's workers need no NOTIFY (they watch the file)."""
    values: dict[str, Any] = {name: sa.bindparam(name, type_=jobs.c[name].type) for name in columns}
    values["fair_rank"] = _RANKS.scalar_subquery() + sa.bindparam(RANK_STEP, type_=sa.Double)
    return jobs.insert().values(values)


def _assign_ranks(conn: Connection, db: Database, user: str, rows: list[dict[str, Any]], weight: int) -> None:
    """Start-time fair queueing: a user with pending jobs at this priority continues after
    their last rank; a user with none starts at the head of the line. Steps of 1/weight."""
    step = 1.0 / weight
    by_priority: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_priority[row["priority"]].append(row)
    for priority, group in by_priority.items():
        ((last,),) = direct.execute(conn, db, _RANKS, {"p_user": user, "p_priority": priority}).rows
        for i, row in enumerate(group, start=1):
            row["fair_rank"] = last + i * step
