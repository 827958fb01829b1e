"""The job store: one schema and one set of semantics on SQLite and PostgreSQL."""

from queuelab.store.database import Database
from queuelab.store.jobs import JobFilter, JobStore
from queuelab.store.leases import LeaseStore
from queuelab.store.workers import WorkerInfo, WorkerRegistry

__all__ = ["Database", "JobFilter", "JobStore", "LeaseStore", "WorkerInfo", "WorkerRegistry"]
