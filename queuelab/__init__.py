"""queuelab: durable background jobs on SQLite or PostgreSQL, and a lab to study them."""

from queuelab.clock import FakeClock, SystemClock
from queuelab.config import Settings
from queuelab.errors import (
    ConfigError,
    InvalidArgument,
    InvalidSchedule,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    JobTimeout,
    LeaseLost,
    MissingExtra,
    NoCurrentJob,
    PayloadTooLarge,
    QueuelabError,
    QuotaExceeded,
    RateLimited,
    ResultNotSerializable,
    ScheduleNotFound,
    SchemaVersionError,
    SimulatedFailure,
    StoreError,
    UnknownTask,
    WaitTimeout,
    WorkerLost,
)
from queuelab.models import Attempt, AttemptOutcome, Job, JobStatus, RetryPolicy
from queuelab.queue import Queue
from queuelab.runtime.execution import current_job
from queuelab.runtime.progress import RunningJob
from queuelab.schedules import Schedule, ScheduleSpec
from queuelab.stats import QueueStats
from queuelab.store.scaling import ScaleEvent
from queuelab.submission import Submission
from queuelab.tasks import Task
from queuelab.throttles import Throttle

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "AttemptOutcome",
    "ConfigError",
    "FakeClock",
    "InvalidArgument",
    "InvalidSchedule",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "JobNotFound",
    "JobStatus",
    "JobTimeout",
    "LeaseLost",
    "MissingExtra",
    "NoCurrentJob",
    "PayloadTooLarge",
    "Queue",
    "QueueStats",
    "QueuelabError",
    "QuotaExceeded",
    "RateLimited",
    "ResultNotSerializable",
    "RetryPolicy",
    "RunningJob",
    "ScaleEvent",
    "Schedule",
    "ScheduleNotFound",
    "ScheduleSpec",
    "SchemaVersionError",
    "Settings",
    "SimulatedFailure",
    "StoreError",
    "Submission",
    "SystemClock",
    "Task",
    "Throttle",
    "UnknownTask",
    "WaitTimeout",
    "WorkerLost",
    "__version__",
    "current_job",
]
