"""The autoscaling decision log: every change of a pool's size, with the metrics and the
reason behind it, kept in the store so stats, the API and the dashboard can show it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from queuelab.store.database import Database
from queuelab.store.schema import scale_events

KEEP_ROWS = 10_000  # newest rows kept, whatever their age
MAX_REASON_LENGTH = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleEvent:
    """One change of a pool's size."""

    id: int
    at: datetime  # UTC
    pool_id: str  # the autoscaler: host:pid:random
    hostname: str
    backlog: int  # runnable backlog when it decided
    running: int  # jobs RUNNING when it decided
    workers_before: int
    workers_after: int
    reason: str

    @property
    def change(self) -> int:
        return self.workers_after - self.workers_before


class ScaleLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        *,
        at: float,
        pool_id: str,
        hostname: str,
        backlog: int,
        running: int,
        workers_before: int,
        workers_after: int,
        reason: str,
        keep_seconds: float | None = None,
    ) -> ScaleEvent:
        """Store one change; in the same transaction drop rows older than ``keep_seconds``
        (None: by count only) and all but the newest ``KEEP_ROWS``."""
        row: dict[str, Any] = {
            "at": at,
            "pool_id": pool_id,
            "hostname": hostname,
            "backlog": backlog,
            "running": running,
            "workers_before": workers_before,
            "workers_after": workers_after,
            "reason": reason[:MAX_REASON_LENGTH],
        }
        with self.db.write() as conn:
            inserted = conn.execute(scale_events.insert().values(**row)).inserted_primary_key
            assert inserted is not None
            new_id = int(inserted[0])
            if keep_seconds is not None:
                conn.execute(scale_events.delete().where(scale_events.c.at < at - keep_seconds))
            conn.execute(scale_events.delete().where(scale_events.c.id <= new_id - KEEP_ROWS))
        return _event({"id": new_id, **row})

    def recent(self, limit: int = 50) -> list[ScaleEvent]:
        """The newest ``limit`` changes, newest first."""
        query = sa.select(scale_events).order_by(scale_events.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            return [_event(dict(row)) for row in conn.execute(query).mappings()]


def _event(row: dict[str, Any]) -> ScaleEvent:
    return ScaleEvent(**{**row, "id": int(row["id"]), "at": datetime.fromtimestamp(row["at"], UTC)})
