"""Read-only aggregate queries for stats, the dashboard and the notebooks."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from queuelab.models import AttemptOutcome
from queuelab.store.database import Database
from queuelab.store.schema import IS_PENDING, attempts, jobs

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
    "lease_owner",
    "created_at",
    "run_at",
    "started_at",
    "finished_at",
)


class Reports:
    def __init__(self, db: Database) -> None:
        self.db = db

    def counts(self) -> dict[tuple[str, str], int]:
        """{(queue, status): number of jobs}."""
        query = sa.select(jobs.c.queue, jobs.c.status, sa.func.count()).group_by(jobs.c.queue, jobs.c.status)
        with self.db.read() as conn:
            return {(q, s): n for q, s, n in conn.execute(query)}

    def oldest_runnable(self, now: float) -> float | None:
        """The earliest ``run_at`` among jobs that could run now."""
        query = sa.select(sa.func.min(jobs.c.run_at)).where(IS_PENDING, jobs.c.run_at <= now)
        with self.db.read() as conn:
            return conn.execute(query).scalar()

    def outcomes_since(self, since: float) -> dict[str, int]:
        """{attempt outcome: count} for attempts that finished at or after ``since``."""
        query = (
            sa.select(attempts.c.outcome, sa.func.count())
            .where(attempts.c.finished_at >= since)
            .group_by(attempts.c.outcome)
        )
        with self.db.read() as conn:
            counts = {str(o): n for o, n in conn.execute(query)}
        return {o.value: counts.get(o.value, 0) for o in AttemptOutcome}

    def job_rows(self, limit: int) -> list[dict[str, Any]]:
        query = sa.select(*(jobs.c[c] for c in FRAME_COLUMNS)).order_by(jobs.c.created_at.desc()).limit(limit)
        with self.db.read() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def attempt_rows(self, limit: int) -> list[dict[str, Any]]:
        columns = [c for c in attempts.c if c.name != "traceback"]
        query = sa.select(*columns).order_by(attempts.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
