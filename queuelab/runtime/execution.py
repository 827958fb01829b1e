"""Running one leased job: call the task, turn what happened into an outcome, decide.

Every way an attempt can end goes through :meth:`Runtime.decide
<queuelab.runtime.Runtime.decide>`: what the task returned or raised (:func:`attempt`),
a timeout (:func:`timed_out`), and a vanished worker (the store's rescue).
"""

from __future__ import annotations

import json
from contextvars import ContextVar

from queuelab.errors import JobTimeout, NoCurrentJob, ResultNotSerializable
from queuelab.models import AttemptOutcome, Lease
from queuelab.policy import Decision, Errored, Outcome, Succeeded
from queuelab.runtime.context import Runtime
from queuelab.runtime.progress import RunningJob

_current: ContextVar[RunningJob | None] = ContextVar("queuelab_current_job", default=None)


def current_job() -> RunningJob:
    """The job this thread is running: its id, attempt, user, queue, payload, and
    ``progress(fraction, message)`` to report how far it has got."""
    job = _current.get()
    if job is None:
        raise NoCurrentJob("current_job() was called outside a running job")
    return job


def run_task(runtime: Runtime, lease: Lease) -> Outcome:
    """Call the task; every exception it raises becomes a failed outcome. Its last
    progress report is stored before the attempt ends."""
    job = RunningJob(lease, lambda fraction, message: runtime.leases.report_progress(lease, fraction, message))
    reset = _current.set(job)
    try:
        task = runtime.tasks.get(lease.task)
        result = task.run(lease.payload)
        _check_json(result)
        return Succeeded(result)
    except BaseException as exc:
        return Errored.from_exception(exc)
    finally:
        _current.reset(reset)
        job.flush()


def attempt(runtime: Runtime, lease: Lease) -> Decision:
    """Run the job and decide what follows. Never raises: should deciding itself fail (a
    bug), that failure is the attempt's error, decided the same way."""
    try:
        return runtime.decide(lease, run_task(runtime, lease))
    except BaseException as exc:
        return runtime.decide(lease, Errored.from_exception(exc))


def timed_out(runtime: Runtime, lease: Lease, limit: float) -> Decision:
    """The decision for a job that ran past its timeout of ``limit`` seconds."""
    error = Errored(AttemptOutcome.TIMEOUT, JobTimeout.__name__, f"job ran longer than its timeout of {limit:g}s")
    return runtime.decide(lease, error)


def _check_json(result: object) -> None:
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultNotSerializable(f"the task's return value is not JSON-serialisable: {exc}") from None
