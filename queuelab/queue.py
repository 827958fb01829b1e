"""The public facade: ``Queue``. Thin: it checks arguments, then calls the stores."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, overload

from queuelab import arguments, bounds, throttles
from queuelab.arguments import UNSET, Unset
from queuelab.bounds import Prefetch
from queuelab.clock import Clock
from queuelab.config import Settings
from queuelab.errors import InvalidArgument, QuotaExceeded, RateLimited, WaitTimeout
from queuelab.explain import Explanation, explain_job
from queuelab.extras import require
from queuelab.limits import RateLimit, UserLimits, check_quota, check_weight, rate_enabled
from queuelab.models import TERMINAL_STATUSES, Job, JobStatus, RetryPolicy
from queuelab.periodic import PeriodicMethods
from queuelab.runtime import Runtime, tracing
from queuelab.runtime.autoscale import Autoscaler, Resizable, ScalePolicy
from queuelab.runtime.metrics import REFUSED_QUOTA, REFUSED_RATE, JobMetrics
from queuelab.runtime.pool import Mode, Pool, ProcessPool, ThreadPool, check_pool_args
from queuelab.runtime.worker import Worker
from queuelab.stats import QueueStats, jobs_frame, read_stats
from queuelab.store import Database, WorkerInfo, compaction
from queuelab.store.dependencies import Parents
from queuelab.store.enlist import enlisted
from queuelab.store.limits import DEFAULTS
from queuelab.store.reports import completed_series, runnable_backlog
from queuelab.store.scaling import ScaleEvent, ScaleLog
from queuelab.store.timeline import TimelineRows, attempt_rows, dlq_errors, job_rows, status_counts
from queuelab.submission import (
    Instants,
    RowBuilder,
    Submission,
    build_row,
    check_queue,
    check_user_id,
    parents_of,
    pending_job,
    without_check,
)
from queuelab.tasks import PayloadCheck, Task
from queuelab.throttles import Throttle

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from queuelab.store.redis_limiter import Admission

PageMark = tuple[float, str]  # (created_at as epoch seconds, id) of a page's last job


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a job listing (:meth:`Queue.jobs_page`), newest first."""

    jobs: list[Job]
    next_before: PageMark | None  # pass as ``before=`` for the next page; None: this was the last


class Queue(PeriodicMethods):
    """A durable job queue over SQLite (the default) or PostgreSQL.

    ``Queue()`` uses ``QUEUELAB_DATABASE_URL``, else ``sqlite:///queuelab.db``. Other
    settings (``lease_seconds``, ``max_retries``, ...) may be given as keywords or as
    ``QUEUELAB_*`` environment variables. The database is opened on first use.
    """

    def __init__(
        self, url: str | None = None, *, settings: Settings | None = None, clock: Clock | None = None, **options: Any
    ) -> None:
        if settings is None:
            settings = Settings.load(database_url=url, **options)
        elif url is not None or options:
            settings = settings.with_changes(**({"database_url": url} if url else {}), **options)
        self._runtime = Runtime(settings, clock)

    @property
    def settings(self) -> Settings:
        return self._runtime.settings

    @property
    def clock(self) -> Clock:
        """The clock this queue stamps jobs with (a :class:`~queuelab.clock.FakeClock` in tests)."""
        return self._runtime.clock

    def __repr__(self) -> str:
        return f"Queue({self.settings.database_url!r})"

    # -- the database -----------------------------------------------------------------

    def open(self) -> None:
        """Open the database now, creating the schema if it is new: a bad URL or a server
        that cannot be reached fails here, not at the first submit."""
        _ = self._runtime.db

    def describe(self) -> str:
        """The database as a URL with the password hidden, for log lines (opens it)."""
        return self._runtime.db.describe()

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        """The kind of database: ``"sqlite"`` or ``"postgresql"`` (opens it)."""
        return "sqlite" if self._runtime.db.is_sqlite else "postgresql"

    @property
    def database(self) -> Database:
        """The store's :class:`~queuelab.store.Database`, opened: the one door for tools that
        measure the store itself (:mod:`queuelab.bench`: raw-SQL floors, row counts, table
        sizes). Its API is internal and may change; applications, the API and the lab use
        the methods of this class, and tests use :func:`queuelab.testing.internals`."""
        return self._runtime.db

    # -- tasks ------------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[..., Any], /) -> Task: ...
    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_retries: int | None = None,
        lease_seconds: float | None = None,
        timeout_seconds: float | None = None,
        retry: RetryPolicy | None = None,
        check: PayloadCheck | None = None,
        throttle: str | RateLimit | None = None,
    ) -> Callable[[Callable[..., Any]], Task]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_retries: int | None = None,
        lease_seconds: float | None = None,
        timeout_seconds: float | None = None,
        retry: RetryPolicy | None = None,
        check: PayloadCheck | None = None,
        throttle: str | RateLimit | None = None,
    ) -> Task | Callable[[Callable[..., Any]], Task]:
        """Register a task: ``@q.task`` or ``@q.task(max_retries=5, queue="emails")``.
        ``throttle="100/minute"``: at most that many starts per sliding window across every
        worker (each worker serving the task stores it when it starts)."""

        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidArgument(f"retry must be a queuelab.RetryPolicy or None, got {retry!r}")
        if check is not None and not callable(check):
            raise InvalidArgument(f"check must be a function taking the payload dict, or None, got {check!r}")

        rate = throttle if isinstance(throttle, RateLimit) else throttles.parse(throttle)

        def register(func: Callable[..., Any]) -> Task:
            task = Task(
                name=func.__name__ if name is None else name,
                fn=func,
                queue=queue,
                priority=priority,
                max_retries=max_retries,
                lease_seconds=lease_seconds,
                timeout_seconds=timeout_seconds,
                retry=retry,
                check=check,
                throttle=rate,
            )
            # Check the defaults now, not at the first submit.
            build_row(Submission(task=task.name), without_check(task), self.settings, 0.0)
            return self._runtime.tasks.add(task)

        return register if fn is None else register(fn)

    @property
    def tasks(self) -> list[Task]:
        return list(self._runtime.tasks)

    # -- submit -----------------------------------------------------------------------

    def submit(
        self,
        task: str | Task,
        payload: dict[str, Any] | None = None,
        *,
        user_id: str = "default",
        queue: str | None = None,
        priority: int | None = None,
        delay: float | timedelta | None = None,
        run_at: datetime | None = None,
        max_retries: int | None = None,
        lease_seconds: float | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
        after: Sequence[str | Job] = (),
        connection: Connection | Session | None = None,
    ) -> Job:
        """Validate, then store one job. Bad input raises a :class:`QueuelabError` subclass
        and stores nothing. With ``idempotency_key``, a second submit returns the first job.
        With ``after`` (job ids or Jobs), the job runs only once all of those have COMPLETED
        (see :mod:`queuelab.store.dependencies`). With ``connection`` (a SQLAlchemy
        Connection or Session on this queue's database),
        the job is written in that connection's transaction: rolled back with it, and
        visible to workers (and woken) only when the caller commits."""
        name = task.name if isinstance(task, Task) else task
        sub = Submission(
            task=name,
            payload=payload,
            user_id=user_id,
            queue=queue,
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_retries=max_retries,
            lease_seconds=lease_seconds,
            timeout_seconds=timeout_seconds,
            idempotency_key=idempotency_key,
            after=after,
        )
        return self.submit_many([sub], connection=connection)[0]

    def submit_many(
        self, submissions: Iterable[Submission], *, connection: Connection | Session | None = None
    ) -> list[Job]:
        """Validate all, then store all in one transaction (all or nothing): the queue's own,
        or the caller's open one on ``connection`` (see :meth:`submit`)."""
        caller = None if connection is None else enlisted(self._runtime.db, connection)
        now, subs, rows = self._rows(submissions)
        if not rows:
            return []
        parents = parents_of(subs, rows)
        tracer = tracing.tracer()
        if tracer is not None:  # OpenTelemetry configured: a span, whose context each job keeps
            with tracing.submitting(tracer, rows):
                return self._stored(subs, rows, now, caller, parents)
        return self._stored(subs, rows, now, caller, parents)

    def _stored(
        self,
        subs: list[Submission],
        rows: list[dict[str, Any]],
        now: float,
        caller: Connection | None,
        parents: Parents | None,
    ) -> list[Job]:
        try:
            existing = self._store(rows, now, caller, parents)
        except (RateLimited, QuotaExceeded) as exc:
            self._count_refusal(exc)
            raise
        return self._count_submitted(_jobs_of(subs, rows, existing), rows)

    async def asubmit(
        self,
        task: str | Task,
        payload: dict[str, Any] | None = None,
        *,
        user_id: str = "default",
        queue: str | None = None,
        priority: int | None = None,
        delay: float | timedelta | None = None,
        run_at: datetime | None = None,
        max_retries: int | None = None,
        lease_seconds: float | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
        after: Sequence[str | Job] = (),
    ) -> Job:
        """:meth:`submit` for async code: the calling event loop runs on while the job is
        stored. Submits from coroutines and threads that arrive together share one
        transaction; each returns once its own job is committed."""
        name = task.name if isinstance(task, Task) else task
        sub = Submission(
            task=name,
            payload=payload,
            user_id=user_id,
            queue=queue,
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_retries=max_retries,
            lease_seconds=lease_seconds,
            timeout_seconds=timeout_seconds,
            idempotency_key=idempotency_key,
            after=after,
        )
        return (await self.asubmit_many([sub]))[0]

    async def asubmit_many(self, submissions: Iterable[Submission]) -> list[Job]:
        """:meth:`submit_many` for async code (all or nothing, the event loop runs on)."""
        now, subs, rows = self._rows(submissions)
        if not rows:
            return []
        parents = parents_of(subs, rows)
        tracer = tracing.tracer()
        if tracer is not None:
            with tracing.submitting(tracer, rows):
                return await self._astored(subs, rows, now, parents)
        return await self._astored(subs, rows, now, parents)

    async def _astored(
        self, subs: list[Submission], rows: list[dict[str, Any]], now: float, parents: Parents | None
    ) -> list[Job]:
        try:
            if self._runtime.rate_limiter is not None or parents:  # Redis admits first / links: a thread does both
                existing = await asyncio.to_thread(self._store, rows, now, None, parents)
            else:
                existing = await self._runtime.jobs.ainsert_shared(rows, now)
        except (RateLimited, QuotaExceeded) as exc:
            self._count_refusal(exc)
            raise
        return self._count_submitted(_jobs_of(subs, rows, existing), rows)

    def _count_submitted(self, jobs: list[Job], rows: list[dict[str, Any]]) -> list[Job]:
        """Count the jobs stored now (not those an idempotency key found), if metrics are on."""
        metrics = self._runtime.metrics
        if metrics is not None:
            metrics.submitted(row for row, job in zip(rows, jobs, strict=True) if job.id == row["id"])
        return jobs

    def _count_refusal(self, exc: RateLimited | QuotaExceeded) -> None:
        metrics = self._runtime.metrics
        if metrics is not None:
            metrics.refused(REFUSED_RATE if isinstance(exc, RateLimited) else REFUSED_QUOTA)

    def _rows(self, submissions: Iterable[Submission]) -> tuple[float, list[Submission], list[dict[str, Any]]]:
        """The rows to store for ``submissions``, checked (raises before anything is stored)."""
        now = self._runtime.clock.now()
        subs = list(submissions)
        builder, task_of = RowBuilder(self.settings, now, len(subs)), self._runtime.tasks.get
        return now, subs, [builder.row(s, task_of(s.task)) for s in subs]

    def _store(
        self,
        rows: list[dict[str, Any]],
        now: float,
        caller: Connection | None = None,
        parents: Parents | None = None,
    ) -> dict[str, Job]:
        """Admit and write ``rows``: in the caller's transaction on ``caller``, or in one of
        the queue's own. With a Redis rate limiter, Redis admits first (a submit the caller
        then rolls back has spent its unit: the limit errs on the safe side)."""
        limiter = self._runtime.rate_limiter
        if limiter is None:
            return self._write(rows, now, caller, parents, rate_in_sql=True)
        wanted = Counter(row["user_id"] for row in rows)
        admissions: list[Admission] = []
        try:
            for user, lim in self._runtime.limits.effective(sorted(wanted)).items():
                rate = rate_enabled(lim.rate_limit)
                if rate is not None:
                    admissions.append(limiter.admit(user, wanted[user], rate, now))
            return self._write(rows, now, caller, parents, rate_in_sql=False)
        except BaseException:
            for admission in admissions:
                limiter.take_back(admission)
            raise

    def _write(
        self,
        rows: list[dict[str, Any]],
        now: float,
        caller: Connection | None,
        parents: Parents | None,
        rate_in_sql: bool,
    ) -> dict[str, Job]:
        store = self._runtime.jobs
        if parents:
            return store.insert_after(rows, parents, now, conn=caller, rate_in_sql=rate_in_sql)
        if caller is not None:
            return store.insert_in(caller, rows, now, rate_in_sql=rate_in_sql)
        return store.insert_shared(rows, now) if rate_in_sql else store.insert(rows, now, rate_in_sql=False)

    # -- limits -----------------------------------------------------------------------

    def set_limits(
        self,
        user_id: str = "*",
        *,
        rate_limit: RateLimit | str | Unset | None = UNSET,
        max_active: int | Unset | None = UNSET,
        max_running: int | Unset | None = UNSET,
        weight: int | Unset | None = UNSET,
    ) -> UserLimits:
        """Change limits at run time for one user, or for every user (``"*"``, the defaults
        that override the settings). Only the fields given change; ``None`` clears a field
        (falls back to the defaults), ``0`` / ``"none"`` switches a limit off. Returns what
        now applies to that user."""
        user = check_user_id(user_id) if user_id != DEFAULTS else DEFAULTS
        stored = self._runtime.limits.stored().get(user, UserLimits())
        changed = UserLimits(
            rate_limit=stored.rate_limit if isinstance(rate_limit, Unset) else arguments.rate(rate_limit),
            max_active=stored.max_active if isinstance(max_active, Unset) else check_quota("max_active", max_active),
            max_running=stored.max_running
            if isinstance(max_running, Unset)
            else check_quota("max_running", max_running),
            weight=stored.weight if isinstance(weight, Unset) else check_weight(weight),
        )
        self._runtime.limits.set(user, changed, self._runtime.clock.now())
        return self.limits(user)

    def limits(self, user_id: str = "*") -> UserLimits:
        """The limits that apply to ``user_id`` (``"*"``: to a user with no overrides)."""
        return self._runtime.limits.effective([user_id])[user_id]

    def set_throttle(
        self,
        throttle: RateLimit | str | None,
        *,
        task: str | None = None,
        queue: str | None = None,
        user: str | None = None,
    ) -> Throttle | None:
        """At most N starts per sliding window (``"100/minute"``) of the jobs of one task,
        queue or user, across every worker; None or ``"none"`` removes the throttle. A
        throttled job stays PENDING and spends no attempt; ``explain`` says when it can start."""
        scope, name = throttles.target(task, queue, user)
        if scope == throttles.Scope.QUEUE:
            check_queue(name)
        elif scope == throttles.Scope.USER:
            check_user_id(name)
        rate = throttle if isinstance(throttle, RateLimit) else throttles.parse(throttle)
        self._runtime.limits.set_throttle(scope, name, rate, self._runtime.clock.now())
        return None if rate is None else throttles.Throttle(scope, name, rate)

    def throttles(self) -> list[Throttle]:
        """Every execution throttle set, as stored."""
        return self._runtime.limits.throttles()

    def pause(self, queue: str) -> None:
        """Stop workers from starting jobs of ``queue`` (running ones finish)."""
        self._runtime.limits.pause(check_queue(queue), True, self._runtime.clock.now())

    def resume(self, queue: str) -> None:
        self._runtime.limits.pause(check_queue(queue), False, self._runtime.clock.now())

    def explain(self, job_id: str) -> Explanation:
        """Why a job has not started yet (or what it is doing), in words and as data."""
        return explain_job(self._runtime, arguments.job_id(job_id))

    # -- read -------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job with its attempt history; :class:`JobNotFound` if there is none."""
        return self._runtime.jobs.get(arguments.job_id(job_id))

    def wait(self, job: str | Job, *, timeout: float | timedelta) -> Job:
        """Block until the job has finished, then return it: COMPLETED with its ``result``,
        FAILED (in the dead-letter queue) with its ``errors``, or CANCELLED. Raises
        :class:`WaitTimeout` if it has not finished within ``timeout`` seconds (it runs on),
        :class:`JobNotFound` if there is no such job. Woken by the database, not by polling
        (see :mod:`queuelab.store.completions` for what a waiter costs)."""
        job_id, limit = self._wait_args(job, timeout)
        deadline = time.monotonic() + limit
        woken = threading.Event()
        completions = self._runtime.completions
        with completions.watching(job_id, woken.set):
            completions.prepare(job_id)
            while True:
                found = self.get(job_id)
                remaining = deadline - time.monotonic()
                if found.status in TERMINAL_STATUSES:
                    return found
                if remaining <= 0 or not woken.wait(remaining):
                    raise _wait_timeout(found, limit)
                woken.clear()

    async def wait_async(self, job: str | Job, *, timeout: float | timedelta) -> Job:
        """:meth:`wait` for async code: the event loop runs on while the job does (``await``
        is a keyword, hence the name). Waiters hold no thread meanwhile."""
        job_id, limit = self._wait_args(job, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        woken = asyncio.Event()
        completions = self._runtime.completions
        with completions.watching(job_id, lambda: _call_soon(loop, woken.set)):
            await asyncio.to_thread(completions.prepare, job_id)
            while True:
                found = await asyncio.to_thread(self.get, job_id)
                if found.status in TERMINAL_STATUSES:
                    return found
                try:
                    await asyncio.wait_for(woken.wait(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise _wait_timeout(found, limit) from None
                woken.clear()

    def waiting_callers(self) -> int:
        """Calls of :meth:`wait` and :meth:`wait_async` in this process waiting now."""
        return self._runtime.completions.waiting() if "completions" in self._runtime.__dict__ else 0

    def _wait_args(self, job: str | Job, timeout: float | timedelta) -> tuple[str, float]:
        job_id = arguments.job_id(job.id if isinstance(job, Job) else job)
        return job_id, bounds.seconds("timeout", timeout, bounds.MAX_JOB_WAIT_SECONDS, zero_ok=True)

    def find_by_idempotency_key(self, key: str) -> Job | None:
        """The job submitted with ``idempotency_key=key``, or None if there is none."""
        return self._runtime.jobs.find_by_idempotency_key(key)

    def jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        user_id: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs matching every filter given, newest first."""
        return self._runtime.jobs.list(arguments.job_filter(status, user_id, queue, task), limit=arguments.limit(limit))

    def jobs_page(
        self,
        *,
        status: JobStatus | str | None = None,
        user_id: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
        before: PageMark | None = None,
        history: bool = False,
    ) -> Page:
        """One page of :meth:`jobs`: at most ``limit`` jobs matching every filter, newest
        first, all older than ``before`` (the previous page's ``next_before``; None: from
        the newest). ``history``: with each job's attempts (one more query for the page)."""
        where = arguments.job_filter(status, user_id, queue, task)
        found, mark = self._runtime.jobs.page(where, limit=arguments.limit(limit), before=before, history=history)
        return Page(found, mark)

    def dlq(self, *, queue: str | None = None, task: str | None = None, limit: int = 100) -> list[Job]:
        """The dead-letter queue: jobs that are ``FAILED``, newest first."""
        return self.jobs(status=JobStatus.FAILED, queue=queue, task=task, limit=limit)

    def stats(self, *, user_id: str | None = None) -> QueueStats:
        """Counts by status and queue, the oldest runnable job's age, throughput and
        outcomes of the last minute, live workers, scale events, schedules; with
        ``user_id``, the counts, age and outcomes cover that user's jobs only."""
        return read_stats(self._runtime, None if user_id is None else check_user_id(user_id))

    def jobs_frame(self, *, limit: int = 100_000) -> pd.DataFrame:
        """A pandas DataFrame of jobs (newest first), one row per job."""
        return jobs_frame(self._runtime, limit=arguments.limit(limit, bounds.MAX_FRAME_ROWS))

    def completed_series(self, seconds: int = 60, *, user_id: str | None = None) -> list[int]:
        """Jobs completed in each of the last ``seconds`` whole seconds, oldest first (the
        dashboard's and the control panel's throughput plot); of ``user_id``'s jobs if given."""
        seconds = bounds.whole("seconds", seconds, 1, bounds.MAX_SERIES_SECONDS)
        user = None if user_id is None else check_user_id(user_id)
        return completed_series(self._runtime.db, self._runtime.clock.now(), seconds, user)

    def runnable_backlog(self) -> dict[str, int]:
        """{queue: PENDING jobs a free worker could start now}: due, in a queue that is not
        paused, of a user under their running quota (the demand more workers can serve)."""
        return runnable_backlog(self._runtime.db, self._runtime.clock.now())

    def status_counts(self, queue: str) -> dict[str, int]:
        """{status: jobs} in one queue (statuses with no job are left out)."""
        return status_counts(self._runtime.db, check_queue(queue))

    def live_workers(self) -> list[WorkerInfo]:
        """The workers heartbeating within the ``worker_ttl_seconds`` setting, oldest first."""
        return self._runtime.workers.live(self._runtime.clock.now(), self.settings.worker_ttl_seconds)

    def timeline_rows(self, *, queue: str | None = None, since: float | None = None) -> TimelineRows:
        """The rows behind :func:`queuelab.lab.frames.timeline`: every job (of ``queue``,
        created at or after ``since``, epoch seconds), oldest first, and their finished attempts."""
        return TimelineRows(
            job_rows(self._runtime.db, queue=queue, since=since),
            attempt_rows(self._runtime.db, queue=queue, since=since),
        )

    def dlq_errors(self, *, queue: str | None = None) -> list[tuple[Any, ...]]:
        """The dead-letter queue by the error of each job's last attempt, most jobs first:
        (error_type, jobs, first and last failure in epoch seconds, example message, reason)."""
        return dlq_errors(self._runtime.db, queue=queue)

    def scale_events(self, limit: int = 50) -> list[ScaleEvent]:
        """The autoscalers' decision log, newest first: when each pool changed size, from
        how many workers to how many, the runnable backlog and running jobs it saw, and why."""
        return ScaleLog(self._runtime.db).recent(arguments.limit(limit))

    def scale_events_frame(self, *, limit: int = 10_000) -> pd.DataFrame:
        """:meth:`scale_events` as a pandas DataFrame, oldest first (to plot as a step line)."""
        import dataclasses

        require(("pandas",), extra="lab", feature="Queue.scale_events_frame()")
        import pandas as pd

        columns = [f.name for f in dataclasses.fields(ScaleEvent)]
        rows = [dataclasses.astuple(e) for e in reversed(self.scale_events(limit))]
        frame = pd.DataFrame(rows, columns=columns)
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        return frame

    # -- admin ------------------------------------------------------------------------

    def requeue(self, job_id: str, *, by: str | None = None) -> Job:
        """Run a FAILED, COMPLETED or CANCELLED job again with a fresh retry budget. The
        requeue is recorded in the job's ``actions`` with when and ``by`` (who, in your words)."""
        who = arguments.actor(by)
        return self._runtime.jobs.requeue(arguments.job_id(job_id), self._runtime.clock.now(), who)

    def requeue_many(
        self,
        *,
        status: JobStatus | str = JobStatus.FAILED,
        user_id: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        rate: float | None = None,
        by: str | None = None,
    ) -> int:
        """Requeue every job matching the filter (by default the whole DLQ), oldest first,
        each queued behind the work already waiting (a fresh fair rank, as a new submission);
        return the count. ``rate``: at most this many jobs per second become runnable (their
        run_at spread from now), so a large redrive does not crowd out other work."""
        where = arguments.job_filter(status, user_id, queue, task)
        pace = None if rate is None else bounds.number("rate", rate)
        return self._runtime.jobs.requeue_many(where, self._runtime.clock.now(), pace, arguments.actor(by))

    def force_success(self, job_id: str, result: Any = None, *, by: str | None = None) -> Job:
        """Mark a FAILED (or COMPLETED) job COMPLETED, recording that it was forced, when, and
        ``by`` whom, in the job's ``actions``."""
        who = arguments.actor(by)
        return self._runtime.jobs.force_success(arguments.job_id(job_id), self._runtime.clock.now(), result, who)

    def cancel(self, job_id: str, *, by: str | None = None) -> Job:
        """Cancel a PENDING or RUNNING job (recorded in its ``actions``, with when and ``by``
        whom). A PENDING job is CANCELLED at once. A RUNNING one stays RUNNING, with
        ``cancel_requested_at`` set, until its worker stops it: the task sees
        ``current_job().cancelled`` within about a second (``check_cancelled()`` and
        ``progress()`` raise :class:`~queuelab.JobCancelled`), an async task's coroutine is
        cancelled, and a job still running ``cancel_grace_seconds`` later is killed with its
        worker process (process mode) or abandoned (thread mode). It then ends CANCELLED,
        its attempt unspent, no retry. A job that finishes before its worker sees the
        request ends as it finished. Raises :class:`~queuelab.InvalidTransition` for a
        finished job."""
        return self._runtime.jobs.cancel(arguments.job_id(job_id), self._runtime.clock.now(), arguments.actor(by))

    def prune(self, older_than: timedelta | float | None = None) -> int:
        """Delete COMPLETED and CANCELLED jobs finished longer ago than ``older_than``
        (default: the retention setting)."""
        if older_than is None:
            seconds = self.settings.retention_seconds
            if seconds is None:
                return 0
        else:
            seconds = bounds.seconds("older_than", older_than, zero_ok=True)
        return self._runtime.jobs.prune(self._runtime.clock.now() - seconds)

    # -- metrics ----------------------------------------------------------------------

    def enable_metrics(self) -> JobMetrics:
        """Count what this process's submits and workers do from now on (the counters and
        histograms of ``GET /metrics`` and ``--metrics-port``; see the README's "Logs,
        metrics and traces"); idempotent. Off by default: a job then pays nothing for them.
        A process pool started afterwards counts its children's jobs too."""
        if self._runtime.metrics is None:
            self._runtime.metrics = JobMetrics()
        return self._runtime.metrics

    @property
    def metrics(self) -> JobMetrics | None:
        """This process's counts, None unless :meth:`enable_metrics` was called."""
        return self._runtime.metrics

    def compact(self) -> tuple[compaction.FileUsage, compaction.FileUsage]:
        """SQLite: convert the file to incremental auto-vacuum (so that workers hand a prune's
        free pages back from then on) and rewrite it without its free pages; the file's
        pages (before, after). One VACUUM: it holds the write lock until it ends, so run it
        when the workers can wait. :class:`~queuelab.InvalidArgument` on PostgreSQL, whose
        autovacuum does this (``python -m queuelab vacuum``)."""
        return compaction.compact(self._runtime.db)

    # -- workers ----------------------------------------------------------------------

    @overload
    def worker(
        self,
        concurrency: int = 4,
        mode: Literal["thread"] = "thread",
        *,
        queues: Sequence[str] | None = None,
        start_method: str | None = None,
        prefetch: Prefetch = None,
        async_concurrency: int | None = None,
    ) -> ThreadPool: ...
    @overload
    def worker(
        self,
        concurrency: int,
        mode: Literal["process"],
        *,
        queues: Sequence[str] | None = None,
        start_method: str | None = None,
        prefetch: Prefetch = None,
        async_concurrency: int | None = None,
    ) -> ProcessPool: ...
    @overload
    def worker(
        self,
        concurrency: int = 4,
        mode: Mode = "thread",
        *,
        queues: Sequence[str] | None = None,
        start_method: str | None = None,
        prefetch: Prefetch = None,
        async_concurrency: int | None = None,
    ) -> Pool: ...

    def worker(
        self,
        concurrency: int = 4,
        mode: Mode = "thread",
        *,
        queues: Sequence[str] | None = None,
        start_method: str | None = None,
        prefetch: Prefetch = None,
        async_concurrency: int | None = None,
    ) -> Pool:
        """A worker pool running in the background: ``with q.worker(4, "process"): ...``.

        Thread mode runs ``concurrency`` slots in this process. Process mode runs
        ``concurrency`` worker processes, and can kill a job that passes its timeout.
        ``prefetch``: jobs each worker claims beyond its free slots: a number, or ``"auto"``
        (by its jobs' run time); None: the ``prefetch`` setting (see the README).
        ``async_concurrency``: async (``async def``) jobs each worker runs at once on its
        event loop, beside its slots; None: the ``async_concurrency`` setting (100).
        """
        names = check_pool_args(concurrency, mode, queues, start_method, prefetch, async_concurrency)
        if mode == "thread":
            return ThreadPool(self._runtime, concurrency, names, prefetch, async_concurrency)
        return ProcessPool(self._runtime, concurrency, names, start_method, prefetch, async_concurrency)

    def foreground_worker(self, concurrency: int = 1, *, queues: Sequence[str] | None = None) -> Worker:
        """A worker to run in this thread (``queuelab worker --mode thread``): ``run()``
        works until ``stop()`` (from a signal handler, say), then hands back the jobs it has
        not finished. For a pool in the background, use :meth:`worker`."""
        names = check_pool_args(concurrency, "thread", queues)
        return Worker(self._runtime, concurrency=concurrency, queues=names, mode="thread")

    def autoscaler(self, pool: Resizable, policy: ScalePolicy, *, tick_seconds: float = 2.0) -> Autoscaler:
        """An autoscaler, not yet started, that resizes ``pool`` (from :meth:`worker` or
        :meth:`foreground_worker`) by ``policy`` every ``tick_seconds`` and logs each change
        to :meth:`scale_events`: ``scaler = q.autoscaler(pool, ScalePolicy(max_workers=8)).start()``,
        then ``scaler.stop()`` before the pool stops."""
        return Autoscaler(self._runtime, pool, policy, tick_seconds=tick_seconds)

    def close(self) -> None:
        self._runtime.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait_timeout(job: Job, limit: float) -> WaitTimeout:
    return WaitTimeout(f"job {job.id} did not finish within {limit:g}s (it is {job.status.value})")


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    """``fn`` on ``loop``'s thread; nothing if the loop has closed (its waiter is gone)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn)


def _jobs_of(subs: list[Submission], rows: list[dict[str, Any]], existing: dict[str, Job]) -> list[Job]:
    """The job each submission stands for: the one stored now, or the one stored earlier
    under its idempotency key (also when an earlier submission of this batch had that key)."""
    first_by_key: dict[str, Job] = {}
    result = []
    times = Instants()  # a batch's rows share created_at, and run_at unless delayed
    for sub, row in zip(subs, rows, strict=True):
        key = row["idempotency_key"]
        job = existing.get(key) or first_by_key.get(key) if key is not None else None
        if job is None:
            job = pending_job(row, dict(sub.payload or {}), times)
            if key is not None:
                first_by_key[key] = job
        result.append(job)
    return result


def load_queue(db: str | None, app: str | None, **changes: Any) -> Queue:
    """The queue named by ``--app`` (its tasks registered), on ``--db`` if given, with
    the settings ``changes`` that are not None."""
    changes = {name: value for name, value in changes.items() if value is not None}
    if app is None:
        return Queue(db, **changes)
    module_name, _, attr = app.partition(":")
    if not module_name or not attr:
        raise InvalidArgument(f"--app must be MODULE:ATTR (e.g. myproject.jobs:q), got {app!r}")
    sys.path.insert(0, "")
    try:
        target: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"--app {app!r}: {exc}") from exc
    if not isinstance(target, Queue):
        raise InvalidArgument(f"--app {app!r} names a {type(target).__name__}, not a queuelab Queue")
    if db is not None:
        changes["database_url"] = db
    if changes:
        rebased = Queue(settings=target.settings.with_changes(**changes))
        for task in target.tasks:
            rebased._runtime.tasks.add(task)
        rebased._runtime.periodic.update(target._runtime.periodic)
        return rebased
    return target
