"""The claim: which runnable jobs a worker takes, under paused queues, per-user
running quotas and execution throttles (see throttling.py).

Without quotas a claim is one statement. With a running quota (at most K RUNNING jobs
per user) the quota is checked inside the claim transaction, in one statement too: on
SQLite that transaction holds the database write lock; on PostgreSQL the claimer locks a
row per candidate user and takes only for users whose row no other claim changed since
its snapshot (see quota_sql.postgres_quota_claim), so two workers on two connections can
never both take a user's last slot. A job held back by a quota stays PENDING and spends no
attempt.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.config import Settings
from queuelab.models import Lease
from queuelab.store import direct, quota_sql, throttling
from queuelab.store import statements as st
from queuelab.store.database import Database
from queuelab.store.limits import Snapshot, cache_for, running_quotas
from queuelab.store.schema import IS_RUNNING, jobs

OVERFETCH = 2  # candidates per free slot when some may be over their user's quota
# PostgreSQL: when every candidate's user was being claimed by another worker, the claim
# runs again after each pause (seconds), then gives up until the next wake-up or poll.
CONTENDED_PAUSES = (0.0, 0.001, 0.002, 0.004)


@dataclass(frozen=True, slots=True)
class ClaimFilter:
    worker_id: str
    queues: tuple[str, ...] | None = None
    tasks: tuple[str, ...] | None = None


def one_statement(snapshot: Snapshot, settings: Settings) -> bool:
    """Whether a claim under ``snapshot`` is one statement, with nothing to write beside it:
    no execution throttle (a claim records its starts) and no running quota (PostgreSQL's
    quota claim adds the users' lock rows it finds missing)."""
    return not snapshot.throttles and running_quotas(snapshot, settings) is None


def claim(conn: Connection, db: Database, which: ClaimFilter, limit: int, now: float, ahead: int = 0) -> list[Lease]:
    """Take up to ``limit`` jobs to start at once, then up to ``ahead`` more to start later
    (claimed ahead: their start is not recorded, so a rescue hands them back unspent). With
    a running quota nothing is claimed ahead: such a job would hold one of its user's slots
    without running. Under execution throttles neither: a claim counts as a start."""
    if which.tasks == () or which.queues == ():  # an empty list allows nothing
        return []
    snapshot = cache_for(db).get(conn)
    params, shape = _filter(which, snapshot, limit, now)
    params["p_started"] = now
    token = params["p_token"]
    held = None
    if snapshot.throttles:  # none set (the usual case): the claim is exactly as without them
        held = throttling.hold_back(conn, db, snapshot.throttles, which.queues, which.tasks, limit, now)
        limit, ahead = held.limit, 0
        shape = _skip_throttled(params, held, snapshot.paused, shape)
    # The worker runs the jobs in the order they come back: claim order, those started at
    # once first. RETURNING comes in no set order, so those rows are sorted here; SQLite's
    # claim reads its rows in claim order already (_take_sqlite).
    if running_quotas(snapshot, db.settings) is not None:  # the quotas are read in the statement
        rows = sorted(_claim_within_quotas(conn, db, shape, params, limit), key=_claim_order) if limit > 0 else []
    elif db.is_sqlite:
        rows = _take_sqlite(conn, db, shape, params, limit, ahead)
    else:
        statement = st.claim_statement(*shape, postgres=True)
        rows = sorted(_take(conn, db, statement, params), key=_claim_order) if limit > 0 else []
        if ahead > 0 and (len(rows) == limit):  # (fewer than asked for: nothing is left to take)
            more = {**params, "p_started": None, "p_limit": ahead}
            rows += sorted(_take(conn, db, statement, more), key=_claim_order)
    if held is not None and held.counted and rows:
        throttling.record(conn, db, held.counted, rows, now)
    return [lease_from_row(row, token, now) for row in rows]


def _filter(which: ClaimFilter, snapshot: Snapshot, limit: int, now: float) -> tuple[dict[str, Any], tuple[int, ...]]:
    """A claim's parameters (a fresh lease token, the worker's filter, the paused queues
    left out) and the statement's shape (how many values each filter list holds)."""
    queues, tasks, paused = which.queues or (), which.tasks or (), snapshot.paused
    params: dict[str, Any] = {
        "p_now": now,
        "p_limit": limit,
        "p_token": str(uuid.uuid4()),
        "p_owner": which.worker_id,
        **st.in_list_params("p_queues", queues),
        **st.in_list_params("p_tasks", tasks),
        **st.in_list_params("p_skip_queues", paused),
    }
    return params, (len(queues), len(tasks), len(paused))


def complete_and_claim(
    conn: Connection,
    db: Database,
    acks: Sequence[dict[str, Any]],
    which: ClaimFilter,
    limit: int,
    now: float,
    ahead: int,
) -> tuple[set[tuple[str, int]], list[Lease]]:
    """PostgreSQL, with no running quota or throttle (:func:`one_statement`): write the
    completions ``acks`` (COMPLETE_BATCH's rows) and claim up to ``limit`` jobs to start at
    once and ``ahead`` more, in ONE statement (statements.turn_statement) on an autocommit
    connection, its own transaction. Returns the (job id, attempt) of the acks that matched
    their lease, and the new leases: those started at once first, each part in claim order."""
    if which.tasks == () or which.queues == ():  # an empty list allows nothing: only the acks
        limit = ahead = 0
    params, shape = _filter(which, cache_for(db).get(conn), limit + ahead, now)
    params |= {"p_start": limit, "p_rows": st.encode_batch(acks)}
    acked: set[tuple[str, int]] = set()
    taken = []
    for row in direct.execute_sql(conn, db, st.turn_statement(*shape), params):
        if row.id is None:
            acked.add((row.acked_id, row.acked_number))
        else:
            taken.append(row)
    taken.sort(key=lambda row: (row.started_at is None, *_claim_order(row)))
    return acked, [lease_from_row(row, params["p_token"], now) for row in taken]


def _skip_throttled(
    params: dict[str, Any], held: throttling.HoldBack, paused: Sequence[str], shape: tuple[int, ...]
) -> tuple[int, ...]:
    """Bind what a claim under throttles leaves out, and its limit; the statement's shape."""
    skipped = (*paused, *held.skip_queues)
    params |= st.in_list_params("p_skip_queues", skipped)
    params |= st.in_list_params("p_skip_tasks", held.skip_tasks) | st.in_list_params("p_skip_users", held.skip_users)
    params["p_limit"] = held.limit
    return (*shape[:2], len(skipped), len(held.skip_tasks), len(held.skip_users))


def _take(conn: Connection, db: Database, statement: Any, params: dict[str, Any]) -> list[Any]:
    """Run a claim on PostgreSQL, as SQL text compiled once (the round trip is the cost
    there, and SQLAlchemy's work around a compiled statement adds a tenth of a millisecond
    to each)."""
    return list(direct.execute_sql(conn, db, statement, params))


def _take_sqlite(
    conn: Connection, db: Database, shape: tuple[int, ...], params: dict[str, Any], limit: int, ahead: int
) -> list[Any]:
    """SQLite: take up to ``limit`` jobs to start now and ``ahead`` more, in claim order, in
    two statements of one step each, whatever the number (statements.sqlite_pick_rows: why):
    read the picked rows as one JSON array, then take them by id. The transaction holds the
    database write lock, so no one changes them between the two. Rows as RETURNING would give
    them: ``attempts`` counts the attempt this claim starts.

    An array longer than SQLite allows a string (SQLITE_MAX_LENGTH, 1 GB by default: a
    thousand jobs of a megabyte each) is read in smaller picks, each taken before the next."""
    wanted, rows = limit + ahead, list[_Claimed]()
    chunk = wanted
    while len(rows) < wanted:
        count = min(chunk, wanted - len(rows))
        try:
            found = direct.execute(conn, db, st.sqlite_pick_rows(*shape), {**params, "p_limit": count}).rows
        except sqlite3.DataError as exc:  # SQLITE_TOOBIG: the array; one job alone always fits a payload
            if count == 1 or "too big" not in str(exc):
                raise
            chunk = count // 2
            continue
        picked = sorted(map(_claimed, json.loads(found[0].picked)), key=_claim_order)
        if not picked:
            break
        taking = {**params, "p_ids": st.encode_batch([row.id for row in picked]), "p_start": limit - len(rows)}
        taken = direct.execute(conn, db, st.SQLITE_TAKE, taking).rowcount
        if taken != len(picked):  # cannot happen under the write lock: refuse rather than run jobs not held
            raise RuntimeError(f"claim: took {taken} of the {len(picked)} jobs picked in the same transaction")
        rows += picked
        if len(picked) < count:  # nothing more is runnable
            break
    return rows


def _claimed(row: list[Any]) -> _Claimed:
    """A row of sqlite_pick_rows' array as RETURNING would have given it: ``attempts``
    counts the attempt the claim starts; the REAL columns read back from quote()'s text."""
    found = _Claimed._make(row)
    return found._replace(
        attempts=found.attempts + 1,
        lease_seconds=float(found.lease_seconds),
        timeout_seconds=None if found.timeout_seconds is None else float(found.timeout_seconds),
        fair_rank=float(found.fair_rank),
        run_at=float(found.run_at),
    )


class _Claimed(NamedTuple):
    """A claimed row on SQLite (see _take_sqlite): statements.CLAIMED_COLUMNS, in order."""

    id: str
    task: str
    payload: str
    user_id: str
    queue: str
    attempts: int
    max_retries: int
    lease_seconds: float
    timeout_seconds: float | None
    priority: int
    fair_rank: float
    run_at: float
    trace_context: str | None


def _claim_order(row: Any) -> tuple[int, float]:
    return (-row.priority, row.fair_rank)


def _claim_within_quotas(
    conn: Connection,
    db: Database,
    shape: tuple[int, ...],
    params: dict[str, Any],
    limit: int,
) -> Sequence[Any]:
    params = {**params, "p_default_quota": db.settings.max_running_per_user}
    if db.is_sqlite:  # one statement: the transaction holds the database write lock
        one = quota_sql.sqlite_quota_claim(*shape)
        return list(direct.execute(conn, db, one, {**params, "p_overfetch": limit * OVERFETCH}).rows)
    # The limits are fixed in the SQL (a statement per limit, planned once each).
    queues, tasks, skip_queues, *skip = shape
    statement = quota_sql.postgres_quota_claim(queues, tasks, skip_queues, limit, limit * OVERFETCH, *skip)
    del params["p_limit"]
    for attempt in range(len(CONTENDED_PAUSES) + 1):
        rows = direct.execute_sql(conn, db, statement, params)
        if rows[0].missing:
            # Committed at once, on a connection of their own, so every claimer can lock
            # them from its next statement; without a row a user's jobs are never taken.
            _add_user_locks(db, rows[0].missing)
        taken = [row for row in rows if row.id is not None]
        if taken or not rows[0].passed:
            return taken
        # Every candidate was passed over: its user's row was missing (added above), or
        # held by another claimer (free once that claim commits), or just changed. Try
        # again, each statement with a new snapshot, rather than leave a slot idle.
        if attempt < len(CONTENDED_PAUSES):
            time.sleep(CONTENDED_PAUSES[attempt])
    return []


def _add_user_locks(db: Database, users: Sequence[str]) -> None:
    """Outside the claim's transaction: it never waits on a lock while holding its own."""
    with db.engine.begin() as conn:
        conn.execute(quota_sql.ADD_USER_LOCKS, {"users": sorted(users)})


def forget_idle_users(db: Database) -> int:
    """Delete the quota lock rows of users with nothing pending or running (PostgreSQL);
    a user who submits again gets a new row from the first claim that meets them."""
    if db.is_sqlite:
        return 0
    with db.write() as conn:
        return conn.execute(quota_sql.FORGET_IDLE_USER_LOCKS).rowcount


def running_by_user(conn: Connection, users: list[str] | None = None) -> dict[str, int]:
    query = st.RUNNING_BY_USER
    if users is not None:
        query = sa.select(jobs.c.user_id, sa.func.count()).where(IS_RUNNING, jobs.c.user_id.in_(users))
        query = query.group_by(jobs.c.user_id)
    return {user: int(n) for user, n in conn.execute(query)}


def lease_from_row(row: Any, token: str, started_at: float) -> Lease:
    return Lease(
        job_id=row.id,
        token=token,
        task=row.task,
        payload=json.loads(row.payload),
        user_id=row.user_id,
        queue=row.queue,
        attempt=row.attempts,
        max_retries=row.max_retries,
        lease_seconds=row.lease_seconds,
        timeout_seconds=row.timeout_seconds,
        started_at=started_at,
        run_at=row.run_at,
        trace_context=row.trace_context,
    )
