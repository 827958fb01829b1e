"""The facade's argument checks: each takes what a caller passed to a :class:`~queuelab.Queue`
method and returns what the stores take, or raises :class:`~queuelab.errors.InvalidArgument`
(:class:`~queuelab.errors.JobNotFound` for a job id) naming the argument, the value and what
is allowed."""

from __future__ import annotations

import uuid
from typing import Any

from queuelab import bounds
from queuelab.errors import InvalidArgument, JobNotFound
from queuelab.limits import OFF_RATE, RateLimit
from queuelab.models import JobStatus
from queuelab.store import JobFilter


class Unset:
    """The type of :data:`UNSET`: "leave this field as it is"."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


def job_id(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise JobNotFound(f"no job with id {value!r} (job ids are UUIDs)") from None


def actor(value: Any) -> str | None:
    """Who did a manual action, as recorded in the job's history (None: not said)."""
    if value is None:
        return None
    most = bounds.MAX_USER_ID_LENGTH
    if not isinstance(value, str) or not value.strip() or len(value) > most or "\x00" in value:
        raise InvalidArgument(f"by must be a non-empty string of at most {most} characters without NUL, got {value!r}")
    return value


def job_filter(status: Any, user_id: str | None, queue: str | None, task: str | None) -> JobFilter:
    if status is not None:
        try:
            status = JobStatus(str(status).upper())
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise InvalidArgument(f"status must be one of {allowed}, got {status!r}") from None
    return JobFilter(status, user_id, queue, task)


def limit(value: Any, hi: int = bounds.MAX_LIST_LIMIT) -> int:
    return bounds.whole("limit", value, 1, hi)


def rate(value: RateLimit | str | None) -> RateLimit | None:
    if value is None or isinstance(value, RateLimit):
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"rate_limit must be a string such as '60/minute', 'none' or None, got {value!r}")
    return RateLimit.parse(value) or OFF_RATE
