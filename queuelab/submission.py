"""Checks every argument of ``submit`` before anything is written, and turns a valid
submission into a row."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from queuelab import bounds
from queuelab.config import Settings
from queuelab.errors import InvalidArgument, PayloadTooLarge
from queuelab.ids import new_ids
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
    # Jobs this one runs after, once all have COMPLETED: stored jobs (ids or Jobs), or
    # submissions earlier or later in the same submit_many batch.
    after: Sequence[str | Job | Submission] = ()


def parents_of(subs: Sequence[Submission], rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Each new job's parents as job ids (``after``), checked: a list of at most
    MAX_DEPENDENCIES ids, Jobs or submissions of this batch, and no cycle in the batch."""
    row_of = {id(sub): row["id"] for sub, row in zip(subs, rows, strict=True)}
    parents: dict[str, list[str]] = {}
    for sub, row in zip(subs, rows, strict=True):
        if sub.after:
            parents[row["id"]] = [_parent_id(ref, row_of) for ref in _after_list(sub.after)]
    _check_acyclic(parents)
    return parents


def _after_list(after: object) -> list[object]:
    if isinstance(after, str | bytes) or not isinstance(after, Sequence):
        raise InvalidArgument(f"after must be a list of job ids, Jobs or Submissions, got {after!r}")
    if len(after) > bounds.MAX_DEPENDENCIES:
        raise InvalidArgument(f"after may name at most {bounds.MAX_DEPENDENCIES} jobs, got {len(after)}")
    return list(after)


def _parent_id(ref: object, row_of: dict[int, str]) -> str:
    if isinstance(ref, Job):
        return ref.id
    if isinstance(ref, Submission):
        if id(ref) not in row_of:
            raise InvalidArgument("after names a Submission that is not in this submit_many batch")
        return row_of[id(ref)]
    if isinstance(ref, str):
        return check_job_id(ref, "after")
    raise InvalidArgument(f"after must hold job ids, Jobs or Submissions, got {type(ref).__name__}")


def _check_acyclic(parents: dict[str, list[str]]) -> None:
    """:class:`InvalidArgument` if the batch's jobs wait for each other in a circle (only
    new jobs can: a stored job cannot wait for one not yet submitted)."""
    state: dict[str, str] = {}  # "open": on the path being walked; "done": no cycle through it
    for start in parents:
        if start in state:
            continue
        state[start] = "open"
        stack = [(start, iter(parents[start]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                stack.pop()
            elif state.get(child) == "open":
                raise InvalidArgument("after makes a cycle: these jobs would wait for each other forever")
            elif child in parents and child not in state:
                state[child] = "open"
                stack.append((child, iter(parents[child])))


def check_job_id(value: str, name: str = "job_id") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(f"{name} must name jobs by id (a UUID), got {value!r}") from None


def build_row(sub: Submission, task: Task, settings: Settings, now: float) -> dict[str, Any]:
    """The row that stores ``sub`` (a job of ``task``), checked: raises before anything is stored."""
    return RowBuilder(settings, now).row(sub, task)


class RowBuilder:
    """Builds the rows of one batch (``submit_many``) with every check of a submit, in the
    same order, doing once per batch what each row would repeat: the checks of the values
    rows share (a bulk submit names the same few queues, users, priorities and durations;
    the checks are pure, so an equal value of the same type passes or fails alike) and
    the random bytes of the ids. Measured on 1,000 rows a call: 9.6 -> 4.6 µs of CPU a row."""

    def __init__(self, settings: Settings, now: float, count: int = 1) -> None:
        self.settings = settings
        self.now = now
        self._ids = iter(new_ids(count))
        self._checked: dict[tuple[Callable[[Any], Any], type, Any], Any] = {}

    def row(self, sub: Submission, task: Task) -> dict[str, Any]:
        settings = self.settings
        text = _payload_text(sub.payload, task, settings.max_payload_bytes)
        max_retries = sub.max_retries if sub.max_retries is not None else task.max_retries
        lease = sub.lease_seconds if sub.lease_seconds is not None else task.lease_seconds
        timeout = sub.timeout_seconds if sub.timeout_seconds is not None else task.timeout_seconds
        once = self._once
        return {
            "id": next(self._ids),
            "queue": once(check_queue, sub.queue if sub.queue is not None else task.queue),
            "task": task.name,
            "payload": text,
            "user_id": once(check_user_id, sub.user_id),
            "status": JobStatus.PENDING,
            "priority": once(_priority, sub.priority if sub.priority is not None else task.priority),
            "run_at": _run_at(sub.delay, sub.run_at, self.now),
            "attempts": 0,
            "max_retries": once(_max_retries, max_retries if max_retries is not None else settings.max_retries),
            "lease_seconds": once(_lease_seconds, lease if lease is not None else settings.lease_seconds),
            "timeout_seconds": None if timeout is None else once(_timeout_seconds, timeout),
            "forced": False,
            "idempotency_key": None if sub.idempotency_key is None else _idempotency_key(sub.idempotency_key),
            "created_at": self.now,
        }

    def _once(self, check: Callable[[Any], Any], value: Any) -> Any:
        """``check(value)``, run once per batch for each plain value (a str, an int or a
        float, by exact type: True is not 1 here); a failed check is not kept."""
        kind = type(value)
        if kind is not str and kind is not int and kind is not float:
            return check(value)
        key = (check, kind, value)
        try:
            return self._checked[key]
        except KeyError:
            found = self._checked[key] = check(value)
            return found


# The checks' encoder (json.dumps with these arguments makes one per call). Its output is
# ASCII (ensure_ascii, the default), so its length is its size in bytes.
_ENCODE = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _payload_text(payload: Any, task: Task, limit: int) -> str:
    """The payload as stored (JSON text), checked: a dict, JSON-serialisable, within the
    size limit, and fitting the task (its arguments and its own check)."""
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise InvalidArgument(f"payload must be a JSON object (a dict), got {type(payload).__name__}")
    try:
        text: str = _ENCODE(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"payload must be JSON-serialisable (no NaN or Infinity): {exc}") from None
    if len(text) > limit:
        raise PayloadTooLarge(f"payload is {len(text)} bytes; the limit is {limit} bytes")
    task.check_payload(payload)
    return text


def _max_retries(value: Any) -> int:
    return bounds.whole("max_retries", value, 0, bounds.MAX_RETRIES)


def _lease_seconds(value: Any) -> float:
    return bounds.seconds("lease_seconds", value, bounds.MAX_LEASE_SECONDS)  # a lease of a day at most


def _timeout_seconds(value: Any) -> float:
    return bounds.seconds("timeout_seconds", value, bounds.MAX_LEASE_SECONDS)  # a run of a day at most


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


def pending_job(row: dict[str, Any], payload: dict[str, Any], times: Instants | None = None) -> Job:
    """The Job just stored, built from its row (:func:`build_row`) without reading it back;
    ``times``: the datetimes of the batch's instants, made once each."""
    utc = (times or Instants()).utc
    return Job(
        id=row["id"],
        queue=row["queue"],
        task=row["task"],
        payload=payload,
        user_id=row["user_id"],
        status=JobStatus.PENDING,
        priority=row["priority"],
        run_at=utc(row["run_at"]),
        attempts=0,
        max_retries=row["max_retries"],
        lease_seconds=row["lease_seconds"],
        timeout_seconds=row["timeout_seconds"],
        lease_token=None,
        lease_owner=None,
        lease_expires_at=None,
        result=None,
        forced=False,
        created_at=utc(row["created_at"]),
        started_at=None,
        finished_at=None,
        idempotency_key=row["idempotency_key"],
    )


class Instants:
    """Epoch seconds as UTC datetimes, each made once: the Jobs of one batch share them
    (datetimes are immutable)."""

    def __init__(self) -> None:
        self._made: dict[float, datetime] = {}

    def utc(self, epoch: float) -> datetime:
        found = self._made.get(epoch)
        if found is None:
            found = self._made[epoch] = datetime.fromtimestamp(epoch, UTC)
        return found
