"""Every error queuelab raises on purpose.

One root, :class:`QueuelabError`. Subclasses also inherit the builtin they refine, so
``except ValueError`` keeps working for callers who do not know queuelab. A driver error
is always kept as ``__cause__``.
"""

from __future__ import annotations


class QueuelabError(Exception):
    """queuelab could not do what was asked."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class InvalidArgument(QueuelabError, ValueError):
    """An argument is not of the allowed form."""


class ConfigError(InvalidArgument):
    """A setting (keyword argument or QUEUELAB_* variable) is not of the allowed form."""


class MissingExtra(ConfigError, ImportError):
    """A feature needs a package of one of queuelab's extras (postgres, api, lab, redis,
    bench) that is not installed; the message names the extra and the pip line."""


class UnknownTask(InvalidArgument, LookupError):
    """No task is registered under that name."""


class PayloadTooLarge(InvalidArgument):
    """The payload is larger than the configured limit."""


class JobNotFound(QueuelabError, LookupError):
    """No job has that id."""


class InvalidSchedule(InvalidArgument):
    """A periodic job's definition is not of the allowed form (its cron expression, time
    zone, name or catch-up)."""


class ScheduleNotFound(QueuelabError, LookupError):
    """No schedule has that name."""


class InvalidTransition(QueuelabError):
    """The job's status does not allow that operation."""


class LeaseLost(QueuelabError):
    """The lease on this job is no longer held by the caller (it expired and was rescued,
    or the job was released); nothing was changed."""


class RateLimited(QueuelabError):
    """The user has submitted too many jobs in the current window."""

    def __init__(self, message: str | None = None, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(QueuelabError):
    """The user has too many active jobs."""


class StoreError(QueuelabError):
    """The database failed or refused the operation."""


class WaitTimeout(QueuelabError, TimeoutError):
    """A job did not finish within the time :meth:`Queue.wait <queuelab.Queue.wait>` was given."""


class SchemaVersionError(StoreError):
    """The database was written by a newer queuelab schema than this version knows."""


# The next three name the errors an attempt can end in without the task raising them. They
# are recorded as an attempt's ``error_type`` (``Job.errors``, the API, the dashboard), never
# raised to a caller: compare ``attempt.error_type == JobTimeout.__name__``.


class JobTimeout(QueuelabError, TimeoutError):
    """The job ran longer than its timeout."""


class WorkerLost(QueuelabError):
    """The worker running the job stopped heartbeating; its lease expired and the job was rescued."""


class ResultNotSerializable(QueuelabError, TypeError):
    """The task returned a value that is not JSON."""


class JobCancelled(QueuelabError):
    """Raised in a running task by ``current_job().check_cancelled()`` once someone has
    cancelled its job (``q.cancel``): the job then ends CANCELLED, its attempt unspent."""


class NoCurrentJob(InvalidArgument, LookupError):
    """``current_job()`` was called outside a running job."""


class SimulatedFailure(QueuelabError):
    """The built-in ``simulate`` task was asked to fail."""
