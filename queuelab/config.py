"""Settings: keyword arguments, then ``QUEUELAB_*`` environment variables, then defaults.

Every value is parsed and checked when a :class:`Settings` is built, however it is built
(``Settings(...)``, :meth:`Settings.load`, :meth:`Settings.with_changes`); a bad one raises
:class:`ConfigError` naming the setting (or the variable), the value and the form expected.
The bounds come from :mod:`queuelab.bounds`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from queuelab import bounds
from queuelab.errors import ConfigError, InvalidArgument
from queuelab.limits import RATE_FORM, RateLimit

DEFAULT_DATABASE_URL = "sqlite:///queuelab.db"
SQLITE_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
POSTGRES_POOLING_MODES = ("session", "transaction")
MAX_PREFETCH = bounds.MAX_PREFETCH  # kept here for widgets.py, which reads it from config


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
    # Jobs a worker claims ahead, beyond its free slots, to run them without a transaction
    # each (see queuelab.runtime.worker). None ("auto"): as many as its jobs' measured run time
    # justifies, up to bounds.AUTO_PREFETCH; a number: that many (0: claim only for free slots).
    prefetch: int | None = None
    # Async (``async def``) jobs one worker runs at once on its event loop, beside its slots.
    async_concurrency: int = 100
    shutdown_grace_seconds: float = 10.0
    # A running job cancelled (q.cancel) that has not stopped this long after its worker saw
    # the request is stopped by force: its process exits (process mode), or its thread is
    # abandoned (thread mode). The same default as a stop's grace period.
    cancel_grace_seconds: float = 10.0
    retention_seconds: float | None = 7 * 24 * 3600.0
    worker_ttl_seconds: float = 15.0
    # Per-user limits (defaults for every user; per-user overrides live in the database).
    rate_limit: RateLimit | None = None  # submissions per sliding window
    max_active_per_user: int | None = None  # PENDING + RUNNING
    max_running_per_user: int | None = None  # RUNNING, enforced in the claim
    redis_url: str | None = None  # run the submission rate limiter in Redis
    # PostgreSQL behind a pooler: "transaction" (PgBouncer's transaction pooling) turns off
    # server-side prepared statements, and LISTEN (which needs a session of its own) goes to
    # ``listen_url``, a direct connection, or, without one, idle workers and waiters poll.
    postgres_pooling: str = "session"
    listen_url: str | None = None

    def __post_init__(self) -> None:
        """Parse and check every field; keep the parsed form (``"12"`` → 12.0). A field still
        holding its default is skipped: the defaults are checked once, by the tests, so
        ``Settings()`` stays as cheap as building the dataclass."""
        for name, parse in _PARSERS.items():
            value = getattr(self, name)
            if value is _DEFAULTS[name]:
                continue
            parsed = parse(name, value)
            if parsed is not value:
                object.__setattr__(self, name, parsed)  # frozen: set once, while building

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``overrides`` > environment > defaults. A keyword of None
        falls back to the environment; a bad variable's error names the variable."""
        env = os.environ if env is None else env
        _check_known(overrides)
        values = {name: value for name, value in overrides.items() if value is not None}
        for name in _PARSERS.keys() - values.keys():
            var = "QUEUELAB_" + name.upper()
            if env.get(var, "").strip():
                values[name] = _PARSERS[name](var, env[var].strip())
        return cls(**values)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked like keyword arguments."""
        _check_known(changes)
        return replace(self, **changes)


def _check_known(names: Mapping[str, Any]) -> None:
    unknown = sorted(names.keys() - _PARSERS.keys())
    if unknown:
        known = ", ".join(sorted(_PARSERS))
        raise ConfigError(f"unknown setting {unknown[0]!r}; known settings: {known}")


def _seconds(hi: float, *, zero_ok: bool = False) -> Callable[[str, Any], float]:
    """A number of seconds, from a number or its text."""

    def parse(name: str, value: Any) -> float:
        number = _float(value)
        if not (bounds.is_number(number) and 0 <= number <= hi and (zero_ok or number > 0)):
            raise ConfigError(f"{name} must be {bounds.seconds_form(hi, zero_ok=zero_ok)}, got {value!r}")
        return number

    return parse


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _integer(lo: int, hi: int) -> Callable[[str, Any], int]:
    """A whole number, from an int or its text (not a float, not a bool)."""

    def parse(name: str, value: Any) -> int:
        number = _int(value)
        if not bounds.is_whole(number, lo, hi):
            raise ConfigError(f"{name} must be {bounds.whole_form(lo, hi)}, got {value!r}")
        return number

    return parse


def _int(value: Any) -> int | None:
    if isinstance(value, bool | float):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _url(name: str, value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(("sqlite:", "sqlite+pysqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        raise ConfigError(
            f"{name} must be an SQLAlchemy URL for SQLite (sqlite:///path.db) or PostgreSQL "
            f"(postgresql+psycopg://user@host/db), got {value!r}"
        )
    return text


def _pooling(name: str, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in POSTGRES_POOLING_MODES:
        raise ConfigError(f"{name} must be one of {', '.join(POSTGRES_POOLING_MODES)}, got {value!r}")
    return text


def _listen_url(name: str, value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    if not text or text.lower() == "none":
        return None
    if not text.startswith(("postgresql:", "postgresql+psycopg:", "postgres:")):
        raise ConfigError(f"{name} must be a PostgreSQL URL (postgresql://user@host:5432/db), got {value!r}")
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
    return _seconds(bounds.MAX_RETENTION_SECONDS)(name, value)


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
    return _integer(0, bounds.MAX_COUNT)(name, value) or None


def _prefetch(name: str, value: Any) -> int | None:
    if value is None or str(value).strip().lower() == "auto":
        return None
    try:
        return _integer(0, bounds.MAX_PREFETCH)(name, value)
    except ConfigError:
        form = bounds.whole_form(0, bounds.MAX_PREFETCH)
        raise ConfigError(f"{name} must be auto or {form}, got {value!r}") from None


def _redis_url(name: str, value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    if not text or text.lower() == "none":
        return None
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{name} must be a Redis URL (redis://host:6379/0), got {value!r}")
    return text


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "database_url": _url,
    "lease_seconds": _seconds(bounds.MAX_LEASE_SECONDS),
    "max_retries": _integer(0, bounds.MAX_RETRIES),
    "retry_base_seconds": _seconds(bounds.MAX_LEASE_SECONDS, zero_ok=True),
    "retry_max_seconds": _seconds(bounds.MAX_RETRY_DELAY_SECONDS, zero_ok=True),
    "max_payload_bytes": _integer(bounds.MIN_PAYLOAD_BYTES, bounds.MAX_PAYLOAD_BYTES),
    "sqlite_synchronous": _synchronous,
    "postgres_pooling": _pooling,
    "listen_url": _listen_url,
    "sqlite_busy_timeout_seconds": _seconds(bounds.MAX_WAIT_SECONDS),
    "poll_interval_seconds": _seconds(bounds.MAX_WAIT_SECONDS),
    "prefetch": _prefetch,
    "async_concurrency": _integer(1, bounds.MAX_ASYNC_CONCURRENCY),
    "shutdown_grace_seconds": _seconds(bounds.DAY_SECONDS, zero_ok=True),
    "cancel_grace_seconds": _seconds(bounds.DAY_SECONDS, zero_ok=True),
    "retention_seconds": _optional_seconds,
    "worker_ttl_seconds": _seconds(bounds.DAY_SECONDS),
    "rate_limit": _rate_limit,
    "max_active_per_user": _optional_count,
    "max_running_per_user": _optional_count,
    "redis_url": _redis_url,
}
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings)}
