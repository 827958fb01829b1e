"""Running one leased job: call the task, turn what happened into an outcome, decide."""

from __future__ import annotations

import json
import random
from contextvars import ContextVar

from queuelab.errors import InvalidArgument, QueuelabError
from queuelab.models import Lease, RetryPolicy
from queuelab.policy import Decision, Errored, Outcome, Succeeded, decide
from queuelab.runtime import Runtime

_current: ContextVar[Lease | None] = ContextVar("queuelab_current_job", default=None)


def current_job() -> Lease:
    """The lease of the job this thread is running (id, attempt, user, queue)."""
    lease = _current.get()
    if lease is None:
        raise InvalidArgument("current_job() was called outside a running job")
    return lease


class ResultNotSerializable(QueuelabError, TypeError):
    """The task returned a value that is not JSON."""


def run_task(runtime: Runtime, lease: Lease) -> Outcome:
    """Call the task; every exception it raises becomes a failed outcome."""
    reset = _current.set(lease)
    try:
        task = runtime.tasks.get(lease.task)
        result = task.run(lease.payload)
        _check_json(result)
        return Succeeded(result)
    except BaseException as exc:
        return Errored.from_exception(exc)
    finally:
        _current.reset(reset)


def decide_after(runtime: Runtime, lease: Lease, outcome: Outcome) -> Decision:
    task = runtime.tasks.get(lease.task) if lease.task in runtime.tasks else None
    policy = task.retry if task is not None and task.retry is not None else runtime.retry_policy
    return decide(
        outcome,
        attempt=lease.attempt,
        max_retries=lease.max_retries,
        policy=policy,
        now=runtime.clock.now(),
        unit_random=random.random(),
    )


def last_resort(runtime: Runtime, lease: Lease, exc: BaseException) -> Decision:
    """A decision when deciding itself failed: retry with the default policy, or dead-letter."""
    error = Errored.from_exception(exc)
    return decide(
        error,
        attempt=lease.attempt,
        max_retries=lease.max_retries,
        policy=RetryPolicy(),
        now=runtime.clock.now(),
        unit_random=random.random(),
    )


def _check_json(result: object) -> None:
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultNotSerializable(f"the task's return value is not JSON-serialisable: {exc}") from None
