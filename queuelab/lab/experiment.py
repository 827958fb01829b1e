"""Load experiments against a real queue: submit a planned load on schedule, run it on a real
worker pool, sample the queue while it drains, and return the per-job timeline and a summary.

    from queuelab import lab
    from queuelab.lab import load
    result = lab.run_experiment("sqlite:///lab.db", load.Poisson(rate=200, seconds=10), workers=4)
    result.summary["throughput"], result.summary["wait_p95"]

Each experiment submits to a queue of its own (``lab-<id>``) and its pool serves only that
queue, so experiments can share a database with each other and with real work.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from queuelab.bounds import AUTO, Prefetch, resolve_prefetch
from queuelab.errors import InvalidArgument, QuotaExceeded, RateLimited
from queuelab.lab import frames
from queuelab.lab.load import Load, plan
from queuelab.looper import Looper
from queuelab.models import Job
from queuelab.queue import Queue
from queuelab.runtime.autoscale import ScalePolicy
from queuelab.runtime.pool import Mode, Pool, check_pool_args
from queuelab.submission import Submission

if TYPE_CHECKING:
    import pandas as pd

# The most arrivals one submit_many takes when many are due at once (a Burst): the bench's
# chunk. At 500 the feeder, not the queue, bounded a burst's drain: 20,000 jobs on SQLite,
# 8 worker processes, 8,668 jobs/s in chunks of 500 against 17,075 in chunks of 5,000 (40
# transactions competing with the workers' turns for the write lock, against 4).
SUBMIT_CHUNK = 5000
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    """What an experiment measured. Times are seconds from the experiment's start."""

    name: str
    params: dict[str, Any]
    plan: pd.DataFrame  # the load as planned: at, user_id, duration, fail_rate, priority
    timeline: pd.DataFrame  # one row per arrival (see stats.timeline), refused ones included
    samples: pd.DataFrame  # the queue every sample: time, pending, running, completed, failed, workers
    summary: pd.Series = field(repr=False)

    @property
    def per_user(self) -> pd.DataFrame:
        return frames.per_user(self.timeline)

    def throughput(self, freq: float = 1.0) -> pd.DataFrame:
        return frames.throughput(self.timeline, freq=freq)

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<ExperimentResult {self.name}: {int(s['completed'])}/{int(s['jobs'])} completed, "
            f"{s['throughput']:.0f} jobs/s, wait p50 {s['wait_p50'] * 1000:.1f} ms "
            f"p95 {s['wait_p95'] * 1000:.1f} ms, {int(s['retries'])} retries, {int(s['failed'])} in the DLQ>"
        )


def run_experiment(
    db: Queue | str | None,
    load: Load,
    *,
    workers: int = 4,
    mode: Mode = "thread",
    seed: int = 0,
    max_retries: int | None = None,
    name: str | None = None,
    time_limit: float = 300.0,
    sample_every: float = 0.25,
    progress: bool = True,
    autoscale: ScalePolicy | None = None,
    tick_seconds: float = 1.0,
    prefetch: Prefetch = None,
) -> ExperimentResult:
    """Run ``load`` (see :mod:`queuelab.lab.load`) on ``workers`` workers of ``mode`` against ``db``
    (a Queue, or a database URL to open and close), until every job has finished or
    ``time_limit`` seconds pass (``summary["timed_out"]`` says which).

    With ``autoscale``, the pool starts at the policy's minimum and an
    :class:`~queuelab.runtime.autoscale.Autoscaler` resizes it every ``tick_seconds``;
    ``result.samples["workers"]`` shows what it did. ``prefetch``: jobs each worker claims
    beyond its free slots (default: the queue's setting)."""
    check_pool_args(workers, mode, prefetch=prefetch)
    if not 0 < sample_every <= 60 or not time_limit > 0:
        raise InvalidArgument(f"sample_every must be in (0, 60] and time_limit > 0, got {sample_every}, {time_limit}")
    arrivals = plan(load, seed=seed)
    if arrivals.empty:
        raise InvalidArgument("the load plans no jobs; give it a rate, a duration or a number of jobs")
    queue = db if isinstance(db, Queue) else Queue(db)
    try:
        scaling = (autoscale, tick_seconds) if autoscale is not None else None
        prefetch = resolve_prefetch(prefetch, queue.settings.prefetch)
        return _run(
            queue,
            arrivals,
            workers,
            mode,
            max_retries,
            name,
            time_limit,
            sample_every,
            progress,
            seed,
            scaling,
            prefetch,
        )
    finally:
        if queue is not db:
            queue.close()


def _run(
    q: Queue,
    arrivals: pd.DataFrame,
    workers: int,
    mode: Mode,
    max_retries: int | None,
    name: str | None,
    time_limit: float,
    sample_every: float,
    progress: bool,
    seed: int,
    scaling: tuple[ScalePolicy, float] | None = None,
    prefetch: int | None = None,  # resolved: None is auto
) -> ExperimentResult:
    from tqdm.auto import tqdm

    lab_queue = f"lab-{uuid.uuid4().hex[:8]}"
    name = name or lab_queue
    q.open()  # open (and create) the database before the clock starts
    if scaling is not None:
        workers = scaling[0].min_workers
    pool = q.worker(workers, mode, queues=[lab_queue], prefetch=AUTO if prefetch is None else prefetch).start()
    _wait_ready(q, lab_queue, workers if mode == "process" else 1, time_limit)
    scaler = None if scaling is None else q.autoscaler(pool, scaling[0], tick_seconds=scaling[1]).start()
    origin, started = q.clock.now(), time.monotonic()  # one instant: the plan's time zero
    sampler = Sampler(q, lab_queue, pool, sample_every, origin).start()
    bar = tqdm(total=len(arrivals), desc=name, unit="job", disable=not progress, leave=False)
    try:
        feeder = Feeder(q, lab_queue, arrivals, max_retries)
        deadline = time.monotonic() + time_limit
        timed_out = not feeder.run(started, deadline, lambda: bar.update(sampler.finished - bar.n))
        while not timed_out and sampler.wait_finished(feeder.submitted, timeout=0.2) is False:
            bar.update(sampler.finished - bar.n)
            timed_out = time.monotonic() >= deadline
        bar.update(sampler.finished - bar.n)
    finally:
        bar.close()
        if scaler is not None:
            scaler.stop()
        pool.stop()
        sampler.stop()
    frame = frames.timeline(q, queue=lab_queue, origin=origin)
    frame = _with_plan(frame, feeder, arrivals)
    params: dict[str, Any] = {"workers": workers, "mode": mode, "backend": q.dialect, "seed": seed}
    params["prefetch"] = "auto" if prefetch is None else prefetch
    params["queue"] = lab_queue
    if scaling is not None:
        params["autoscale"] = f"{scaling[0].min_workers}:{scaling[0].max_workers}"
    return ExperimentResult(
        name=name,
        params=params,
        plan=arrivals,
        timeline=frame,
        samples=sampler.frame(),
        summary=summarize(frame, params, timed_out),
    )


def live_workers(q: Queue, queue: str) -> int:
    """Live workers (rows in the store, heartbeating) serving ``queue``."""
    return sum(1 for w in q.live_workers() if queue in w.queues.split(","))


def _wait_ready(q: Queue, queue: str, expected: int, timeout: float) -> None:
    """Start the clock once the pool's workers are up: experiments measure the queue, not
    how long Python takes to start a process."""
    deadline = time.monotonic() + min(timeout, 60.0)
    while live_workers(q, queue) < expected and time.monotonic() < deadline:
        time.sleep(0.02)


class Feeder:
    """Submits each planned arrival when its time comes: a chunk at a time when several are
    due (one transaction), one at a time when an admission limit refuses a chunk."""

    def __init__(self, q: Queue, queue: str, arrivals: pd.DataFrame, max_retries: int | None) -> None:
        self.q, self.queue, self.max_retries = q, queue, max_retries
        self.at = arrivals["at"].to_numpy()
        self.rows = arrivals.to_dict("records")
        self.job_ids: list[str | None] = [None] * len(self.rows)
        self.refused_at: dict[int, float] = {}
        self.submitted = 0

    def run(self, start: float, deadline: float, tick: Any) -> bool:
        """Submit everything on schedule, arrival ``at`` seconds after ``start`` (monotonic,
        the instant of the timeline's origin); False if ``deadline`` passed first."""
        i, n = 0, len(self.rows)
        while i < n:
            now = time.monotonic()
            if now >= deadline:
                return False
            due = int(self.at.searchsorted(now - start, side="right"))
            if due <= i:
                tick()
                time.sleep(min(0.05, max(0.0, self.at[i] - (now - start))))
                continue
            for lo in range(i, due, SUBMIT_CHUNK):
                self._submit(range(lo, min(due, lo + SUBMIT_CHUNK)))
            i = due
        return True

    def _submission(self, k: int) -> Submission:
        row = self.rows[k]
        payload: dict[str, Any] = {"duration": float(row["duration"])}
        if row["fail_rate"]:
            payload["fail_rate"] = float(row["fail_rate"])
        return Submission(
            task="simulate",
            payload=payload,
            user_id=str(row["user_id"]),
            queue=self.queue,
            priority=int(row["priority"]),
            max_retries=self.max_retries,
        )

    def _submit(self, ks: range) -> None:
        try:
            jobs = self.q.submit_many([self._submission(k) for k in ks])
        except (RateLimited, QuotaExceeded):
            if len(ks) > 1:
                for k in ks:
                    self._submit(range(k, k + 1))
                return
            self.refused_at[ks[0]] = self.q.clock.now()
            return
        for k, job in zip(ks, jobs, strict=True):
            self.job_ids[k] = job.id
        self.submitted += len(ks)


class Sampler(Looper):
    """Counts the experiment's jobs by status at start, every ``every`` seconds, and at stop.
    Times are seconds from ``origin`` (epoch seconds, the experiment's time zero)."""

    def __init__(self, q: Queue, queue: str, pool: Pool, every: float, origin: float) -> None:
        super().__init__("queuelab-lab-sampler", every=every, clock=q.clock)
        self.q, self.queue, self.pool, self.origin = q, queue, pool, origin
        self.rows: list[dict[str, float]] = []
        self.finished = 0
        self._changed = threading.Condition()

    def start(self) -> Self:
        self.run_tick()  # the state at time zero
        return super().start()

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        self.run_tick()  # the final state

    def wait_finished(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.finished >= count, timeout)

    def tick(self, now: float, mono: float) -> None:
        """Append one sample, taken at ``now``."""
        counts = self.q.status_counts(self.queue)
        row = {"time": now - self.origin, "workers": float(self.pool.size)}
        row.update({s.lower(): float(counts.get(s, 0)) for s in ("PENDING", "RUNNING", "COMPLETED", "FAILED")})
        self.rows.append(row)
        with self._changed:
            self.finished = sum(counts.get(s, 0) for s in TERMINAL)
            self._changed.notify_all()

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["time", "pending", "running", "completed", "failed", "workers"])


def _with_plan(frame: pd.DataFrame, feeder: Feeder, arrivals: pd.DataFrame) -> pd.DataFrame:
    """The timeline with each job's planned arrival time (``planned``) and the refused
    arrivals as rows of status ``REFUSED``."""
    import pandas as pd

    planned = {jid: float(at) for jid, at in zip(feeder.job_ids, arrivals["at"], strict=True) if jid is not None}
    frame = frame.assign(planned=frame["job_id"].map(planned))
    if feeder.refused_at:
        origin = frame.attrs.get("origin", 0.0)
        refused = pd.DataFrame(
            {
                "user_id": [arrivals["user_id"].iloc[k] for k in feeder.refused_at],
                "status": "REFUSED",
                "attempts": 0,
                "submitted": [t - origin for t in feeder.refused_at.values()],
                "planned": [float(arrivals["at"].iloc[k]) for k in feeder.refused_at],
            }
        )
        frame = pd.concat([frame, refused], ignore_index=True).sort_values("submitted", kind="stable")
        frame = frame.reset_index(drop=True)
        frame.attrs["origin"] = origin
    return frame


def summarize(frame: pd.DataFrame, params: Mapping[str, Any], timed_out: bool = False) -> pd.Series:
    """The headline figures of a timeline: counts, throughput (completed jobs per second from
    the first submission to the last finish), drain rate (from the first start instead, as
    the bench measures a drain), waits, run times and retries."""
    import pandas as pd

    stored = frame[frame["status"] != "REFUSED"]
    completed = int((stored["status"] == "COMPLETED").sum())
    last = stored["finished"].max() if completed or len(stored) else float("nan")
    span = (last - stored["submitted"].min()) if len(stored) else float("nan")
    waits = stored["wait"].dropna()
    figures: dict[str, Any] = {
        "jobs": len(frame),
        "submitted": len(stored),
        "refused": int((frame["status"] == "REFUSED").sum()),
        "completed": completed,
        "failed": int((stored["status"] == "FAILED").sum()),
        "unfinished": int((~stored["status"].isin(TERMINAL)).sum()),
        "retries": int((stored["attempts"] - 1).clip(lower=0).sum()),
        "elapsed": float(last) if last == last else float("nan"),
        "throughput": completed / span if span and span > 0 else float("nan"),
        # The bench's drain rate (queuelab.bench.harness.drain_rate_of), from the same stored
        # times: completed jobs over first start to last finish, without the submit-to-start wait.
        "drain_rate": completed / drained if (drained := last - stored["started"].min()) > 0 else float("nan"),
        "wait_mean": waits.mean(),
        "wait_p50": waits.quantile(0.5),
        "wait_p95": waits.quantile(0.95),
        "wait_p99": waits.quantile(0.99),
        "wait_max": waits.max(),
        "run_mean": stored["run"].mean(),
        "timed_out": timed_out,
    }
    return pd.Series({**params, **figures}, dtype=object)


def sweep(grid: Mapping[str, Sequence[Any]], *, repeat: int = 1, progress: bool = True, **fixed: Any) -> pd.DataFrame:
    """Run :func:`run_experiment` for every combination of ``grid`` (e.g.
    ``{"workers": [1, 2, 4], "mode": ["thread", "process"]}``), ``repeat`` times each, with
    the ``fixed`` arguments; one row per run: the parameters, then the summary."""
    import pandas as pd
    from tqdm.auto import tqdm

    if not grid or any(isinstance(v, str) or not isinstance(v, Sequence) or not v for v in grid.values()):
        raise InvalidArgument(f"grid must map argument names to non-empty lists of values, got {grid!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise InvalidArgument(f"repeat must be a whole number >= 1, got {repeat!r}")
    keys = list(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]
    rows = []
    with tqdm(total=len(combos) * repeat, desc="sweep", disable=not progress) as bar:
        for combo in combos:
            for r in range(repeat):
                args = {**fixed, **combo}
                db, load = args.pop("db", None), args.pop("load")
                result = run_experiment(db, load, progress=False, **args)
                row = {k: v for k, v in combo.items() if k not in ("db", "load")}
                rows.append({**row, "repeat": r, **result.summary.to_dict()})
                bar.update()
    return pd.DataFrame(rows)


def wait_for(q: Queue, job_ids: Sequence[str], *, timeout: float = 60.0, poll: float = 0.05) -> list[Job]:
    """Block until every job in ``job_ids`` has finished (COMPLETED, FAILED or CANCELLED);
    return the jobs. Raises ``TimeoutError`` naming how many are still open."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = [q.get(job_id) for job_id in job_ids]
        open_jobs = [j for j in jobs if j.status.value not in TERMINAL]
        if not open_jobs:
            return jobs
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{len(open_jobs)} of {len(jobs)} jobs still open after {timeout:g}s")
        time.sleep(poll)
