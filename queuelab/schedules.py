"""Periodic jobs as values: a schedule's definition, checked once where it is made, and the
pure decision of which ticks a scheduler enqueues at ``now`` (:func:`plan_ticks`).

The cron arithmetic is croniter's (pallets-eco; the library Airflow schedules with): five
fields, or six with seconds last (``"*/10 * * * * *"``: every ten seconds), evaluated in the
schedule's IANA time zone, so ``"0 9 * * *"`` in ``Europe/Paris`` is 09:00 there on both
sides of a daylight-saving change. Nothing here parses cron by hand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from queuelab import bounds
from queuelab.errors import InvalidSchedule

# A tick enqueued up to this late is on time (a scheduler wakes at least once a second, and
# may wait for the database a little); later than this it was missed (the workers were
# down), and the schedule's ``catch_up`` decides whether it is enqueued.
GRACE_SECONDS = 5.0
MAX_CATCH_UP = 1000
MAX_NAME_LENGTH = 100
# No colon: the name is part of each tick's idempotency key, "schedule:<name>:<tick>".
SCHEDULE_NAME = re.compile(rf"^[A-Za-z0-9_.-]{{1,{MAX_NAME_LENGTH}}}$")
CRON_FORM = "a cron expression of 5 fields (minute hour day month weekday), or 6 with seconds last"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpec:
    """A periodic job as defined: which task, when, with what. ``queue`` and ``priority``
    None: the task's. Build it with :func:`check_spec`, which checks every field."""

    name: str
    task: str
    cron: str
    timezone: str = "UTC"
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    user_id: str = "default"
    catch_up: int = 0  # missed ticks enqueued after downtime, the latest first (0: skip them)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A stored schedule: its definition and its state. Times are UTC datetimes."""

    spec: ScheduleSpec
    paused: bool
    next_run_at: datetime  # the next tick to enqueue (while paused: when it was paused)
    last_tick_at: datetime | None  # the latest tick enqueued
    last_job_id: str | None  # that tick's job
    created_at: datetime
    updated_at: datetime  # of the definition, or pause/resume

    @property
    def name(self) -> str:
        return self.spec.name

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types (times as ISO 8601), for the API, the CLI and the control panel."""
        spec = self.spec
        return {
            "name": spec.name,
            "task": spec.task,
            "cron": spec.cron,
            "timezone": spec.timezone,
            "payload": spec.payload,
            "queue": spec.queue,
            "priority": spec.priority,
            "user_id": spec.user_id,
            "catch_up": spec.catch_up,
            "paused": self.paused,
            "next_run_at": self.next_run_at.isoformat(),
            "last_tick_at": None if self.last_tick_at is None else self.last_tick_at.isoformat(),
            "last_job_id": self.last_job_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What a scheduler does for one schedule at ``now``: enqueue ``ticks`` (epoch seconds,
    oldest first), move the schedule to ``next_run_at``, and say whether missed ticks were
    left out (``skipped_from``: the first of them; None: none were)."""

    ticks: tuple[float, ...]
    next_run_at: float
    skipped_from: float | None = None


def check_name(name: object) -> str:
    if not isinstance(name, str) or not SCHEDULE_NAME.fullmatch(name):
        raise InvalidSchedule(f"schedule name must be 1 to {MAX_NAME_LENGTH} letters, digits, _ . or -, got {name!r}")
    return name


def check_cron(cron: object) -> str:
    """The expression, stripped; :class:`InvalidSchedule` naming it and croniter's reason."""
    if not isinstance(cron, str) or not cron.strip():
        raise InvalidSchedule(f"cron must be {CRON_FORM}, got {cron!r}")
    try:
        croniter(cron.strip())
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidSchedule(f"cron must be {CRON_FORM}, got {cron!r}: {exc}") from exc
    return cron.strip()


def check_timezone(timezone: object) -> str:
    if not isinstance(timezone, str):
        raise InvalidSchedule(f"timezone must be an IANA time zone name such as 'Europe/Paris', got {timezone!r}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(
            f"timezone must be an IANA time zone name such as 'Europe/Paris' or 'UTC', got {timezone!r}"
        ) from exc
    return timezone


def check_spec(spec: ScheduleSpec) -> ScheduleSpec:
    """``spec`` with its cron expression stripped, once every field is checked (the task,
    payload, queue and priority are checked against the task by the facade)."""
    check_name(spec.name)
    if not isinstance(spec.payload, dict):
        raise InvalidSchedule(f"payload must be a JSON object (a dict), got {type(spec.payload).__name__}")
    bounds.whole("catch_up", spec.catch_up, 0, MAX_CATCH_UP)
    cron = check_cron(spec.cron)
    check_timezone(spec.timezone)
    return ScheduleSpec(
        name=spec.name,
        task=spec.task,
        cron=cron,
        timezone=spec.timezone,
        payload=json.loads(json.dumps(spec.payload)),  # a copy the caller cannot change later
        queue=spec.queue,
        priority=spec.priority,
        user_id=spec.user_id,
        catch_up=spec.catch_up,
    )


def next_tick(cron: str, timezone: str, after: float) -> float:
    """The first tick of ``cron`` in ``timezone`` strictly after ``after`` (epoch seconds)."""
    start = datetime.fromtimestamp(after, ZoneInfo(timezone))
    return float(croniter(cron, start).get_next(float))


def tick_key(name: str, tick: float) -> str:
    """The idempotency key of one tick's job: the database stores each key once, so a tick
    is one job however many schedulers enqueue it."""
    return f"schedule:{name}:{datetime.fromtimestamp(tick, UTC).isoformat()}"


def tick_of(name: str, key: str | None) -> float | None:
    """The tick (epoch seconds) an idempotency key names if it is one of schedule ``name``'s
    (:func:`tick_key`), else None."""
    prefix = f"schedule:{name}:"
    if key is None or not key.startswith(prefix):
        return None
    try:
        tick = datetime.fromisoformat(key.removeprefix(prefix))
    except ValueError:
        return None
    return None if tick.tzinfo is None else tick.timestamp()  # tick_key writes UTC, offset included


def plan_ticks(spec: ScheduleSpec, next_run_at: float, now: float) -> TickPlan | None:
    """The ticks to enqueue at ``now`` for a schedule whose next tick is ``next_run_at``;
    None if that tick is still to come. Ticks at most :data:`GRACE_SECONDS` late are on
    time and always enqueued; older ones were missed: the ``catch_up`` latest of them are
    enqueued too, the rest skipped. Walks back from ``now``, so a long downtime costs no
    more than the ticks it enqueues."""
    if next_run_at > now:
        return None
    on_time: list[float] = []
    missed: list[float] = []
    walk = croniter(spec.cron, datetime.fromtimestamp(int(now) + 1, ZoneInfo(spec.timezone)))
    while len(missed) <= spec.catch_up:
        tick = float(walk.get_prev(float))
        if tick < next_run_at:
            break
        (on_time if tick >= now - GRACE_SECONDS else missed).append(tick)
    skipped = None if len(missed) <= spec.catch_up else next_run_at
    kept = missed[: spec.catch_up]
    return TickPlan(tuple(sorted(kept + on_time)), next_tick(spec.cron, spec.timezone, now), skipped)
