"""Pure decisions: what happens to a job after an attempt. No I/O, no clock reads.

The worker turns a run into an :data:`Outcome`, :func:`decide` turns the outcome into a
:data:`Decision`, and the store applies the decision in one transaction. Every outcome
(the task's error, a timeout, a vanished worker, a result that is not JSON) is decided by
:func:`decide_for`, with the retry policy :func:`policy_for` picks: the job's task's where
the task is known, else the settings'. ``Runtime.decide`` is the one caller that reads the
clock and the random source for it.
"""

from __future__ import annotations

import math
import traceback as tb
from dataclasses import dataclass
from typing import Any

from queuelab.models import AttemptOutcome, Lease, RetryPolicy


@dataclass(frozen=True, slots=True)
class Succeeded:
    result: Any


@dataclass(frozen=True, slots=True)
class Errored:
    """An attempt that did not succeed: the task raised, timed out, or its worker vanished."""

    kind: AttemptOutcome  # FAILED, TIMEOUT or LOST
    error_type: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, kind: AttemptOutcome = AttemptOutcome.FAILED) -> Errored:
        """Never raises, whatever the exception's ``__str__`` does."""
        try:
            text: str | None = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
        except Exception:  # a broken __str__ breaks the formatter too
            text = None
        return cls(kind, type(exc).__name__, _safe_str(exc), text)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose message could not be read>"


@dataclass(frozen=True, slots=True)
class Cancelled:
    """An attempt stopped by a cancel request (``q.cancel``): the task saw it and returned
    or raised, its coroutine was cancelled, or it was killed past the grace period."""

    message: str


Outcome = Succeeded | Errored | Cancelled


@dataclass(frozen=True, slots=True)
class Complete:
    result: Any


@dataclass(frozen=True, slots=True)
class Retry:
    run_at: float
    error: Errored


@dataclass(frozen=True, slots=True)
class DeadLetter:
    error: Errored
    reason: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """End the job CANCELLED without spending its attempt; no retry."""

    message: str


Decision = Complete | Retry | DeadLetter | Cancel


def backoff_seconds(attempt: int, policy: RetryPolicy, unit_random: float) -> float:
    """Delay before retry number ``attempt`` (1 = the first retry).

    ``unit_random`` in [0, 1) spreads retries of jobs that failed together (jitter), so a
    failing dependency is not hit by all of them at the same instant.
    """
    try:
        raw = policy.base_seconds * policy.factor ** max(attempt - 1, 0)
    except OverflowError:
        raw = math.inf
    capped = min(raw, policy.max_seconds)
    # Jitter only shortens the delay, so max_seconds stays a true maximum.
    return max(0.0, capped * (1.0 - policy.jitter * unit_random))


def decide(
    outcome: Outcome,
    *,
    attempt: int,
    max_retries: int,
    policy: RetryPolicy,
    now: float,
    unit_random: float,
) -> Decision:
    """``attempt`` is the number of the attempt that just ended (1 for the first run).

    A job runs at most ``max_retries + 1`` times; after the last failure it is dead-lettered.
    """
    if isinstance(outcome, Succeeded):
        return Complete(outcome.result)
    if isinstance(outcome, Cancelled):
        return Cancel(outcome.message)
    if attempt > max_retries:
        runs = "run" if attempt == 1 else "runs"
        return DeadLetter(outcome, f"{outcome.error_type} after {attempt} {runs} (max_retries={max_retries})")
    return Retry(now + backoff_seconds(attempt, policy, unit_random), outcome)


def policy_for(task_policy: RetryPolicy | None, default: RetryPolicy) -> RetryPolicy:
    """The retry policy of an attempt: its task's, if the task declared one, else the default
    (the settings'). A process that does not know the task (a worker of other tasks rescuing
    its lease) uses the default: say so in the task's docs if the two differ much."""
    return task_policy if task_policy is not None else default


def decide_for(lease: Lease, outcome: Outcome, *, policy: RetryPolicy, now: float, unit_random: float) -> Decision:
    """:func:`decide` for the attempt ``lease`` holds (its number and the job's max_retries)."""
    return decide(
        outcome, attempt=lease.attempt, max_retries=lease.max_retries, policy=policy, now=now, unit_random=unit_random
    )
