"""Per-user limits as values, their text forms, and the pure sliding-window decision.

A **rate limit** caps submissions: at most N per sliding window (``60/minute``). A
**concurrency quota** caps jobs at once: ``max_active`` (PENDING + RUNNING, checked at
submit) and ``max_running`` (RUNNING, enforced inside the claim). ``weight`` scales a
user's share of the workers under fair scheduling.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from queuelab import bounds
from queuelab.errors import InvalidArgument

UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
         "hour": 3600.0, "d": 86400.0, "day": 86400.0}  # fmt: skip
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")
RATE_FORM = "N/unit (e.g. 60/minute, 10/second, 1000/hour, 5/30s) or none"


@dataclass(frozen=True, slots=True)
class RateLimit:
    count: int
    window_seconds: float

    def __str__(self) -> str:
        return f"{self.count}/{self.window_seconds:g}s"

    @classmethod
    def parse(cls, text: str, name: str = "rate_limit") -> RateLimit | None:
        """``"60/minute"`` → RateLimit(60, 60.0); ``"none"`` → None."""
        raw = str(text).strip().lower()
        if raw in ("none", "off", "0", ""):
            return None
        match = _RATE.match(raw)
        unit = None
        if match:
            word = match.group(3)
            unit = UNITS.get(word) or UNITS.get(word.removesuffix("s"))
        if match is None or unit is None or not 1 <= int(match.group(1)) <= bounds.MAX_COUNT:
            raise InvalidArgument(f"{name} must be {RATE_FORM}, with N from 1 to {bounds.MAX_COUNT}, got {text!r}")
        window = (float(match.group(2)) if match.group(2) else 1.0) * unit
        if not 0 < window <= bounds.MAX_WINDOW_SECONDS:
            days = bounds.MAX_WINDOW_SECONDS / bounds.DAY_SECONDS
            raise InvalidArgument(f"{name} must have a window from 1 second to {days:g} days, got {text!r}")
        return cls(int(match.group(1)), window)


@dataclass(frozen=True, slots=True)
class UserLimits:
    """Limits for one user (or the defaults, user ``*``). ``None``: not set here (fall back);
    :data:`UNLIMITED` values (0) switch a limit off explicitly."""

    rate_limit: RateLimit | None = None
    max_active: int | None = None
    max_running: int | None = None
    weight: int | None = None

    def over(self, fallback: UserLimits) -> UserLimits:
        """These limits, with unset fields taken from ``fallback``."""
        merged: dict[str, Any] = {
            f.name: _first(getattr(self, f.name), getattr(fallback, f.name)) for f in fields(self)
        }
        return UserLimits(**merged)


OFF_RATE = RateLimit(0, 0.0)  # an explicit "no rate limit" that overrides a default


def _first(*values: object) -> object:
    return next((v for v in values if v is not None), None)


def enabled(value: int | None) -> int | None:
    """A quota value with 0 meaning off."""
    return value if value else None


def rate_enabled(rate: RateLimit | None) -> RateLimit | None:
    return rate if rate is not None and rate.count > 0 else None


def retry_after(in_window: Sequence[float], limit: RateLimit, now: float, wanted: int = 1) -> float | None:
    """Sliding window log: ``in_window`` are the times of the user's submissions in
    (now - window, now]. None if ``wanted`` more fit; else seconds until they would.

    The window slides with every submission, so there is no boundary at which 2N can
    pass in a burst (as with fixed windows).
    """
    times = sorted(t for t in in_window if now - limit.window_seconds < t <= now)
    excess = len(times) + wanted - limit.count
    if excess <= 0:
        return None
    if wanted > limit.count:
        return limit.window_seconds
    return max(0.0, times[excess - 1] + limit.window_seconds - now)


def check_quota(name: str, value: object) -> int | None:
    """A quota from a caller: a whole number >= 0 (0 = off) or None (not set)."""
    if value is None:
        return None
    if not bounds.is_whole(value, 0, bounds.MAX_COUNT):
        raise InvalidArgument(
            f"{name} must be {bounds.whole_form(0, bounds.MAX_COUNT)} (0 switches it off) or None, got {value!r}"
        )
    return value


def check_weight(value: object) -> int | None:
    return bounds.whole_or_none("weight", value, 1, bounds.MAX_WEIGHT)
