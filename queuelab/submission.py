"""Checks every argument of ``submit`` before anything is written, and turns a valid
submission into a row."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from queuelab import bounds
from queuelab.config import Settings
from queuelab.errors import InvalidArgument, PayloadTooLarge
from queuelab.models import Job, JobStatus
from queuelab.tasks import Task


@dataclass(frozen=True, slots=True, kw_only=True)
class Submission:
    """One job as the caller asked for it; ``None`` means "the task's default"."""

    task: str
    payload: Any = None
    user_id: str = "default"
    queue: str | None = None
    priority: int | None = None
    delay: float | timedelta | None = None
    run_at: datetime | None = None
    max_retries: int | None = None
    lease_seconds: float | None = None
    timeout_seconds: float | None = None
    idempotency_key: str | None = None


def build_row(sub: Submission, task: Task, settings: Settings, now: float) -> dict[str, Any]:
    payload = {} if sub.payload is None else sub.payload
    if not isinstance(payload, dict):
        raise InvalidArgument(f"payload must be a JSON object (a dict), got {type(payload).__name__}")
    text = _json(payload)
    size = len(text.encode())
    if size > settings.max_payload_bytes:
        raise PayloadTooLarge(f"payload is {size} bytes; the limit is {settings.max_payload_bytes} bytes")
    task.check_payload(payload)
    max_retries = _pick(sub.max_retries, task.max_retries, settings.max_retries)
    lease = _pick(sub.lease_seconds, task.lease_seconds, settings.lease_seconds)
    timeout = sub.timeout_seconds if sub.timeout_seconds is not None else task.timeout_seconds
    most = bounds.MAX_LEASE_SECONDS  # a job may hold its lease, or run, a day at most
    return {
        "id": str(uuid.uuid4()),
        "queue": check_queue(sub.queue if sub.queue is not None else task.queue),
        "task": task.name,
        "payload": text,
        "user_id": check_user_id(sub.user_id),
        "status": JobStatus.PENDING,
        "priority": _priority(sub.priority if sub.priority is not None else task.priority),
        "run_at": _run_at(sub.delay, sub.run_at, now),
        "attempts": 0,
        "max_retries": bounds.whole("max_retries", max_retries, 0, bounds.MAX_RETRIES),
        "lease_seconds": bounds.seconds("lease_seconds", lease, most),
        "timeout_seconds": None if timeout is None else bounds.seconds("timeout_seconds", timeout, most),
        "forced": False,
        "idempotency_key": _idempotency_key(sub.idempotency_key),
        "created_at": now,
    }


def _pick(*choices: Any) -> Any:
    return next(c for c in choices if c is not None)


def _json(payload: dict[str, Any]) -> str:
    try:
        return json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"payload must be JSON-serialisable (no NaN or Infinity): {exc}") from None


def check_queue(name: Any) -> str:
    if not isinstance(name, str) or not bounds.QUEUE_NAME.fullmatch(name):
        raise InvalidArgument(
            f"queue must be 1 to {bounds.MAX_QUEUE_NAME_LENGTH} letters, digits, _ . or -, got {name!r}"
        )
    return name


def _encodable(text: str) -> bool:
    """False for strings no database can store: NUL, or lone surrogates (not UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_user_id(user_id: Any) -> str:
    if (
        not isinstance(user_id, str)
        or not user_id.strip()
        or len(user_id) > bounds.MAX_USER_ID_LENGTH
        or not _encodable(user_id)
    ):
        raise InvalidArgument(
            f"user_id must be a non-empty string of at most {bounds.MAX_USER_ID_LENGTH} characters without NUL, "
            f"got {user_id!r}"
        )
    return user_id


def _priority(priority: Any) -> int:
    return bounds.whole("priority", priority, bounds.PRIORITY_MIN, bounds.PRIORITY_MAX)


def _run_at(delay: Any, run_at: Any, now: float) -> float:
    if delay is not None and run_at is not None:
        raise InvalidArgument("give delay or run_at, not both")
    if run_at is not None:
        if not isinstance(run_at, datetime) or run_at.tzinfo is None:
            raise InvalidArgument(f"run_at must be a timezone-aware datetime, got {run_at!r}")
        return run_at.timestamp()
    if delay is None:
        return now
    return now + bounds.seconds("delay", delay, bounds.MAX_DELAY_SECONDS, zero_ok=True)


def _idempotency_key(key: Any) -> str | None:
    if key is None:
        return None
    most = bounds.MAX_IDEMPOTENCY_KEY_LENGTH
    if not isinstance(key, str) or not 0 < len(key) <= most or not _encodable(key):
        raise InvalidArgument(f"idempotency_key must be a string of 1 to {most} characters without NUL, got {key!r}")
    return key


def without_check(task: Task) -> Task:
    """The task without its payload check (the default payload {} may not satisfy it)."""
    return Task(
        name=task.name,
        fn=lambda **_: None,
        queue=task.queue,
        priority=task.priority,
        max_retries=task.max_retries,
        lease_seconds=task.lease_seconds,
        timeout_seconds=task.timeout_seconds,
    )


def pending_job(row: dict[str, Any], payload: dict[str, Any]) -> Job:
    """The Job just stored, built from its row (:func:`build_row`) without reading it back."""
    return Job(
        id=row["id"],
        queue=row["queue"],
        task=row["task"],
        payload=payload,
        user_id=row["user_id"],
        status=JobStatus.PENDING,
        priority=row["priority"],
        run_at=_utc(row["run_at"]),
        attempts=0,
        max_retries=row["max_retries"],
        lease_seconds=row["lease_seconds"],
        timeout_seconds=row["timeout_seconds"],
        lease_token=None,
        lease_owner=None,
        lease_expires_at=None,
        result=None,
        forced=False,
        created_at=_utc(row["created_at"]),
        started_at=None,
        finished_at=None,
        idempotency_key=row["idempotency_key"],
    )


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
