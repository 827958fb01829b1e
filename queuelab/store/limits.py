"""Per-user limits and paused queues, stored in the database so every process sees a
change at once."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from queuelab.config import Settings
from queuelab.limits import OFF_RATE, RateLimit, UserLimits
from queuelab.store.database import Database
from queuelab.store.schema import limits, queues

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

    def stored(self) -> dict[str, UserLimits]:
        with self.db.read() as conn:
            return read_all(conn)

    def effective(self, users: list[str]) -> dict[str, UserLimits]:
        with self.db.read() as conn:
            return effective(conn, self.settings, users)

    def pause(self, queue: str, paused: bool, now: float) -> None:
        with self.db.write() as conn:
            updated = conn.execute(queues.update().where(queues.c.name == queue).values(paused=paused, updated_at=now))
            if updated.rowcount == 0:
                conn.execute(queues.insert().values(name=queue, paused=paused, updated_at=now))
            if not paused:
                self.db.notify(conn, queue)

    def paused(self) -> list[str]:
        with self.db.read() as conn:
            return paused_queues(conn)


def read_all(conn: Connection) -> dict[str, UserLimits]:
    return {row.user_id: _from_row(row) for row in conn.execute(sa.select(limits))}


def effective(conn: Connection, settings: Settings, users: list[str]) -> dict[str, UserLimits]:
    """Each user's limits: their own row, else the ``*`` row, else the settings."""
    wanted = [*users, DEFAULTS]
    rows = {r.user_id: _from_row(r) for r in conn.execute(sa.select(limits).where(limits.c.user_id.in_(wanted)))}
    base = rows.get(DEFAULTS, UserLimits()).over(settings_limits(settings))
    return {user: rows.get(user, UserLimits()).over(base) for user in users}


def any_running_quota(conn: Connection, settings: Settings) -> dict[str, int | None] | None:
    """None if no running quota is set anywhere (the claim can skip quota work); else
    {user or "*": quota} with the default under "*"."""
    rows = conn.execute(sa.select(limits.c.user_id, limits.c.max_running).where(limits.c.max_running.is_not(None)))
    quotas: dict[str, int | None] = {user: quota for user, quota in rows}
    default = quotas.get(DEFAULTS, settings.max_running_per_user)
    quotas[DEFAULTS] = default or None
    if not any(quotas.values()):
        return None
    return quotas


def paused_queues(conn: Connection) -> list[str]:
    return list(conn.execute(sa.select(queues.c.name).where(queues.c.paused.is_(True))).scalars())


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
