"""The registry of worker processes: each registers, heartbeats, and says goodbye, so stats
can list the live ones."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from queuelab.store.database import Database
from queuelab.store.schema import workers


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    hostname: str
    pid: int
    queues: str
    concurrency: int
    mode: str
    started_at: float
    last_seen_at: float


class WorkerRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, info: WorkerInfo) -> None:
        with self.db.write() as conn:
            conn.execute(
                workers.insert().values(
                    id=info.id,
                    hostname=info.hostname,
                    pid=info.pid,
                    queues=info.queues,
                    concurrency=info.concurrency,
                    mode=info.mode,
                    started_at=info.started_at,
                    last_seen_at=info.last_seen_at,
                )
            )

    def beat(self, worker_id: str, now: float, concurrency: int | None = None) -> None:
        """Mark the worker seen; with ``concurrency``, also its current number of slots."""
        values: dict[str, float | int] = {"last_seen_at": now}
        if concurrency is not None:
            values["concurrency"] = concurrency
        with self.db.write() as conn:
            conn.execute(workers.update().where(workers.c.id == worker_id).values(**values))

    def resize(self, worker_id: str, concurrency: int, now: float) -> None:
        self.beat(worker_id, now, concurrency)

    def stop(self, worker_id: str, now: float) -> None:
        with self.db.write() as conn:
            conn.execute(workers.update().where(workers.c.id == worker_id).values(stopped_at=now, last_seen_at=now))

    def live(self, now: float, ttl_seconds: float) -> list[WorkerInfo]:
        query = (
            sa.select(*(workers.c[f] for f in WorkerInfo.__dataclass_fields__))
            .where(workers.c.stopped_at.is_(None), workers.c.last_seen_at >= now - ttl_seconds)
            .order_by(workers.c.started_at)
        )
        with self.db.read() as conn:
            return [WorkerInfo(**row) for row in conn.execute(query).mappings()]

    def forget(self, seen_before: float) -> int:
        with self.db.write() as conn:
            return conn.execute(workers.delete().where(workers.c.last_seen_at < seen_before)).rowcount
