"""Running one leased job: call the task, turn what happened into an outcome, decide.

Every way an attempt can end goes through :meth:`Runtime.decide
<queuelab.runtime.Runtime.decide>`: what the task returned or raised (:func:`attempt`, or
for an async task :func:`attempt_coroutine`), a timeout (:func:`timed_out`; an async task's
coroutine is cancelled at its timeout, in :func:`run_coroutine`), and a vanished worker
(the store's rescue), and a cancel (``q.cancel`` on a running job: the worker sets the
job's ``cancel`` event; whatever the task then returns or raises, the outcome is
:class:`~queuelab.policy.Cancelled`).
"""

from __future__ import annotations

import asyncio
import json
from contextvars import ContextVar

from queuelab.errors import JobTimeout, NoCurrentJob, ResultNotSerializable
from queuelab.models import AttemptOutcome, Lease
from queuelab.policy import Cancelled, Decision, Errored, Outcome, Succeeded
from queuelab.runtime import tracing
from queuelab.runtime.context import Runtime
from queuelab.runtime.progress import CancelSignal, RunningJob, Write

_current: ContextVar[RunningJob | None] = ContextVar("queuelab_current_job", default=None)


def current_job() -> RunningJob:
    """The job this thread (or this coroutine) is running: its id, attempt, user, queue, payload, and
    ``progress(fraction, message)`` to report how far it has got."""
    job = _current.get()
    if job is None:
        raise NoCurrentJob("current_job() was called outside a running job")
    return job


CANCELLED_BEFORE_START = "cancelled before it started"
CANCELLED_WHILE_RUNNING = "cancelled while running; the task stopped"


def run_task(runtime: Runtime, lease: Lease, cancel: CancelSignal | None = None) -> Outcome:
    """Call the task; every exception it raises becomes a failed outcome, and whatever it
    does once ``cancel`` is set, a cancelled one. Its last progress report is stored
    before the attempt ends."""
    if cancel is not None and cancel.is_set():
        return Cancelled(CANCELLED_BEFORE_START)
    job = RunningJob(lease, lambda fraction, message: runtime.leases.report_progress(lease, fraction, message), cancel)
    reset = _current.set(job)
    try:
        task = runtime.tasks.get(lease.task)
        result = task.run(lease.payload)
        _check_json(result)
        return Succeeded(result) if not job.cancelled else Cancelled(CANCELLED_WHILE_RUNNING)
    except BaseException as exc:
        return Errored.from_exception(exc) if not job.cancelled else Cancelled(CANCELLED_WHILE_RUNNING)
    finally:
        _current.reset(reset)
        job.flush()


def attempt(runtime: Runtime, lease: Lease, cancel: CancelSignal | None = None) -> Decision:
    """Run the job and decide what follows, in a span where OpenTelemetry is configured
    (:mod:`.tracing`). Never raises: should deciding itself fail (a bug), that failure is
    the attempt's error, decided the same way."""
    tracer = tracing.tracer()
    if tracer is None:
        return _attempt(runtime, lease, cancel)
    with tracing.running(tracer, lease) as span:
        decision = _attempt(runtime, lease, cancel)
        tracing.decided(span, decision)
        return decision


def _attempt(runtime: Runtime, lease: Lease, cancel: CancelSignal | None) -> Decision:
    try:
        return runtime.decide(lease, run_task(runtime, lease, cancel))
    except BaseException as exc:
        return runtime.decide(lease, Errored.from_exception(exc))


def cancelled(runtime: Runtime, lease: Lease, message: str) -> Decision:
    """The decision for a cancelled job its worker stopped by force (past the grace period)."""
    return runtime.decide(lease, Cancelled(message))


def timed_out(runtime: Runtime, lease: Lease, limit: float) -> Decision:
    """The decision for a job that ran past its timeout of ``limit`` seconds."""
    return runtime.decide(lease, _timeout(limit))


def _timeout(limit: float) -> Errored:
    return Errored(AttemptOutcome.TIMEOUT, JobTimeout.__name__, f"job ran longer than its timeout of {limit:g}s")


async def run_coroutine(runtime: Runtime, lease: Lease, write: Write, cancel: CancelSignal | None = None) -> Outcome:
    """Await the async task; past its timeout its coroutine is cancelled and the outcome is
    a timeout. ``current_job()`` is set in this coroutine's own context (each asyncio task
    has one), so jobs running together on one loop each see their own. ``write`` stores a
    progress report without blocking the loop (the caller waits for the last one).
    ``cancel``: set, with the coroutine's asyncio task cancelled, when someone cancels the
    job; the outcome is then a cancel, whatever the task does."""
    if cancel is not None and cancel.is_set():
        return Cancelled(CANCELLED_BEFORE_START)
    job = RunningJob(lease, write, cancel)
    _current.set(job)
    limit = lease.timeout_seconds
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            result = await runtime.tasks.get(lease.task).run(lease.payload)
        if deadline.expired():  # the task caught its cancellation and returned
            return _timeout(limit or 0.0)
        _check_json(result)
        return Succeeded(result) if not job.cancelled else Cancelled(CANCELLED_WHILE_RUNNING)
    except BaseException as exc:
        if isinstance(exc, TimeoutError) and deadline.expired():
            return _timeout(limit or 0.0)
        if job.cancelled:  # its asyncio task was cancelled for it (or it raised on a check)
            _uncancel(exc)
            return Cancelled(CANCELLED_WHILE_RUNNING)
        if _cancelled_by_worker(exc):
            raise
        return Errored.from_exception(exc)
    finally:
        job.flush()


async def attempt_coroutine(
    runtime: Runtime, lease: Lease, write: Write, cancel: CancelSignal | None = None
) -> Decision:
    """:func:`attempt` for an async task: run its coroutine and decide what follows."""
    tracer = tracing.tracer()
    if tracer is None:
        return await _attempt_coroutine(runtime, lease, write, cancel)
    with tracing.running(tracer, lease) as span:
        decision = await _attempt_coroutine(runtime, lease, write, cancel)
        tracing.decided(span, decision)
        return decision


async def _attempt_coroutine(runtime: Runtime, lease: Lease, write: Write, cancel: CancelSignal | None) -> Decision:
    try:
        return runtime.decide(lease, await run_coroutine(runtime, lease, write, cancel))
    except BaseException as exc:
        if _cancelled_by_worker(exc):
            raise
        return runtime.decide(lease, Errored.from_exception(exc))


def _cancelled_by_worker(exc: BaseException) -> bool:
    """Whether ``exc`` is this coroutine's own cancellation (a stopping worker's, whose job is
    handed back: no outcome to decide), not a CancelledError the task raised itself."""
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0


def _uncancel(exc: BaseException) -> None:
    """The job's own cancellation is handled: let its coroutine await again (the last
    progress report) without a pending cancellation."""
    task = asyncio.current_task()
    if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0:
        task.uncancel()


def _check_json(result: object) -> None:
    if result is None:  # what most tasks return: no need to encode it to know
        return
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultNotSerializable(f"the task's return value is not JSON-serialisable: {exc}") from None
