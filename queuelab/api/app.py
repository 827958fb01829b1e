"""``create_app(queue)``: the HTTP API and the dashboard. Routes are thin: they check who
is asking, call the :class:`~queuelab.Queue`, and shape the answer."""

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import FileResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from queuelab import __version__
from queuelab.api import errors
from queuelab.api.auth import DEVELOPER, Principal, TokenBook
from queuelab.api.errors import ApiError
from queuelab.api.limits_body import BodyLimit
from queuelab.api.metrics import metrics_response
from queuelab.api.schemas import (
    BulkRequeueRequest,
    CountOut,
    Cursor,
    ErrorOut,
    ExplanationOut,
    IdempotencyKey,
    JobOut,
    JobPage,
    LimitsOut,
    LimitsRequest,
    PageSize,
    QueueName,
    RequeueRequest,
    ScaleEventOut,
    ScaleEventsOut,
    ScheduleOut,
    SchedulesOut,
    StatsOut,
    SubmitRequest,
    SubmitResponse,
    TaskName,
    UserId,
    WaitSeconds,
    WorkerOut,
)
from queuelab.errors import JobNotFound, WaitTimeout
from queuelab.limits import UserLimits
from queuelab.models import TERMINAL_STATUSES, Job, JobStatus
from queuelab.queue import PageMark, Queue

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 1024 * 1024
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


def create_app(queue: Queue, tokens: TokenBook | None = None, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    book = tokens or TokenBook({})
    app = FastAPI(
        title="queuelab", version=__version__, description="Durable jobs on SQLite or PostgreSQL.", responses=ERRORS
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    errors.install(app)
    app.state.queue = queue
    queue.enable_metrics()  # this process's counts on /metrics: its submits, its embedded workers' jobs
    who = BearerPrincipal(book)
    _job_routes(app, queue, who)
    _admin_routes(app, queue, who)
    _service_routes(app, queue, who)
    _schedule_routes(app, queue, who)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# The caller, from the bearer token. A coroutine: FastAPI runs a plain function dependency
# in its thread pool, a hop per request for what is a dictionary look-up.
Who = Callable[..., Awaitable[Principal]]


class BearerPrincipal(HTTPBearer):
    """FastAPI's bearer scheme, answering with the caller. In the OpenAPI document (as
    "HTTPBearer"), so the docs page's Authorize button sends the token; errors stay ours
    (auto_error=False), in the API's JSON shape. One dependency, not a principal that
    depends on HTTPBearer: each level FastAPI solves costs a request ~10 µs of CPU (a third
    of its dependency solving on POST /api/submit/)."""

    def __init__(self, book: TokenBook) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="HTTPBearer",
            description="a token from QUEUELAB_API_TOKENS (none on a local server)",
        )
        self.book = book

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        if not self.book.enabled:
            return DEVELOPER
        credentials = await super().__call__(request)
        token = credentials.credentials.strip() if credentials is not None else ""
        if not token:
            raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
        found = self.book.lookup(token)
        if found is None:
            raise ApiError(401, "unauthorized", "the bearer token is not valid", {"WWW-Authenticate": "Bearer"})
        return found


def _both(app: FastAPI, method: str, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve ``path`` with and without its trailing slash (the prototype's clients use it)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        app.add_api_route(path, fn, methods=[method], **options)
        app.add_api_route(path.rstrip("/"), fn, methods=[method], include_in_schema=False, **options)
        return fn

    return register


def _job_routes(app: FastAPI, queue: Queue, who: Who) -> None:
    Me = Annotated[Principal, Depends(who)]

    replay = {200: {"model": SubmitResponse, "description": "the job submitted earlier with this Idempotency-Key"}}

    # A coroutine: the job is stored by the queue's group commit (one write for the requests
    # that arrive together) while the event loop serves other requests; a sync route would
    # take a thread-pool hop per request, which alone caps this route near 2,000/s here.
    @_both(app, "POST", "/api/submit/", status_code=201, response_model=SubmitResponse, responses=replay)
    async def submit(
        body: SubmitRequest,
        me: Me,
        response: Response,
        idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
    ) -> SubmitResponse:
        user = _submitter(me, body.user_id)
        given = _idempotency_key(idempotency_key, body.idempotency_key)
        key = f"{user}:{given}" if given else None
        if key is not None:
            earlier = await asyncio.to_thread(queue.find_by_idempotency_key, key)
            if earlier is not None:
                _same_request(earlier, body)
                response.status_code = 200
                return SubmitResponse(job_id=earlier.id, status=earlier.status.value, created=False)
        if body.after and not me.is_admin and me.user_id is not None:
            await asyncio.to_thread(_own_parents, queue, me, body.after)
        job = await queue.asubmit(
            body.task,
            body.payload,
            user_id=user,
            queue=body.queue,
            priority=body.priority,
            max_retries=body.max_retries,
            delay=body.delay_seconds,
            idempotency_key=key,
            after=body.after,
        )
        return SubmitResponse(job_id=job.id, status=job.status.value, created=True)

    @_both(app, "GET", "/api/status/{job_id}/", response_model=JobOut)
    async def status(job_id: str, me: Me, wait: Annotated[WaitSeconds | None, Query()] = None) -> JobOut:
        """The job. With ``wait=S``: held until it finishes or S seconds pass (a long poll; the
        answer is then the job as it is, finished or not), holding no thread meanwhile."""
        job = await asyncio.to_thread(_visible, queue, me, job_id)
        if wait and job.status not in TERMINAL_STATUSES:
            try:
                job = await queue.wait_async(job_id, timeout=wait)
            except WaitTimeout:
                job = await asyncio.to_thread(queue.get, job_id)
        return JobOut.of(job)

    @_both(app, "POST", "/api/requeue/{job_id}/", response_model=JobOut)
    def requeue(job_id: str, body: RequeueRequest, me: Me) -> JobOut:
        _visible(queue, me, job_id)
        _admin(me, "requeue or force-success a job")
        by = _actor(me)
        job = queue.requeue(job_id, by=by) if body.action == "REQUEUE" else queue.force_success(job_id, by=by)
        return JobOut.of(job)

    @_both(app, "POST", "/api/cancel/{job_id}/", response_model=JobOut)
    def cancel(job_id: str, me: Me) -> JobOut:
        _visible(queue, me, job_id)
        return JobOut.of(queue.cancel(job_id, by=_actor(me)))

    @_both(app, "GET", "/api/explain/{job_id}/", response_model=ExplanationOut)
    def explain(job_id: str, me: Me) -> ExplanationOut:
        _visible(queue, me, job_id)
        found = queue.explain(job_id)
        return ExplanationOut(reason=found.reason, message=found.message, details=found.details)

    @_both(app, "GET", "/api/jobs/", response_model=JobPage)
    def jobs(
        me: Me,
        status: Annotated[JobStatus | None, Query()] = None,
        user_id: Annotated[UserId | None, Query()] = None,
        queue_name: Annotated[QueueName | None, Query(alias="queue")] = None,
        task: Annotated[TaskName | None, Query()] = None,
        limit: Annotated[PageSize, Query()] = 50,
        cursor: Annotated[Cursor | None, Query()] = None,
    ) -> JobPage:
        owner = _reader(me, user_id)
        before = _decode_cursor(cursor)
        page = queue.jobs_page(
            status=status, user_id=owner, queue=queue_name, task=task, limit=limit, before=before, history=True
        )
        after = page.next_before
        return JobPage(
            jobs=[JobOut.of(j) for j in page.jobs], next_cursor=None if after is None else _encode_cursor(after)
        )

    @_both(app, "GET", "/api/dlq/", response_model=JobPage)
    def dlq(
        me: Me,
        queue_name: Annotated[QueueName | None, Query(alias="queue")] = None,
        task: Annotated[TaskName | None, Query()] = None,
        limit: Annotated[PageSize, Query()] = 50,
        cursor: Annotated[Cursor | None, Query()] = None,
    ) -> JobPage:
        page: JobPage = jobs(me, JobStatus.FAILED, None, queue_name, task, limit, cursor)
        return page


def _actor(me: Principal) -> str:
    """Who acted, for the job's history: the token's user, or "api" on a server without tokens."""
    return me.user_id or "api"


def _same_request(earlier: Job, body: SubmitRequest) -> None:
    """A key names one request: reused with another task, payload, queue or priority it is a
    409, not the earlier job passed off as this request's."""
    differs = [
        name
        for name, mine, theirs in (
            ("task", body.task, earlier.task),
            ("payload", body.payload, earlier.payload),
            ("queue", body.queue, earlier.queue),
            ("priority", body.priority, earlier.priority),
        )
        if mine is not None and mine != theirs
    ]
    if differs:
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"this Idempotency-Key was used for job {earlier.id} with a different {', '.join(differs)}",
        )


def _idempotency_key(header: str | None, body: str | None) -> str | None:
    """The key from the Idempotency-Key header or the body's idempotency_key (the
    prototype's clients send it there); a 400 if both are sent and differ."""
    if header is not None and body is not None and header != body:
        raise ApiError(400, "bad_request", "the Idempotency-Key header and the body's idempotency_key differ")
    return header if header is not None else body


def _admin_routes(app: FastAPI, queue: Queue, who: Who) -> None:
    Me = Annotated[Principal, Depends(who)]

    @_both(app, "POST", "/api/dlq/requeue/", response_model=CountOut)
    def requeue_dlq(body: BulkRequeueRequest, me: Me) -> CountOut:
        _admin(me, "requeue the dead-letter queue")
        found = queue.requeue_many(
            user_id=body.user_id, queue=body.queue, task=body.task, rate=body.rate, by=_actor(me)
        )
        return CountOut(requeued=found)

    @_both(app, "GET", "/api/limits/{user_id}/", response_model=LimitsOut)
    def get_limits(user_id: str, me: Me) -> LimitsOut:
        _admin(me, "read limits")
        return _limits_out(user_id, queue.limits(user_id))

    @_both(app, "PUT", "/api/limits/{user_id}/", response_model=LimitsOut)
    def put_limits(user_id: str, body: LimitsRequest, me: Me) -> LimitsOut:
        _admin(me, "change limits")
        changes = body.model_dump(exclude_unset=True)
        return _limits_out(user_id, queue.set_limits(user_id, **changes))


def _schedule_routes(app: FastAPI, queue: Queue, who: Who) -> None:
    """Periodic jobs: anyone may list them (like the stats); only an admin pauses or resumes."""
    Me = Annotated[Principal, Depends(who)]

    @_both(app, "GET", "/api/schedules/", response_model=SchedulesOut)
    def schedules(me: Me) -> SchedulesOut:
        return SchedulesOut(schedules=[ScheduleOut.of(s) for s in queue.schedules()])

    @_both(app, "POST", "/api/schedules/{name}/pause/", response_model=ScheduleOut)
    def pause_schedule(name: str, me: Me) -> ScheduleOut:
        _admin(me, "pause a schedule")
        return ScheduleOut.of(queue.pause_schedule(name))

    @_both(app, "POST", "/api/schedules/{name}/resume/", response_model=ScheduleOut)
    def resume_schedule(name: str, me: Me) -> ScheduleOut:
        _admin(me, "resume a schedule")
        return ScheduleOut.of(queue.resume_schedule(name))


def _service_routes(app: FastAPI, queue: Queue, who: Who) -> None:
    Me = Annotated[Principal, Depends(who)]

    @_both(app, "GET", "/api/stats/", response_model=StatsOut)
    def stats(me: Me) -> StatsOut:
        """The queue's figures; a user's token sees its own jobs' counts, ages and throughput."""
        mine = None if me.is_admin else me.user_id
        found = queue.stats(user_id=mine)
        workers = [
            WorkerOut(
                id=w.id,
                hostname=w.hostname,
                pid=w.pid,
                queues=w.queues,
                concurrency=w.concurrency,
                mode=w.mode,
                started_at=_utc(w.started_at),
                last_seen_at=_utc(w.last_seen_at),
            )
            for w in found.live_workers
        ]
        series = queue.completed_series(user_id=mine)
        return StatsOut(
            by_status=found.by_status,
            by_queue=found.by_queue,
            oldest_pending_age_seconds=found.oldest_pending_age_seconds,
            completed_per_second=found.completed_per_second,
            outcomes_last_minute=found.outcomes_last_minute,
            live_workers=workers,
            throughput=series,
        )

    @_both(app, "GET", "/api/scale-events/", response_model=ScaleEventsOut)
    def scale_events(me: Me, limit: Annotated[PageSize, Query()] = 50) -> ScaleEventsOut:
        return ScaleEventsOut(events=[ScaleEventOut.of(e) for e in queue.scale_events(limit)])

    @app.get("/metrics", include_in_schema=False)
    def metrics(me: Me) -> Response:
        return metrics_response(queue)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        queue.stats()  # reaches the database
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def dashboard(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


# -- who may do what -----------------------------------------------------------------


def _admin(me: Principal, what: str) -> None:
    if not me.is_admin:
        raise ApiError(403, "forbidden", f"only an admin may {what}")


def _submitter(me: Principal, requested: str | None) -> str:
    if me.user_id is None:  # local development server: the body names the user
        if requested is None:
            raise ApiError(422, "invalid_field", "user_id: Field required")
        return requested
    if requested is not None and requested != me.user_id and not me.is_admin:
        raise ApiError(403, "forbidden", f"your token is for user {me.user_id!r}; you may not submit as {requested!r}")
    return requested or me.user_id


def _reader(me: Principal, requested: str | None) -> str | None:
    if me.is_admin or me.user_id is None:
        return requested
    if requested is not None and requested != me.user_id:
        raise ApiError(
            403, "forbidden", f"your token is for user {me.user_id!r}; you may not list {requested!r}'s jobs"
        )
    return me.user_id


def _own_parents(queue: Queue, me: Principal, parents: list[str]) -> None:
    """A user's job may run after that user's jobs only: another's is "no job" (as on read)."""
    for parent in parents:
        try:
            _visible(queue, me, parent)
        except (ApiError, JobNotFound):
            raise ApiError(400, "bad_request", f"after names no job with id {parent!r}") from None


def _visible(queue: Queue, me: Principal, job_id: str) -> Job:
    job = queue.get(job_id)
    if not me.is_admin and me.user_id is not None and job.user_id != me.user_id:
        raise ApiError(404, "not_found", f"no job with id {job_id!r}")  # not 403: do not confirm it exists
    return job


# -- shapes ---------------------------------------------------------------------------


def _encode_cursor(mark: PageMark) -> str:
    when, job_id = mark
    return base64.urlsafe_b64encode(f"{when!r}|{job_id}".encode()).decode()


def _decode_cursor(cursor: str | None) -> PageMark | None:
    if cursor is None:
        return None
    try:
        when, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return float(when), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "bad_request", "cursor is not one this server gave out") from None


def _limits_out(user_id: str, limits: UserLimits) -> LimitsOut:
    rate = limits.rate_limit
    text = None if rate is None or rate.count == 0 else f"{rate.count}/{rate.window_seconds:g}s"
    return LimitsOut(
        user_id=user_id,
        rate_limit=text,
        max_active=limits.max_active or None,
        max_running=limits.max_running or None,
        weight=limits.weight or 1,
    )


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
