"""Rows to values: the only place that knows how a job is laid out in a table."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from queuelab.models import Action, ActionKind, Attempt, AttemptOutcome, Job, JobStatus, to_datetime
from queuelab.store.dependencies import shown_priority
from queuelab.store.history import completing_attempt


def job_from_row(
    row: Mapping[Any, Any],
    history: Iterable[Mapping[Any, Any]] | None = None,
    actions: Iterable[Mapping[Any, Any]] = (),
) -> Job:
    """The job a row holds; with ``history`` (its attempts' rows, oldest first), every attempt,
    the completion its row records included; without, none."""
    return Job(
        id=row["id"],
        queue=row["queue"],
        task=row["task"],
        payload=json.loads(row["payload"]),
        user_id=row["user_id"],
        status=JobStatus(row["status"]),
        priority=shown_priority(row["priority"]),
        run_at=_dt(row["run_at"]),
        attempts=row["attempts"],
        max_retries=row["max_retries"],
        lease_seconds=row["lease_seconds"],
        timeout_seconds=row["timeout_seconds"],
        lease_token=row["lease_token"],
        lease_owner=row["lease_owner"],
        lease_expires_at=to_datetime(row["lease_expires_at"]),
        result=None if row["result"] is None else json.loads(row["result"]),
        forced=bool(row["forced"]),
        created_at=_dt(row["created_at"]),
        started_at=to_datetime(row["started_at"]),
        finished_at=to_datetime(row["finished_at"]),
        idempotency_key=row["idempotency_key"],
        dead_letter_reason=row.get("dead_letter_reason"),
        progress=row.get("progress"),
        progress_message=row.get("progress_message"),
        waiting_for=row.get("waiting_for"),
        cancel_requested_at=to_datetime(row.get("cancel_requested_at")),
        history=() if history is None else tuple(attempt_from_row(a) for a in _with_completion(row, history)),
        actions=tuple(action_from_row(a) for a in actions),
    )


def _with_completion(row: Mapping[Any, Any], history: Iterable[Mapping[Any, Any]]) -> Iterator[Mapping[Any, Any]]:
    """The attempts' rows, then the completing attempt the job's row records, if any (the
    last attempt: see store/history.py)."""
    yield from history
    done = completing_attempt(row)
    if done is not None:
        yield done


def action_from_row(row: Mapping[Any, Any]) -> Action:
    return Action(
        kind=ActionKind(row["action"]),
        at=_dt(row["at"]),
        by=row["actor"],
        from_status=JobStatus(row["from_status"]),
    )


def attempt_from_row(row: Mapping[Any, Any]) -> Attempt:
    return Attempt(
        number=row["number"],
        worker_id=row["worker_id"],
        outcome=AttemptOutcome(row["outcome"]),
        started_at=to_datetime(row["started_at"]),
        finished_at=_dt(row["finished_at"]),
        error_type=row["error_type"],
        error_message=row["error_message"],
        traceback=row["traceback"],
    )


def _dt(value: float) -> Any:
    return to_datetime(value)
