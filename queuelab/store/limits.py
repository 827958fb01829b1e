"""Per-user limits and paused queues, stored in the database so every process sees a
change at once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.config import Settings
from queuelab.limits import OFF_RATE, RateLimit, UserLimits
from queuelab.store.database import Database
from queuelab.store.schema import limits, queues, starts, throttles
from queuelab.throttles import Scope, Throttle, key_of

DEFAULTS = "*"


def settings_limits(settings: Settings) -> UserLimits:
    return UserLimits(settings.rate_limit, settings.max_active_per_user, settings.max_running_per_user, 1)


class LimitStore:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def set(self, user_id: str, values: UserLimits, now: float) -> None:
        """Store the fields of ``values`` for ``user_id`` (``*``: the defaults); None fields
        are cleared (fall back to the defaults)."""
        row = _to_row(values)
        with self.db.write() as conn:
            updated = conn.execute(limits.update().where(limits.c.user_id == user_id).values(**row, updated_at=now))
            if updated.rowcount == 0:
                conn.execute(limits.insert().values(user_id=user_id, **row, updated_at=now))
        cache_for(self.db).invalidate()

    def stored(self) -> dict[str, UserLimits]:
        with self.db.read() as conn:
            return read_all(conn)

    def effective(self, users: list[str]) -> dict[str, UserLimits]:
        """As claims and submits see them: from the snapshot cache, read afresh (one read
        transaction) only when it is stale."""
        return effective_in(cache_for(self.db).current(self.db), self.settings, users)

    def pause(self, queue: str, paused: bool, now: float) -> None:
        with self.db.write() as conn:
            updated = conn.execute(queues.update().where(queues.c.name == queue).values(paused=paused, updated_at=now))
            if updated.rowcount == 0:
                conn.execute(queues.insert().values(name=queue, paused=paused, updated_at=now))
            if not paused:
                self.db.notify(conn, queue)
        cache_for(self.db).invalidate()

    def set_throttle(self, scope: Scope, name: str, rate: RateLimit | None, now: float) -> None:
        """Store (or with None remove) the throttle of ``scope`` ``name``. Removing one
        also forgets its recorded starts, so setting it again starts from an empty window."""
        key = (throttles.c.scope == scope.value, throttles.c.name == name)
        with self.db.write() as conn:
            if rate is None:
                conn.execute(throttles.delete().where(*key))
                conn.execute(starts.delete().where(starts.c.key == key_of(scope, name)))
            else:
                row = {"count": rate.count, "window_seconds": rate.window_seconds, "updated_at": now}
                if conn.execute(throttles.update().where(*key).values(**row)).rowcount == 0:
                    conn.execute(throttles.insert().values(scope=scope.value, name=name, **row))
            self.db.notify(conn, "*")  # idle workers look again: a throttle may have been lifted
        cache_for(self.db).invalidate()

    def declare_task_throttles(self, declared: dict[str, RateLimit], now: float) -> None:
        """Store the throttles tasks declare (``@q.task(throttle=...)``; a worker does at
        start) where the stored ones differ, so every worker of a task holds to the same."""
        stored = {t.key: t.rate for t in self.throttles()} if declared else {}
        for task, rate in declared.items():
            if stored.get(key_of(Scope.TASK, task)) != rate:
                self.set_throttle(Scope.TASK, task, rate, now)

    def throttles(self) -> list[Throttle]:
        with self.db.read() as conn:
            return list(read_snapshot(conn).throttles)

    def paused(self) -> list[str]:
        with self.db.read() as conn:
            return paused_queues(conn)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every stored limit and the paused queues, as read at one moment."""

    limits: dict[str, UserLimits]
    paused: list[str]
    throttles: tuple[Throttle, ...] = ()
    # Each user's effective limits under some settings, resolved once per snapshot (every
    # submit needs them; merging the three levels cost 40 µs a call).
    resolved: dict[str, tuple[Settings, UserLimits]] = field(default_factory=dict, compare=False, repr=False)


SNAPSHOT_TTL_SECONDS = 0.5


class SnapshotCache:
    """Claims and submits read limits and paused queues on every call; re-reading two
    tables each time would cost more than the claim itself. A change made by this process
    is seen at once; one made by another process within SNAPSHOT_TTL_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._read_at = 0.0
        self._generation = 0  # bumped by invalidate(): a read begun before it is not kept

    def _fresh(self) -> Snapshot | None:
        """The cached snapshot if it is recent enough to use (the caller holds the lock)."""
        if self._snapshot is not None and time.monotonic() - self._read_at < SNAPSHOT_TTL_SECONDS:
            return self._snapshot
        return None

    def current(self, db: Database) -> Snapshot:
        """The snapshot, read in a transaction of its own only when the cached one is stale."""
        with self._lock:
            found = self._fresh()
        if found is not None:
            return found
        with db.read() as conn:
            return self.get(conn)

    def get(self, conn: Connection) -> Snapshot:
        """The snapshot, read on ``conn`` (in the caller's transaction) when stale."""
        with self._lock:
            found = self._fresh()
            if found is not None:
                return found
            generation = self._generation
        snapshot = read_snapshot(conn)
        with self._lock:
            if generation == self._generation:  # else a change landed meanwhile: not kept
                self._snapshot, self._read_at = snapshot, time.monotonic()
        return snapshot

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None
            self._generation += 1


def cache_for(db: Database) -> SnapshotCache:
    cache = db.caches.setdefault("limits", SnapshotCache())
    assert isinstance(cache, SnapshotCache)
    return cache


def read_snapshot(conn: Connection) -> Snapshot:
    stored = {row.user_id: _from_row(row) for row in conn.execute(sa.select(limits))}
    paused = list(conn.execute(sa.select(queues.c.name).where(queues.c.paused.is_(True))).scalars())
    columns = (throttles.c.scope, throttles.c.name, throttles.c["count"], throttles.c.window_seconds)
    rows = conn.execute(sa.select(*columns).order_by(throttles.c.scope, throttles.c.name))
    found = tuple(Throttle(Scope(scope), name, RateLimit(n, window)) for scope, name, n, window in rows)
    return Snapshot(stored, paused, found)


def read_all(conn: Connection) -> dict[str, UserLimits]:
    return read_snapshot(conn).limits


def effective_in(snapshot: Snapshot, settings: Settings, users: list[str]) -> dict[str, UserLimits]:
    """Each user's limits: their own row, else the ``*`` row, else the settings."""
    found = {}
    for user in users:
        known = snapshot.resolved.get(user)
        if known is None or known[0] is not settings:
            base = snapshot.limits.get(DEFAULTS, UserLimits()).over(settings_limits(settings))
            known = snapshot.resolved[user] = (settings, snapshot.limits.get(user, UserLimits()).over(base))
        found[user] = known[1]
    return found


def effective(conn: Connection, settings: Settings, users: list[str]) -> dict[str, UserLimits]:
    return effective_in(read_snapshot(conn), settings, users)


def running_quotas(snapshot: Snapshot, settings: Settings) -> dict[str, int | None] | None:
    """None if no running quota is set anywhere (the claim can skip quota work); else
    {user or "*": quota} with the default under "*"."""
    quotas: dict[str, int | None] = {
        user: lim.max_running for user, lim in snapshot.limits.items() if lim.max_running is not None
    }
    quotas[DEFAULTS] = quotas.get(DEFAULTS, settings.max_running_per_user) or None
    if not any(quotas.values()):
        return None
    return quotas


def paused_queues(conn: Connection) -> list[str]:
    return read_snapshot(conn).paused


def _to_row(values: UserLimits) -> dict[str, Any]:
    rate = values.rate_limit
    return {
        "rate_count": None if rate is None else rate.count,
        "rate_window_seconds": None if rate is None else rate.window_seconds,
        "max_active": values.max_active,
        "max_running": values.max_running,
        "weight": values.weight,
    }


def _from_row(row: Any) -> UserLimits:
    rate = None
    if row.rate_count is not None:
        rate = OFF_RATE if row.rate_count == 0 else RateLimit(row.rate_count, row.rate_window_seconds)
    return UserLimits(rate, row.max_active, row.max_running, row.weight)
