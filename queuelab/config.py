"""Settings: keyword arguments, then ``QUEUELAB_*`` environment variables, then defaults.

Every value is parsed and checked once, here; a bad one raises :class:`ConfigError` naming
the setting, the value and the form expected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from queuelab.errors import ConfigError, InvalidArgument
from queuelab.limits import RATE_FORM, RateLimit

DEFAULT_DATABASE_URL = "sqlite:///queuelab.db"
SQLITE_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


MAX_PREFETCH = 10_000  # jobs a worker may claim beyond its free slots (every way of setting it)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    lease_seconds: float = 30.0
    max_retries: int = 3
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 300.0
    max_payload_bytes: int = 256 * 1024
    # WAL + NORMAL: a commit survives a crash of any process; a power loss may drop the last
    # few commits (never corrupts). FULL fsyncs every commit and survives power loss too.
    sqlite_synchronous: str = "NORMAL"
    sqlite_busy_timeout_seconds: float = 30.0
    poll_interval_seconds: float = 1.0
    # Jobs a worker claims beyond its free slots, to run them without a transaction each
    # (see queuelab.worker). 0: claim only for free slots; at most MAX_PREFETCH.
    prefetch: int = 0
    shutdown_grace_seconds: float = 10.0
    retention_seconds: float | None = 7 * 24 * 3600.0
    worker_ttl_seconds: float = 15.0
    # Per-user limits (defaults for every user; per-user overrides live in the database).
    rate_limit: RateLimit | None = None  # submissions per sliding window
    max_active_per_user: int | None = None  # PENDING + RUNNING
    max_running_per_user: int | None = None  # RUNNING, enforced in the claim
    redis_url: str | None = None  # run the submission rate limiter in Redis

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``overrides`` > environment > defaults, validating each."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        known = {f.name for f in fields(cls)}
        for name, value in overrides.items():
            if name not in known:
                raise ConfigError(f"unknown setting {name!r}; known settings: {', '.join(sorted(known))}")
            if value is not None:
                values[name] = _PARSERS[name](name, value)
        for name in known - values.keys():
            var = "QUEUELAB_" + name.upper()
            if env.get(var, "").strip():
                values[name] = _PARSERS[name](var, env[var].strip())
        return cls(**values)

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **{k: _PARSERS[k](k, v) for k, v in changes.items()})


def _number(lo: float, hi: float, *, allow_lo: bool, what: str = "seconds") -> Callable[[str, Any], float]:
    def parse(name: str, value: Any) -> float:
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        ok = (number >= lo if allow_lo else number > lo) and number <= hi
        if not ok:
            low = f">= {lo:g}" if allow_lo else f"> {lo:g}"
            raise ConfigError(f"{name} must be a number of {what} {low} and <= {hi:g}, got {value!r}")
        return number

    return parse


def _integer(lo: int, hi: int) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        try:
            if isinstance(value, bool | float):
                raise ValueError
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a whole number between {lo} and {hi}, got {value!r}") from None
        if not lo <= number <= hi:
            raise ConfigError(f"{name} must be a whole number between {lo} and {hi}, got {value!r}")
        return number

    return parse


def _url(name: str, value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(("sqlite:", "sqlite+pysqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        raise ConfigError(
            f"{name} must be an SQLAlchemy URL for SQLite (sqlite:///path.db) or PostgreSQL "
            f"(postgresql+psycopg://user@host/db), got {value!r}"
        )
    return text


def _synchronous(name: str, value: Any) -> str:
    text = str(value).strip().upper()
    if text not in SQLITE_SYNCHRONOUS_MODES:
        raise ConfigError(f"{name} must be one of {', '.join(SQLITE_SYNCHRONOUS_MODES)}, got {value!r}")
    return text


def _optional_seconds(name: str, value: Any) -> float | None:
    if value is None or str(value).strip().lower() in ("none", "off"):
        return None
    if not isinstance(value, bool) and _is_zero(value):
        return None
    return _number(0, 10 * 365 * 86400, allow_lo=False)(name, value)


def _is_zero(value: Any) -> bool:
    try:
        return float(value) == 0.0
    except (TypeError, ValueError):
        return False


def _rate_limit(name: str, value: Any) -> RateLimit | None:
    if value is None or isinstance(value, RateLimit):
        return value
    try:
        return RateLimit.parse(str(value), name)
    except InvalidArgument:
        raise ConfigError(f"{name} must be {RATE_FORM}, got {value!r}") from None


def _optional_count(name: str, value: Any) -> int | None:
    if value is None or str(value).strip().lower() in ("none", "off", "0"):
        return None
    return _integer(0, 1_000_000_000)(name, value) or None


def _redis_url(name: str, value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    if not text or text.lower() == "none":
        return None
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{name} must be a Redis URL (redis://host:6379/0), got {value!r}")
    return text


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "database_url": _url,
    "lease_seconds": _number(0, 86400, allow_lo=False),
    "max_retries": _integer(0, 100),
    "retry_base_seconds": _number(0, 86400, allow_lo=True),
    "retry_max_seconds": _number(0, 30 * 86400, allow_lo=True),
    "max_payload_bytes": _integer(16, 64 * 1024 * 1024),
    "sqlite_synchronous": _synchronous,
    "sqlite_busy_timeout_seconds": _number(0, 3600, allow_lo=False),
    "poll_interval_seconds": _number(0, 3600, allow_lo=False),
    "prefetch": _integer(0, MAX_PREFETCH),
    "shutdown_grace_seconds": _number(0, 86400, allow_lo=True),
    "retention_seconds": _optional_seconds,
    "worker_ttl_seconds": _number(0, 86400, allow_lo=False),
    "rate_limit": _rate_limit,
    "max_active_per_user": _optional_count,
    "max_running_per_user": _optional_count,
    "redis_url": _redis_url,
}
