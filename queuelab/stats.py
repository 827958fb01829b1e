"""Queue statistics as values, and tidy pandas frames of the jobs and attempts tables
(pandas is imported only when a frame is asked for). The lab's analysis frames are
:mod:`queuelab.lab.frames`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from queuelab.extras import require
from queuelab.models import JobStatus
from queuelab.runtime import Runtime
from queuelab.schedules import Schedule
from queuelab.store import WorkerInfo
from queuelab.store.reports import Reports
from queuelab.store.scaling import ScaleEvent, ScaleLog

if TYPE_CHECKING:
    import pandas as pd

THROUGHPUT_WINDOW_SECONDS = 60.0
RECENT_SCALE_EVENTS = 10
TIME_COLUMNS = ("created_at", "run_at", "started_at", "finished_at")


@dataclass(frozen=True, slots=True)
class QueueStats:
    by_status: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    oldest_pending_age_seconds: float | None  # of jobs runnable now
    live_workers: list[WorkerInfo]
    completed_per_second: float  # over the last minute
    outcomes_last_minute: dict[str, int] = field(default_factory=dict)
    recent_scale_events: list[ScaleEvent] = field(default_factory=list)  # the autoscalers' latest, newest first
    schedules: list[Schedule] = field(default_factory=list)  # the periodic jobs, by name

    @property
    def dlq_size(self) -> int:
        return self.by_status.get(JobStatus.FAILED, 0)


def read_stats(runtime: Runtime, user_id: str | None = None) -> QueueStats:
    """The queue's statistics; with ``user_id``, the job counts, ages and outcomes of that
    user's jobs only (the workers, scale events and schedules are the queue's)."""
    reports = Reports(runtime.db)
    now = runtime.clock.now()
    counts = reports.counts(user_id)
    by_status = {s.value: 0 for s in JobStatus}
    by_queue: dict[str, dict[str, int]] = {}
    for (queue, status), n in counts.items():
        by_status[status] = by_status.get(status, 0) + n
        by_queue.setdefault(queue, {s.value: 0 for s in JobStatus})[status] = n
    oldest = reports.oldest_runnable(now, user_id)
    outcomes = reports.outcomes_since(now - THROUGHPUT_WINDOW_SECONDS, user_id)
    return QueueStats(
        by_status=by_status,
        by_queue=by_queue,
        oldest_pending_age_seconds=None if oldest is None else max(0.0, now - oldest),
        live_workers=runtime.workers.live(now, runtime.settings.worker_ttl_seconds),
        completed_per_second=outcomes["COMPLETED"] / THROUGHPUT_WINDOW_SECONDS,
        outcomes_last_minute=outcomes,
        recent_scale_events=ScaleLog(runtime.db).recent(RECENT_SCALE_EVENTS),
        schedules=runtime.schedules.all(),
    )


def jobs_frame(runtime: Runtime, *, limit: int) -> pd.DataFrame:
    require(("pandas",), extra="lab", feature="Queue.jobs_frame()")
    import pandas as pd

    from queuelab.store.reports import FRAME_COLUMNS

    frame = pd.DataFrame(Reports(runtime.db).job_rows(limit), columns=list(FRAME_COLUMNS))
    for column in TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    frame["forced"] = frame["forced"].astype(bool)
    return frame


def attempts_frame(runtime: Runtime, *, limit: int) -> pd.DataFrame:
    require(("pandas",), extra="lab", feature="Queue.attempts_frame()")
    import pandas as pd

    frame = pd.DataFrame(Reports(runtime.db).attempt_rows(limit))
    if frame.empty:
        return frame
    for column in ("started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame
