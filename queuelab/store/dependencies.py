"""Jobs that run after others: ``submit(..., after=[...])``.

A job with parents that have not all COMPLETED is stored PENDING with its ``run_at`` at
:data:`BLOCKED_RUN_AT`, its priority below every real one (:func:`blocked_priority`), a
count of the parents it waits for (``waiting_for``) and one row per such parent in
``queuelab_dependencies``. The claim does not change: a blocked job is never due, and sits
after every runnable job in the claim's order, so claims cost what they cost without
dependencies; the runnable backlog, the autoscaler and the idle workers' sleep do not count
it. When a parent completes, a trigger
in the database (``RELEASE_TRIGGER`` in :mod:`queuelab.store.schema`) counts one parent
fewer for each of its waiting children and makes the children it was the last for due
(at ``ready_at``, when they asked to run, or at once), on every path that completes a job.

A parent that ends in the dead-letter queue or is cancelled holds its children: they stay
PENDING and blocked (``explain`` names the parent and its state) until the parent is
requeued and completes, or is forced to success; or until they are cancelled themselves.

The parents' rows are locked (PostgreSQL: ``FOR UPDATE``; SQLite: the write lock) while a
child is linked to them, so a parent that completes at that moment either counts as
completed for the child, or completes after the link and releases it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.errors import InvalidArgument
from queuelab.models import JobStatus
from queuelab.store.database import Database
from queuelab.store.schema import dependencies, jobs

BLOCKED_RUN_AT = 253_402_300_799.0  # 9999-12-31T23:59:59Z: later than any job may be scheduled


def blocked_priority(priority: Any) -> Any:
    """The priority a blocked job is stored with: ``-1 - priority``, below every real one
    (0 to 9). The claim reads the PENDING jobs in (priority desc, fair rank) order and skips
    those not due: stored at their own priority, blocked jobs ranked ahead of runnable ones
    were read and skipped by every claim (10,000 of them made a claim 8 times slower);
    stored below, a claim meets them only once every runnable job is taken. Its own
    inverse: the release (and :func:`shown_priority`) turns it back."""
    return -1 - priority


def shown_priority(stored: int) -> int:
    """The priority a job was submitted with, from the stored one."""
    return blocked_priority(stored) if stored < 0 else stored


Parents = Mapping[str, Sequence[str]]  # a new job's id -> the ids of the jobs it runs after


def check_parents_exist(conn: Connection, parents: Parents, new_ids: set[str]) -> None:
    """:class:`InvalidArgument` naming the first parent id that is neither stored nor new."""
    wanted = sorted({p for ids in parents.values() for p in ids} - new_ids)
    found = _statuses(conn, wanted, lock=False)
    missing = [p for p in wanted if p not in found]
    if missing:
        raise InvalidArgument(f"after names no job with id {missing[0]!r}")


def block(rows: Sequence[dict[str, Any]], parents: Parents) -> dict[str, float]:
    """Before the insert: every row with parents waits; returns the run_at each asked for."""
    ready = {}
    for row in rows:
        if parents.get(row["id"]):
            ready[row["id"]] = row["run_at"]
            row["run_at"] = BLOCKED_RUN_AT
    return ready


def link(conn: Connection, db: Database, ready: Mapping[str, float], parents: Parents) -> None:
    """After the insert, in its transaction: count each blocked job's unfinished parents,
    record the edges, mark the parents; a job whose parents all completed is due at once.
    ``ready``: the blocked jobs' ids and the run_at each asked for (:func:`block`)."""
    stored = _existing(conn, list(ready))  # (a row an idempotency key replaced is not)
    statuses = _statuses(conn, sorted({p for child in ready for p in parents[child]}), lock=not db.is_sqlite)
    edges: list[dict[str, str]] = []
    for child, ready_at in ready.items():
        if child not in stored:
            continue
        waiting = sorted({p for p in parents[child] if statuses.get(p) != JobStatus.COMPLETED})
        values: dict[str, Any] = {"run_at": ready_at}
        if waiting:
            values = {"waiting_for": len(waiting), "priority": blocked_priority(jobs.c.priority)}
        conn.execute(jobs.update().where(jobs.c.id == child).values(ready_at=ready_at, **values))
        edges.extend({"child_id": child, "parent_id": p} for p in waiting)
    if edges:
        conn.execute(dependencies.insert(), edges)
        marked = sorted({edge["parent_id"] for edge in edges})
        conn.execute(jobs.update().where(jobs.c.id.in_(marked)).values(has_dependents=True))


def waiting_on(conn: Connection, job_id: str) -> list[tuple[str, str | None]]:
    """The parents ``job_id`` still waits for, with their status (None: no longer stored)."""
    query = (
        sa.select(dependencies.c.parent_id, jobs.c.status)
        .select_from(dependencies.outerjoin(jobs, jobs.c.id == dependencies.c.parent_id))
        .where(dependencies.c.child_id == job_id)
        .order_by(dependencies.c.parent_id)
    )
    return [(row.parent_id, row.status) for row in conn.execute(query)]


def forget(conn: Connection, job_ids: Sequence[str]) -> None:
    """Drop the edges of pruned jobs (as child or as parent)."""
    edge = sa.or_(dependencies.c.child_id.in_(job_ids), dependencies.c.parent_id.in_(job_ids))
    conn.execute(dependencies.delete().where(edge))


def _statuses(conn: Connection, ids: Sequence[str], *, lock: bool) -> dict[str, str]:
    if not ids:
        return {}
    query = sa.select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(ids))
    if lock:
        query = query.with_for_update()
    return {row.id: row.status for row in conn.execute(query)}


def _existing(conn: Connection, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    return set(conn.execute(sa.select(jobs.c.id).where(jobs.c.id.in_(ids))).scalars())
