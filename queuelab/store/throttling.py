"""Execution throttles inside the claim: which throttled jobs a claim may take, and the
record of the starts it made.

Before the claim statement, each throttle's starts in its window are counted; a throttle
with no room left is left out of the claim by a filter (its task, queue or user among the
skipped ones), so the claim passes over those jobs to the ones behind them; and the claim
takes no more jobs than the smallest room left among the other throttles that could
match, so no throttle can pass its limit within one claim. The claim then records a start
per throttle for each job it took (``queuelab_starts``), in the same transaction.

Exactness across workers: the count and the claim must not interleave with another
claimer's. On SQLite the claim's transaction holds the database write lock. On PostgreSQL
the claimer takes a transaction-scoped advisory lock per throttle key *before* counting
and holds it to commit, when its own starts become visible; both in one round trip, by
schema.THROTTLE_FUNCTION, whose count takes a fresh snapshot once the lock is granted, so
it sees every start committed before. (A single statement would not: its snapshot would
predate the lock, and miss the starts of the claimer it waited for.) The lock is only
*tried*: a throttle another claimer holds is skipped for this claim, as if full, so a claim
never waits on one, and a worker of other tasks is never slowed by a throttled one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.store import direct
from queuelab.store.database import Database
from queuelab.store.schema import starts
from queuelab.throttles import Scope, Throttle, frees_at, matches, room

# The first key of the two-key advisory locks on throttles: a namespace of their own, apart
# from admission's per-user locks and from an application's.
THROTTLE_LOCK_SPACE = 0x7174  # "qt"
_LOCK_AND_COUNT = sa.text(
    "SELECT locked_key, started FROM "
    "queuelab_throttle_starts(:space, CAST(:keys AS text[]), CAST(:since AS double precision[]))"
)
_RECORD_START = starts.insert().values(key=sa.bindparam("p_key"), at=sa.bindparam("p_at", type_=sa.Double))
# Starts this far out of their window are deleted (the margin covers clocks a little apart:
# a start is counted against the claimer's own ``now``).
PRUNE_MARGIN_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class HoldBack:
    """What a claim leaves out under throttles, and how many it may take at most."""

    skip_tasks: tuple[str, ...] = ()
    skip_queues: tuple[str, ...] = ()
    skip_users: tuple[str, ...] = ()
    limit: int = 0
    counted: tuple[Throttle, ...] = ()  # the throttles this claim may take under: record their starts


def plan(
    throttles: Sequence[Throttle],
    started: Mapping[str, int | None],
    queues: Sequence[str] | None,
    tasks: Sequence[str] | None,
    limit: int,
) -> HoldBack:
    """The pure decision: ``started`` holds each throttle's starts in its window (None:
    another claimer holds it, so it counts as full). A throttle that cannot match the
    worker's queues or tasks does not cap its claims."""
    skip: dict[Scope, list[str]] = {scope: [] for scope in Scope}
    counted = []
    for throttle in throttles:
        if not relevant(throttle, queues, tasks):
            continue
        n = started.get(throttle.key)
        left = 0 if n is None else room(throttle.rate, n)
        if left == 0:
            skip[throttle.scope].append(throttle.name)
        else:
            counted.append(throttle)
            limit = min(limit, left)
    return HoldBack(tuple(skip[Scope.TASK]), tuple(skip[Scope.QUEUE]), tuple(skip[Scope.USER]), limit, tuple(counted))


def relevant(throttle: Throttle, queues: Sequence[str] | None, tasks: Sequence[str] | None) -> bool:
    if throttle.scope == Scope.TASK:
        return tasks is None or throttle.name in tasks
    if throttle.scope == Scope.QUEUE:
        return queues is None or throttle.name in queues
    return True


def hold_back(
    conn: Connection,
    db: Database,
    throttles: Sequence[Throttle],
    queues: Sequence[str] | None,
    tasks: Sequence[str] | None,
    limit: int,
    now: float,
) -> HoldBack:
    """Lock (PostgreSQL), count and :func:`plan`, inside the claim's transaction."""
    mine = [t for t in throttles if relevant(t, queues, tasks)]
    if not mine:
        return HoldBack(limit=limit)
    if db.is_sqlite:  # the transaction holds the database write lock
        counted: dict[str, int | None] = dict(count_started(conn, db, mine, now))
        started = {t.key: counted.get(t.key, 0) for t in mine}
    else:
        started = _lock_and_count(conn, mine, now)
    return plan(mine, started, queues, tasks, limit)


def _lock_and_count(conn: Connection, throttles: Sequence[Throttle], now: float) -> dict[str, int | None]:
    """PostgreSQL: try each throttle's lock and count its starts once it is held, in one
    round trip (schema.THROTTLE_FUNCTION); None for a throttle another claimer holds."""
    mine = sorted(throttles, key=lambda t: t.key)
    params = {
        "space": THROTTLE_LOCK_SPACE,
        "keys": [t.key for t in mine],
        "since": [now - t.rate.window_seconds for t in mine],
    }
    got = {key: int(n) for key, n in conn.execute(_LOCK_AND_COUNT, params)}
    return {t.key: got.get(t.key) for t in mine}


@cache
def _count_statement(n: int) -> sa.Select[Any]:
    """Starts per key after each key's own window start (``p_key_i``, ``p_since_i``):
    ``n`` range scans of the (key, at) index."""
    each = [
        sa.and_(starts.c.key == sa.bindparam(f"p_key_{i}"), starts.c.at > sa.bindparam(f"p_since_{i}", type_=sa.Double))
        for i in range(n)
    ]
    return sa.select(starts.c.key, sa.func.count()).where(sa.or_(*each)).group_by(starts.c.key)


def count_started(conn: Connection, db: Database, throttles: Sequence[Throttle], now: float) -> dict[str, int]:
    """Each throttle's starts in its window ending ``now``. No upper bound at ``now``: a
    start another claimer recorded with a clock a moment ahead still counts."""
    if not throttles:
        return {}
    params: dict[str, Any] = {}
    for i, t in enumerate(throttles):
        params[f"p_key_{i}"], params[f"p_since_{i}"] = t.key, now - t.rate.window_seconds
    return {key: int(n) for key, n in direct.execute(conn, db, _count_statement(len(throttles)), params).rows}


def record(conn: Connection, db: Database, counted: Sequence[Throttle], rows: Iterable[Any], now: float) -> None:
    """A start at ``now`` per job taken and throttle it counts against; and, once per
    window and process, the deletion of that throttle's starts long out of its window."""
    values = [
        {"p_key": t.key, "p_at": now} for row in rows for t in counted if matches(t, row.task, row.queue, row.user_id)
    ]
    if values:
        direct.execute_many(conn, db, _RECORD_START, values)
    for throttle in counted:
        if _prune_due(db, throttle, now):
            before = now - throttle.rate.window_seconds - PRUNE_MARGIN_SECONDS
            conn.execute(starts.delete().where(starts.c.key == throttle.key, starts.c.at <= before))


_prune_lock = threading.Lock()


def _prune_due(db: Database, throttle: Throttle, now: float) -> bool:
    last = db.caches.setdefault("throttle_pruned", {})
    assert isinstance(last, dict)
    with _prune_lock:
        if now - last.get(throttle.key, float("-inf")) < throttle.rate.window_seconds:
            return False
        last[throttle.key] = now
        return True


def next_free_at(conn: Connection, throttles: Sequence[Throttle], now: float) -> float | None:
    """The earliest moment a full throttle among ``throttles`` has room again (for an idle
    worker's sleep and for ``explain``); None if none is full."""
    found = None
    for throttle in throttles:
        since = now - throttle.rate.window_seconds
        query = sa.select(starts.c.at).where(starts.c.key == throttle.key, starts.c.at > since)
        times = list(conn.execute(query).scalars())
        at = frees_at(times, throttle.rate, now)
        if at is not None and (found is None or at < found):
            found = at
    return found
