"""Every limit queuelab enforces, written once, and the small checks that enforce them.

Settings, submissions, per-user limits, pools, listings and the API's schemas all read their
bounds here, so a bound cannot drift between two places that check it. The checks raise
:class:`~queuelab.errors.InvalidArgument` in the house form, naming the argument, the value
and what is allowed: ``priority must be a whole number between 0 and 9, got 12``.

This module is at the bottom of the package: it imports nothing of queuelab but its errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from datetime import timedelta
from typing import Literal, TypeAlias, TypeGuard, TypeVar

from queuelab.errors import InvalidArgument

T = TypeVar("T")

DAY_SECONDS = 86_400.0

# -- a job ----------------------------------------------------------------------------
PRIORITY_MIN, PRIORITY_MAX = 0, 9
MAX_RETRIES = 100
MAX_LEASE_SECONDS = DAY_SECONDS  # a lease, and a job's timeout
MAX_DELAY_SECONDS = 366 * DAY_SECONDS
MAX_USER_ID_LENGTH = 200
MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_QUEUE_NAME_LENGTH = 64
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_DEPENDENCIES = 100  # jobs one job may run after
MAX_TASK_NAME_LENGTH = 200
TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")
MIN_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES = 16, 64 * 1024 * 1024  # what the max_payload_bytes setting may be
MAX_SIMULATED_SECONDS = 3600.0  # the built-in simulate task's duration

# -- per user -------------------------------------------------------------------------
MAX_COUNT = 1_000_000_000  # a rate limit's N, or a quota: fits every database's 32-bit INTEGER
MAX_WEIGHT = 1000
MAX_WINDOW_SECONDS = 366 * DAY_SECONDS  # a rate limit's window

# -- workers --------------------------------------------------------------------------
MAX_CONCURRENCY = 1024  # slots of a thread pool, processes of a process pool
MAX_PREFETCH = 10_000  # jobs a worker may claim beyond its free slots
MAX_ASYNC_CONCURRENCY = 10_000  # async jobs one worker runs at once on its event loop
AUTO_PREFETCH = 1000  # the most a worker claims ahead when the prefetch is "auto" (the default)
AUTO: Literal["auto"] = "auto"  # a pool's prefetch: claim ahead by the jobs' run time, whatever the setting
# A pool's prefetch argument: jobs, "auto", or None (the setting).
Prefetch: TypeAlias = int | Literal["auto"] | None

# -- reading --------------------------------------------------------------------------
MAX_PAGE = 500  # jobs or scale events in one API page
MAX_CURSOR_LENGTH = 200  # the API's next_cursor, as it comes back
MAX_LIST_LIMIT = 10_000  # jobs in one Queue.jobs() list
MAX_FRAME_ROWS = 10_000_000  # rows in one Queue.jobs_frame()
MAX_SERIES_SECONDS = 3600  # seconds in one Queue.completed_series()
MAX_JOB_WAIT_SECONDS = 366 * DAY_SECONDS  # Queue.wait(timeout=)
MAX_HTTP_WAIT_SECONDS = 60.0  # GET /api/status/{id}/?wait=: a request held longer meets proxies' timeouts

# -- settings -------------------------------------------------------------------------
MAX_RETRY_DELAY_SECONDS = 30 * DAY_SECONDS  # retry_max_seconds
MAX_RETENTION_SECONDS = 10 * 365 * DAY_SECONDS
MAX_WAIT_SECONDS = 3600.0  # sqlite_busy_timeout_seconds, poll_interval_seconds


# -- predicates: the bool-is-an-int subtlety in one place ------------------------------


def is_whole(value: object, lo: int, hi: int | None = None) -> TypeGuard[int]:
    """An int (not a bool, which Python counts as one) with ``lo <= value <= hi``."""
    return not isinstance(value, bool) and isinstance(value, int) and lo <= value and (hi is None or value <= hi)


def is_number(value: object) -> TypeGuard[float]:
    """An int or float, not a bool, neither NaN nor infinite."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


# -- what is allowed, in words (also for config's messages about text) -------------------


def whole_form(lo: int, hi: int | None = None) -> str:
    return f"a whole number between {lo} and {hi}" if hi is not None else f"a whole number >= {lo}"


def seconds_form(hi: float = math.inf, *, zero_ok: bool = False) -> str:
    if math.isinf(hi):
        return f"a number of seconds {'>= 0' if zero_ok else '> 0'}"
    return f"a number of seconds between 0 and {hi:g}" if zero_ok else f"a number of seconds > 0 and <= {hi:g}"


# -- checks -----------------------------------------------------------------------------


def whole(name: str, value: object, lo: int, hi: int | None = None) -> int:
    """``value`` if it is a whole number from ``lo`` to ``hi`` (no upper bound: None)."""
    if not is_whole(value, lo, hi):
        raise InvalidArgument(f"{name} must be {whole_form(lo, hi)}, got {value!r}")
    return value


def whole_or_none(name: str, value: object, lo: int, hi: int | None = None) -> int | None:
    """Like :func:`whole`, and None passes (it means "not set")."""
    if value is None:
        return None
    if not is_whole(value, lo, hi):
        raise InvalidArgument(f"{name} must be {whole_form(lo, hi)} or None, got {value!r}")
    return value


def seconds(name: str, value: object, hi: float = math.inf, *, zero_ok: bool = False) -> float:
    """``value`` (a number or a timedelta) as float seconds, finite, > 0 (>= 0 with
    ``zero_ok``) and <= ``hi``."""
    given = value.total_seconds() if isinstance(value, timedelta) else value
    if not is_number(given) or given < 0 or (given == 0 and not zero_ok) or given > hi:
        raise InvalidArgument(f"{name} must be {seconds_form(hi, zero_ok=zero_ok)}, got {value!r}")
    return float(given)


def number(name: str, value: object, *, zero_ok: bool = False) -> float:
    """``value`` as a float if it is a finite number > 0 (>= 0 with ``zero_ok``)."""
    if not is_number(value) or value < 0 or (value == 0 and not zero_ok):
        raise InvalidArgument(f"{name} must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value!r}")
    return float(value)


def one_of(name: str, value: object, allowed: Collection[T]) -> T:
    """The choice ``value`` equals (True is not 1 here)."""
    for choice in allowed:
        if value == choice and isinstance(value, bool) == isinstance(choice, bool):
            return choice
    raise InvalidArgument(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")


def prefetch_or_none(value: object) -> Prefetch:
    """A pool's ``prefetch``: None (the setting), ``"auto"``, or 0 to MAX_PREFETCH jobs."""
    if value is None or value == AUTO:
        return None if value is None else AUTO
    if not is_whole(value, 0, MAX_PREFETCH):
        raise InvalidArgument(f'prefetch must be "auto", {whole_form(0, MAX_PREFETCH)} or None, got {value!r}')
    assert isinstance(value, int)
    return value


def resolve_prefetch(given: Prefetch, setting: int | None) -> int | None:
    """A worker's prefetch from a pool's argument: None takes the setting, ``"auto"`` is
    auto (None), a number is itself."""
    if given is None:
        return setting
    return None if given == AUTO else int(given)
