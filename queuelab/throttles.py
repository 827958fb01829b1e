"""Execution throttles as values, and the pure window arithmetic.

A **throttle** caps *starts*: at most N jobs of one task, queue or user start in any sliding
window (``20/10s``), counted across every worker and machine, and enforced when a worker
claims. A rate limit (limits.py) caps *submissions* the same way; a concurrency quota caps
jobs at once. A job held back by a throttle stays PENDING and spends no attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from queuelab.errors import InvalidArgument
from queuelab.limits import RateLimit

MAX_NAME_LENGTH = 200  # as the task and user_id columns


class Scope(StrEnum):
    TASK = "task"
    QUEUE = "queue"
    USER = "user"


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most ``rate.count`` starts of the jobs of ``scope`` ``name`` per ``rate.window_seconds``."""

    scope: Scope
    name: str
    rate: RateLimit

    @property
    def key(self) -> str:
        """The key its starts are recorded under (``task:send_email``)."""
        return key_of(self.scope, self.name)

    def __str__(self) -> str:
        return f"{self.scope} {self.name!r}: {self.rate.count} starts per {self.rate.window_seconds:g}s"


def key_of(scope: Scope, name: str) -> str:
    return f"{scope.value}:{name}"


def parse(text: str | None, name: str = "throttle") -> RateLimit | None:
    """``"100/minute"`` → RateLimit(100, 60.0); None or ``"none"`` → None (no throttle)."""
    return None if text is None else RateLimit.parse(text, name)


def target(task: str | None, queue: str | None, user: str | None) -> tuple[Scope, str]:
    """The one scope a caller named, as (scope, name)."""
    named = [(s, v) for s, v in ((Scope.TASK, task), (Scope.QUEUE, queue), (Scope.USER, user)) if v is not None]
    if len(named) != 1:
        given = ", ".join(s.value for s, _ in named) or "none"
        raise InvalidArgument(f"a throttle applies to exactly one of task=, queue= or user=, got {given}")
    scope, name = named[0]
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"{scope.value} must be a name of 1 to {MAX_NAME_LENGTH} characters, got {name!r}")
    return scope, name


def room(rate: RateLimit, started_in_window: int) -> int:
    """How many more may start now, given the starts counted in the window."""
    return max(0, rate.count - started_in_window)


def frees_at(times: Sequence[float], rate: RateLimit, now: float) -> float | None:
    """When the next start fits, given the start ``times`` (any order; those in the
    window count): None if one fits now; else the moment the oldest start that must leave
    the window has left it."""
    window = sorted(t for t in times if t > now - rate.window_seconds)
    excess = len(window) + 1 - rate.count
    if excess <= 0:
        return None
    return window[excess - 1] + rate.window_seconds


def matches(throttle: Throttle, task: str, queue: str, user: str) -> bool:
    """Whether a job of this task, queue and user counts against ``throttle``."""
    value = {Scope.TASK: task, Scope.QUEUE: queue, Scope.USER: user}[throttle.scope]
    return value == throttle.name
