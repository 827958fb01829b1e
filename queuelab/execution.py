"""Running one leased job: call the task, turn what happened into an outcome, decide."""

from __future__ import annotations

import json
import random

from queuelab.errors import QueuelabError
from queuelab.models import Lease
from queuelab.policy import Decision, Errored, Outcome, Succeeded, decide
from queuelab.runtime import Runtime


class ResultNotSerializable(QueuelabError, TypeError):
    """The task returned a value that is not JSON."""


def run_task(runtime: Runtime, lease: Lease) -> Outcome:
    """Call the task; every exception it raises becomes a failed outcome."""
    try:
        task = runtime.tasks.get(lease.task)
        result = task.run(lease.payload)
        _check_json(result)
        return Succeeded(result)
    except (Exception, SystemExit) as exc:
        return Errored.from_exception(exc)


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


def _check_json(result: object) -> None:
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultNotSerializable(f"the task's return value is not JSON-serialisable: {exc}") from None
