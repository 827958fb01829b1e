"""Request and response bodies of the HTTP API (its OpenAPI schema comes from these).

How a bad field is answered, on every route (body, query, path or header alike):

- **422 invalid_field**: the request is not the shape the schema describes: a field missing
  or unknown, or a value of the wrong JSON type (a list where an object goes, text where a
  number goes). Only pydantic sees these.
- **400 bad_request**: a value of the right type that is not allowed: out of range, too
  long, not matching the pattern, not one of the choices, or refused by the library's own
  checks. The bounds are :mod:`queuelab.bounds`, the ones the library enforces; declaring
  them here too (``Field(ge=bounds.X, le=bounds.Y)``) puts them in the OpenAPI schema, and
  ``queuelab.api.errors`` answers pydantic's bound errors with 400 like the library's, so
  which layer catches a bad value never changes the status.

Both name the field in the JSON error's ``field``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from queuelab import bounds
from queuelab.models import Action, Attempt, Job
from queuelab.schedules import Schedule
from queuelab.store.scaling import ScaleEvent

# A field that appears on more than one route (in a body, a query string or a header) has
# one type, so one set of bounds, wherever it appears.
UserId = Annotated[str, Field(min_length=1, max_length=bounds.MAX_USER_ID_LENGTH)]
QueueName = Annotated[str, Field(pattern=bounds.QUEUE_NAME.pattern)]
TaskName = Annotated[str, Field(min_length=1, max_length=bounds.MAX_TASK_NAME_LENGTH)]
PageSize = Annotated[int, Field(ge=1, le=bounds.MAX_PAGE)]
Cursor = Annotated[str, Field(max_length=bounds.MAX_CURSOR_LENGTH)]
JobIdText = Annotated[str, Field(pattern=r"^[0-9a-fA-F-]{32,36}$", max_length=36)]
WaitSeconds = Annotated[float, Field(ge=0, le=bounds.MAX_HTTP_WAIT_SECONDS, allow_inf_nan=False)]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=bounds.MAX_IDEMPOTENCY_KEY_LENGTH)]

Status = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId | None = Field(None, description="required unless the bearer token names the user")
    payload: dict[str, Any] = Field(default_factory=dict, description="a JSON object, the task's arguments")
    task: TaskName = "simulate"
    queue: QueueName | None = None
    priority: int | None = Field(None, ge=bounds.PRIORITY_MIN, le=bounds.PRIORITY_MAX, description="higher runs first")
    max_retries: int | None = Field(None, ge=0, le=bounds.MAX_RETRIES)
    delay_seconds: float | None = Field(None, ge=0, le=bounds.MAX_DELAY_SECONDS)
    idempotency_key: IdempotencyKey | None = Field(
        None,
        description="as the Idempotency-Key header, for the prototype's clients (if both are sent, they must agree)",
    )
    after: list[JobIdText] = Field(
        default_factory=list,
        max_length=bounds.MAX_DEPENDENCIES,
        description="job ids this job runs after: it starts once all of them have COMPLETED",
    )


class RequeueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["REQUEUE", "FORCE_SUCCESS"]


class BulkRequeueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: QueueName | None = None
    task: TaskName | None = None
    user_id: UserId | None = None
    rate: float | None = Field(
        None, gt=0, le=bounds.MAX_COUNT, description="jobs per second made runnable (their run_at spread from now)"
    )


class LimitsRequest(BaseModel):
    """Only the fields sent change; null clears a field (falls back to the defaults)."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: str | None = Field(None, description="e.g. 60/minute; 'none' switches it off")
    max_active: int | None = Field(None, ge=0, le=bounds.MAX_COUNT, description="0 switches it off")
    max_running: int | None = Field(None, ge=0, le=bounds.MAX_COUNT, description="0 switches it off")
    weight: int | None = Field(None, ge=1, le=bounds.MAX_WEIGHT)


class AttemptOut(BaseModel):
    number: int
    outcome: str
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime
    error_type: str | None
    error_message: str | None
    traceback: str | None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(
            number=attempt.number,
            outcome=attempt.outcome.value,
            worker_id=attempt.worker_id,
            started_at=attempt.started_at,
            finished_at=attempt.finished_at,
            error_type=attempt.error_type,
            error_message=attempt.error_message,
            traceback=attempt.traceback,
        )


class ActionOut(BaseModel):
    action: Literal["REQUEUED", "FORCED_SUCCESS", "CANCELLED"]
    at: datetime
    by: str | None = Field(description="the API token's user, 'api' without tokens, or a Python caller's label")
    from_status: Status

    @classmethod
    def of(cls, action: Action) -> ActionOut:
        return cls(action=action.kind.value, at=action.at, by=action.by, from_status=action.from_status.value)


class JobOut(BaseModel):
    job_id: str
    status: Status
    attempts: int
    retries: int = Field(description="attempts after the first (the prototype's count): max(attempts - 1, 0)")
    max_retries: int
    user_id: str
    task: str
    queue: str
    priority: int
    payload: dict[str, Any]
    result: Any = None
    forced: bool
    dead_letter_reason: str | None = Field(None, description="why a FAILED job is in the dead-letter queue")
    progress: float | None = Field(None, description="the latest a run reported, 0 to 1 (current_job().progress)")
    progress_message: str | None = None
    waiting_for: int | None = Field(None, description="jobs named in `after` that have not completed yet")
    cancel_requested_at: datetime | None = Field(
        None, description="a cancel asked while it ran: RUNNING until its worker stops it, then CANCELLED"
    )
    errors: list[AttemptOut]
    history: list[AttemptOut]
    actions: list[ActionOut] = Field(description="manual requeues, forced successes and cancels, oldest first")
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        history = [AttemptOut.of(a) for a in job.history]
        return cls(
            job_id=job.id,
            status=job.status.value,
            attempts=job.attempts,
            retries=max(job.attempts - 1, 0),
            max_retries=job.max_retries,
            user_id=job.user_id,
            task=job.task,
            queue=job.queue,
            priority=job.priority,
            payload=job.payload,
            result=job.result,
            forced=job.forced,
            dead_letter_reason=job.dead_letter_reason,
            progress=job.progress,
            progress_message=job.progress_message,
            waiting_for=job.waiting_for,
            cancel_requested_at=job.cancel_requested_at,
            errors=[h for h in history if h.error_type is not None],
            history=history,
            actions=[ActionOut.of(a) for a in job.actions],
            created_at=job.created_at,
            run_at=job.run_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class SubmitResponse(BaseModel):
    job_id: str
    status: Status
    created: bool = Field(description="false when an Idempotency-Key returned an earlier job")


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class CountOut(BaseModel):
    requeued: int


class WorkerOut(BaseModel):
    id: str
    hostname: str
    pid: int
    queues: str
    concurrency: int
    mode: str
    started_at: datetime
    last_seen_at: datetime


class StatsOut(BaseModel):
    by_status: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    oldest_pending_age_seconds: float | None
    completed_per_second: float
    outcomes_last_minute: dict[str, int]
    live_workers: list[WorkerOut]
    throughput: list[int] = Field(description="jobs completed in each of the last 60 seconds, oldest first")


class ScaleEventOut(BaseModel):
    id: int
    at: datetime
    pool_id: str = Field(description="the autoscaler that decided: host:pid:random")
    hostname: str
    backlog: int = Field(description="runnable backlog it saw")
    running: int = Field(description="jobs RUNNING when it decided")
    workers_before: int
    workers_after: int
    reason: str

    @classmethod
    def of(cls, event: ScaleEvent) -> ScaleEventOut:
        return cls.model_validate(event, from_attributes=True)


class ScaleEventsOut(BaseModel):
    events: list[ScaleEventOut] = Field(description="newest first")


class ScheduleOut(BaseModel):
    name: str
    task: str
    cron: str = Field(description="5 fields, or 6 with seconds last (croniter)")
    timezone: str = Field(description="the IANA time zone the cron expression is read in")
    payload: dict[str, Any]
    queue: str | None = Field(description="None: the task's")
    priority: int | None = Field(description="None: the task's")
    user_id: str
    catch_up: int = Field(description="missed ticks enqueued after downtime (0: skipped)")
    paused: bool
    next_run_at: datetime
    last_tick_at: datetime | None = Field(description="the latest tick enqueued")
    last_job_id: str | None = Field(description="that tick's job")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleOut:
        return cls.model_validate(schedule.as_dict())


class SchedulesOut(BaseModel):
    schedules: list[ScheduleOut] = Field(description="by name")


class ExplanationOut(BaseModel):
    reason: str
    message: str
    details: dict[str, Any]


class LimitsOut(BaseModel):
    user_id: str
    rate_limit: str | None
    max_active: int | None
    max_running: int | None
    weight: int


class ErrorOut(BaseModel):
    error: str = Field(description="a stable code: bad_request, not_found, conflict, rate_limited, ...")
    message: str
    field: str | None = None
