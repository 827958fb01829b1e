"""What this process's submitters and workers did, counted in plain Python (no dependency):
the counters and histograms that ``GET /metrics`` and ``--metrics-port`` expose
(:mod:`queuelab.runtime.exposition` renders them with prometheus_client).

Off unless something asks for them (:meth:`Queue.enable_metrics <queuelab.Queue.enable_metrics>`:
the API does, and a worker with ``--metrics-port``): ``Runtime.metrics`` is then None and a
job pays one ``is None`` check. On, a start costs a lock and a few dictionary updates; the
outcomes of a turn are counted together, under one lock, where the turn's acks are written.

Counts are of what was *written*: an outcome whose ack found its lease lost is not counted.
A process pool's children each count their own and write snapshots the parent adds up
(:mod:`queuelab.runtime.snapshots`); :meth:`JobMetrics.add_source` is how the parent sees them.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from queuelab.extras import require
from queuelab.models import Lease
from queuelab.policy import Complete, DeadLetter, Decision, Retry
from queuelab.store.leases import Finished

# name, help, label names. Exposed as queuelab_jobs_<name>_total.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "submitted": ("Jobs stored by a submit in this process (an idempotent replay is not counted)", ("queue", "task")),
    "refused": ("Submissions refused by a per-user limit in this process", ("reason",)),
    "started": ("Attempts started by this process's workers", ("queue", "task")),
    "completed": ("Attempts that completed, as written by this process's workers", ("queue", "task")),
    "failed": ("Attempts that failed (raised, timed out, or lost with their worker)", ("queue", "task")),
    "retried": ("Failed attempts whose job was scheduled to run again", ("queue", "task")),
    "dead_lettered": ("Failed attempts whose job went to the dead-letter queue (FAILED)", ("queue", "task")),
    "rescued": ("Jobs whose worker stopped heartbeating, rescued by this process", ()),
}
# Seconds. The wait runs from when an attempt was due (its submit, or its scheduled or retry
# time) to its start: for a job submitted to run now, submit to start.
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
RUN_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
HISTOGRAMS: dict[str, tuple[str, tuple[str, ...], tuple[float, ...]]] = {
    "wait": ("Seconds from when an attempt was due (submit, schedule or retry) to its start", ("queue",), WAIT_BUCKETS),
    "run": ("Seconds an attempt ran, start to its written outcome", ("queue", "task"), RUN_BUCKETS),
}
REFUSED_RATE = "rate_limit"
REFUSED_QUOTA = "max_active"

Key = tuple[str, tuple[str, ...]]  # (metric, label values)


def require_prometheus(feature: str) -> None:
    """:class:`~queuelab.errors.MissingExtra` naming the api extra where prometheus_client is
    missing (the counting here needs nothing; serving the counts needs it)."""
    require(("prometheus_client",), extra="api", feature=feature)


@dataclass(slots=True)
class Histogram:
    counts: list[int]  # per bucket (not cumulative), the last one +Inf
    sum: float = 0.0

    def observe(self, bounds: Sequence[float], value: float) -> None:
        self.counts[bisect_left(bounds, value)] += 1
        self.sum += value

    def add(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum


@dataclass(slots=True)
class Snapshot:
    """Every count at one moment: what the exposition renders, and what a child writes."""

    counters: dict[Key, float] = field(default_factory=dict)
    histograms: dict[Key, Histogram] = field(default_factory=dict)

    def add(self, other: Snapshot) -> None:
        for key, value in other.counters.items():
            self.counters[key] = self.counters.get(key, 0.0) + value
        for key, hist in other.histograms.items():
            mine = self.histograms.setdefault(key, Histogram([0] * len(hist.counts)))
            mine.add(hist)

    def to_json(self) -> dict[str, Any]:
        return {
            "counters": [[name, list(labels), value] for (name, labels), value in self.counters.items()],
            "histograms": [[name, list(labels), h.counts, h.sum] for (name, labels), h in self.histograms.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        counters = {(name, tuple(labels)): float(value) for name, labels, value in data["counters"]}
        histograms = {(name, tuple(labels)): Histogram(list(c), float(s)) for name, labels, c, s in data["histograms"]}
        return cls(counters, histograms)


class JobMetrics:
    """A process's counts; thread-safe. ``add_source``: another snapshot to add at read
    time (a process pool's children)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = Snapshot()
        self._sources: list[Callable[[], Snapshot]] = []

    def add_source(self, source: Callable[[], Snapshot]) -> None:
        self._sources.append(source)

    def snapshot(self) -> Snapshot:
        """Everything counted here and by the sources, added up."""
        total = Snapshot()
        with self._lock:
            total.add(self._counts)
        for source in self._sources:
            total.add(source())
        return total

    def submitted(self, rows: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            for row in rows:
                self._count("submitted", (row["queue"], row["task"]))

    def refused(self, reason: str) -> None:
        with self._lock:
            self._count("refused", (reason,))

    def started(self, lease: Lease) -> None:
        """An attempt started (``lease.started_at``: when, wall time)."""
        with self._lock:
            self._count("started", (lease.queue, lease.task))
            if lease.run_at is not None:
                self._observe("wait", (lease.queue,), max(0.0, lease.started_at - lease.run_at))

    def written(self, finished: Sequence[Finished], lost: Sequence[Lease] = ()) -> None:
        """A turn's outcomes were written, but those of ``lost`` (their lease was gone)."""
        gone = {(lease.job_id, lease.token) for lease in lost} if lost else None
        with self._lock:
            for done in finished:
                lease = done.lease
                if gone is not None and (lease.job_id, lease.token) in gone:
                    continue
                labels = (lease.queue, lease.task)
                self._decided(done.decision, labels)
                self._observe("run", labels, max(0.0, done.finished_at - lease.started_at))

    def rescued(self, count: int) -> None:
        with self._lock:
            self._count("rescued", (), count)

    def counting(self, decide: Callable[[Lease, Any], Decision]) -> Callable[[Lease, Any], Decision]:
        """``decide``, counting each decision it makes (a rescue's: written in the same
        transaction)."""

        def counted(lease: Lease, outcome: Any) -> Decision:
            decision = decide(lease, outcome)
            with self._lock:
                self._decided(decision, (lease.queue, lease.task))
            return decision

        return counted

    def _decided(self, decision: Decision, labels: tuple[str, ...]) -> None:
        if isinstance(decision, Complete):
            self._count("completed", labels)
        elif isinstance(decision, (Retry, DeadLetter)):
            self._count("failed", labels)
            self._count("retried" if isinstance(decision, Retry) else "dead_lettered", labels)

    def _count(self, name: str, labels: tuple[str, ...], n: float = 1) -> None:
        counters = self._counts.counters
        key = (name, labels)
        counters[key] = counters.get(key, 0.0) + n

    def _observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        bounds = HISTOGRAMS[name][2]
        hist = self._counts.histograms.get((name, labels))
        if hist is None:
            hist = self._counts.histograms[(name, labels)] = Histogram([0] * (len(bounds) + 1))
        hist.observe(bounds, value)
