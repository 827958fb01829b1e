"""Schedules as records: define (insert or change), list, pause, resume, delete, and the
one write that enqueues a schedule's ticks (:meth:`ScheduleStore.advance`).

Exactly once across processes and machines rests on two guards in one transaction, neither
a leader lock: the compare-and-set of ``next_run_at`` (only the scheduler that read the
current value moves it; the others match no row and write nothing), and the jobs' unique
idempotency key, one per schedule and tick (``schedule:<name>:<tick>``), which refuses a
second job for a tick even if the first guard were bypassed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from queuelab.errors import ScheduleNotFound
from queuelab.models import to_datetime
from queuelab.schedules import Schedule, ScheduleSpec, TickPlan, next_tick
from queuelab.store.database import Database
from queuelab.store.jobs import JobStore
from queuelab.store.schema import schedules

_DEFINITION = ("task", "cron", "timezone", "payload", "queue", "priority", "user_id", "catch_up")


def _definition_row(spec: ScheduleSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "task": spec.task,
        "cron": spec.cron,
        "timezone": spec.timezone,
        "payload": json.dumps(spec.payload, separators=(",", ":"), sort_keys=True),
        "queue": spec.queue,
        "priority": spec.priority,
        "user_id": spec.user_id,
        "catch_up": spec.catch_up,
    }


def schedule_from_row(row: Mapping[Any, Any]) -> Schedule:
    spec = ScheduleSpec(
        name=row["name"],
        task=row["task"],
        cron=row["cron"],
        timezone=row["timezone"],
        payload=json.loads(row["payload"]),
        queue=row["queue"],
        priority=row["priority"],
        user_id=row["user_id"],
        catch_up=row["catch_up"],
    )
    return Schedule(
        spec=spec,
        paused=bool(row["paused"]),
        next_run_at=_dt(row["next_run_at"]),
        last_tick_at=to_datetime(row["last_tick_at"]),
        last_job_id=row["last_job_id"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
    )


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def define(self, spec: ScheduleSpec, now: float) -> Schedule:
        """Insert the schedule, or change its definition if it differs (one statement, so
        workers starting together do not race). A changed cron or time zone starts again
        from the next tick after ``now``; a pause stays."""
        row = {**_definition_row(spec), "paused": False, "created_at": now, "updated_at": now}
        row["next_run_at"] = next_tick(spec.cron, spec.timezone, now)
        insert = (postgresql.insert if not self.db.is_sqlite else sqlite.insert)(schedules).values(row)
        new = insert.excluded
        timing_changed = sa.or_(schedules.c.cron != new.cron, schedules.c.timezone != new.timezone)
        changes: dict[str, Any] = {name: new[name] for name in _DEFINITION}
        changes["updated_at"] = new.updated_at
        changes["next_run_at"] = sa.case((timing_changed, new.next_run_at), else_=schedules.c.next_run_at)
        differs = sa.or_(*(schedules.c[name].is_distinct_from(new[name]) for name in _DEFINITION))
        with self.db.write() as conn:
            conn.execute(insert.on_conflict_do_update(index_elements=["name"], set_=changes, where=differs))
        return self.get(spec.name)

    def get(self, name: str) -> Schedule:
        with self.db.read() as conn:
            row = conn.execute(sa.select(schedules).where(schedules.c.name == name)).mappings().first()
        if row is None:
            raise ScheduleNotFound(f"no schedule is named {name!r}")
        return schedule_from_row(row)

    def all(self) -> list[Schedule]:
        """Every schedule, by name."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(schedules).order_by(schedules.c.name)).mappings().all()
        return [schedule_from_row(row) for row in rows]

    def due(self, now: float) -> list[Schedule]:
        """The schedules not paused whose next tick is at or before ``now``."""
        query = sa.select(schedules).where(~schedules.c.paused, schedules.c.next_run_at <= now)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(schedules.c.next_run_at)).mappings().all()
        return [schedule_from_row(row) for row in rows]

    def nearest(self) -> float | None:
        """The earliest next tick of the schedules not paused (None: there are none)."""
        with self.db.read() as conn:
            found = conn.execute(sa.select(sa.func.min(schedules.c.next_run_at)).where(~schedules.c.paused))
            value = found.scalar()
        return None if value is None else float(value)

    def set_paused(self, name: str, paused: bool, now: float) -> Schedule:
        """Pause, or resume from the next tick after ``now`` (the ticks of the pause are
        not caught up). Doing it twice changes nothing."""
        current = self.get(name)
        changes: dict[str, Any] = {"paused": paused}
        if current.paused != paused:
            changes["updated_at"] = now
            if not paused:
                changes["next_run_at"] = next_tick(current.spec.cron, current.spec.timezone, now)
        with self.db.write() as conn:
            conn.execute(schedules.update().where(schedules.c.name == name).values(changes))
        return self.get(name)

    def delete(self, name: str) -> None:
        """Delete the schedule (its jobs stay); :class:`ScheduleNotFound` if there is none."""
        with self.db.write() as conn:
            gone = conn.execute(schedules.delete().where(schedules.c.name == name)).rowcount
        if not gone:
            raise ScheduleNotFound(f"no schedule is named {name!r}")

    def advance(
        self, schedule: Schedule, plan: TickPlan, rows: list[dict[str, Any]], jobs: JobStore, now: float
    ) -> bool:
        """Move the schedule from the next tick it was read with to ``plan.next_run_at`` and
        insert ``rows`` (the plan's ticks' jobs), all in one transaction; False, and nothing
        written, if another scheduler moved it first (or it was paused or changed since).

        The update comes first: on PostgreSQL it locks the row, so a second scheduler's
        update waits for this commit, then finds ``next_run_at`` moved and matches nothing;
        on SQLite the write transaction holds the database lock."""
        expected = schedule.next_run_at.timestamp()
        moved: dict[str, Any] = {"next_run_at": plan.next_run_at}
        if rows:
            moved.update(last_tick_at=plan.ticks[-1], last_job_id=rows[-1]["id"])
        guard = (schedules.c.name == schedule.name, schedules.c.next_run_at == expected, ~schedules.c.paused)
        with self.db.write() as conn:
            if conn.execute(schedules.update().where(*guard).values(moved)).rowcount != 1:
                return False
            existing = jobs.insert_in(conn, rows, now)
            if existing and rows:  # a tick's job stored before (not by this code path): point at it
                job = existing.get(rows[-1]["idempotency_key"])
                if job is not None:
                    conn.execute(schedules.update().where(guard[0]).values(last_job_id=job.id))
        return True
