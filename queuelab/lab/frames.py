"""The lab's frames: one row per job (:func:`timeline`), and what follows from it:
throughput, wait percentiles, per-user fairness, the dead-letter queue by error, a schedule's ticks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from queuelab.queue import Queue

# -- the lab's frames: one row per job, and what follows from it ------------------------------

TIMELINE_COLUMNS = (
    "job_id",
    "queue",
    "task",
    "user_id",
    "status",
    "attempts",
    "worker",
    "submitted",
    "started",
    "finished",
    "wait",
    "run",
)
PERCENTILES = (0.5, 0.95, 0.99)


def timeline(
    q: Queue, *, queue: str | None = None, since: float | None = None, origin: float | None = None
) -> pd.DataFrame:
    """One row per job: who submitted it, when it was submitted, first started and
    finished (seconds after ``origin``, by default the first submission; the epoch of
    ``origin`` is in ``frame.attrs["origin"]``), its status, attempts and last worker.
    ``wait`` is submit to first start; ``run`` is the last attempt's run time."""
    import pandas as pd

    from queuelab.store.timeline import ATTEMPT_COLUMNS, JOB_COLUMNS

    rows = q.timeline_rows(queue=queue, since=since)
    jobs = pd.DataFrame(rows.jobs, columns=list(JOB_COLUMNS))
    tries = pd.DataFrame(rows.attempts, columns=list(ATTEMPT_COLUMNS))
    first_start = tries.groupby("job_id")["started_at"].min()
    last_worker = tries.groupby("job_id")["worker_id"].last()
    if origin is None:
        origin = float(jobs["created_at"].min()) if len(jobs) else 0.0
    started = jobs["id"].map(first_start).astype(float).fillna(jobs["started_at"].astype(float))
    frame = pd.DataFrame(
        {
            "job_id": jobs["id"],
            "queue": jobs["queue"],
            "task": jobs["task"],
            "user_id": jobs["user_id"],
            "status": jobs["status"],
            "attempts": jobs["attempts"].astype(int),
            "worker": jobs["id"].map(last_worker).fillna(jobs["lease_owner"]),
            "submitted": jobs["created_at"].astype(float) - origin,
            "started": started - origin,
            "finished": jobs["finished_at"].astype(float) - origin,
        }
    )
    frame["wait"] = frame["started"] - frame["submitted"]
    frame["run"] = jobs["finished_at"].astype(float) - jobs["started_at"].astype(float)
    frame.attrs["origin"] = origin
    return frame


# Bin widths a plot of a run may take (seconds): 1-2-5 steps, from a millisecond to a second.
BIN_LADDER = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
MIN_BINS = 20


def bin_seconds(frame: pd.DataFrame) -> float:
    """A bin width for a per-second plot of a :func:`timeline`: one second, or the widest
    step of BIN_LADDER that still cuts the run's span of finishes into MIN_BINS bins."""
    finished = frame["finished"].dropna()
    span = float(finished.max() - finished.min()) if len(finished) else 0.0
    fitting = [width for width in BIN_LADDER if span / width >= MIN_BINS]
    return fitting[-1] if fitting else BIN_LADDER[0]


def throughput(frame: pd.DataFrame, *, freq: float = 1.0) -> pd.DataFrame:
    """Jobs finishing in each ``freq``-second bin of a :func:`timeline`: ``time`` (bin
    start), ``completed``, ``failed`` (to the DLQ), and ``completed_per_second``."""
    import numpy as np
    import pandas as pd

    done = frame[frame["status"].isin(["COMPLETED", "FAILED"]) & frame["finished"].notna()]
    if done.empty:
        return pd.DataFrame({"time": [], "completed": [], "failed": [], "completed_per_second": []})
    bins = np.floor(done["finished"] / freq).astype(int)
    counts = pd.crosstab(bins, done["status"]).reindex(range(int(bins.min()), int(bins.max()) + 1), fill_value=0)
    out = pd.DataFrame(
        {
            "time": counts.index.to_numpy() * freq,
            "completed": counts.get("COMPLETED", pd.Series(0, index=counts.index)).to_numpy(),
            "failed": counts.get("FAILED", pd.Series(0, index=counts.index)).to_numpy(),
        }
    )
    out["completed_per_second"] = out["completed"] / freq
    return out


def wait_percentiles(frame: pd.DataFrame, *, by: str | None = None) -> pd.DataFrame:
    """Submit-to-start wait (seconds) of the started jobs of a :func:`timeline`: jobs, mean,
    p50, p95, p99 and max, overall or per value of column ``by`` (e.g. ``"user_id"``)."""
    import pandas as pd

    started = frame[frame["wait"].notna()]
    groups = [("all", started)] if by is None else list(started.groupby(by))
    rows = []
    for key, part in groups:
        waits = part["wait"]
        row = {by or "group": key, "jobs": len(part), "mean": waits.mean()}
        row.update({f"p{round(q * 100)}": waits.quantile(q) for q in PERCENTILES})
        row["max"] = waits.max()
        rows.append(row)
    return pd.DataFrame(rows, columns=[by or "group", "jobs", "mean", "p50", "p95", "p99", "max"])


def per_user(frame: pd.DataFrame) -> pd.DataFrame:
    """Per user of a :func:`timeline`: jobs, completed, failed, retries, wait p50/p95/max,
    and when their last job started (fairness at a glance)."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(
            columns=[
                "user_id",
                "jobs",
                "completed",
                "failed",
                "retries",
                "wait_p50",
                "wait_p95",
                "wait_max",
                "last_start",
            ]
        )
    grouped = frame.groupby("user_id")
    out = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "completed": grouped["status"].apply(lambda s: int((s == "COMPLETED").sum())),
            "failed": grouped["status"].apply(lambda s: int((s == "FAILED").sum())),
            "retries": grouped["attempts"].apply(lambda a: int((a - 1).clip(lower=0).sum())),
            "wait_p50": grouped["wait"].quantile(0.5),
            "wait_p95": grouped["wait"].quantile(0.95),
            "wait_max": grouped["wait"].max(),
            "last_start": grouped["started"].max(),
        }
    )
    return out.reset_index()


def dlq_by_error(q: Queue, *, queue: str | None = None) -> pd.DataFrame:
    """The dead-letter queue grouped by the error type of each job's last attempt: jobs,
    first and last failure (UTC), one example message and one dead-letter reason."""
    import pandas as pd

    frame = pd.DataFrame(
        q.dlq_errors(queue=queue), columns=["error_type", "jobs", "first_failed", "last_failed", "example", "reason"]
    )
    for column in ("first_failed", "last_failed"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame


TICK_COLUMNS = ("tick", "jobs", "job_id", "status", "lateness", "start_lateness")


def ticks(q: Queue, schedule: str, *, since: float | None = None, limit: int = 10_000) -> pd.DataFrame:
    """One row per tick of the schedule named ``schedule``, from the first it enqueued (at
    ``since`` or later, epoch seconds) to the latest, missed ticks included: ``tick`` (UTC),
    ``jobs`` enqueued for it (0 for a tick no scheduler enqueued), and its job's ``job_id``,
    ``status``, ``lateness`` (seconds from the tick to the job's creation, when a scheduler
    enqueued it) and ``start_lateness`` (to the job's first start). A tick is read from its
    job's idempotency key (``schedule:<name>:<tick>``), among the newest ``limit`` jobs of
    the schedule's task."""
    import pandas as pd

    spec = q.get_schedule(schedule).spec
    found = _tick_jobs(q, schedule, spec.task, since, limit)
    grid = _tick_grid(spec.cron, spec.timezone, found["tick"])
    frame = pd.DataFrame({"tick": pd.Series(grid, dtype=float)})
    frame = frame.merge(found.astype({"tick": float}).drop_duplicates("tick"), on="tick", how="left")
    frame.insert(1, "jobs", frame["tick"].map(found.groupby("tick").size()).fillna(0).astype(int))
    frame["tick"] = pd.to_datetime(frame["tick"], unit="s", utc=True)
    return frame[list(TICK_COLUMNS)]


def _tick_jobs(q: Queue, schedule: str, task: str, since: float | None, limit: int) -> pd.DataFrame:
    """The jobs of ``schedule``'s ticks (at ``since`` or later): tick (epoch seconds), job_id,
    status, lateness, start_lateness."""
    import pandas as pd

    from queuelab.schedules import tick_of

    rows = []
    for job in q.jobs(task=task, limit=limit):
        tick = tick_of(schedule, job.idempotency_key)
        if tick is None or (since is not None and tick < since):
            continue
        started = None if job.started_at is None else job.started_at.timestamp() - tick
        rows.append((tick, job.id, str(job.status), job.created_at.timestamp() - tick, started))
    return pd.DataFrame(rows, columns=["tick", "job_id", "status", "lateness", "start_lateness"])


def _tick_grid(cron: str, timezone: str, enqueued: pd.Series) -> list[float]:
    """Every tick of ``cron`` from the first enqueued to the last (epoch seconds)."""
    from queuelab.schedules import next_tick

    if enqueued.empty:
        return []
    grid, last = [float(enqueued.min())], float(enqueued.max())
    while (after := next_tick(cron, timezone, grid[-1])) <= last:
        grid.append(after)
    return grid
