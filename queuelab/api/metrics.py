"""``GET /metrics``: Prometheus text. Two kinds of figures:

- gauges read from the store at scrape time (jobs by status, the runnable backlog, the
  oldest runnable job's age, ...), the same from every API process whoever did the work:
  aggregate them across replicas with ``max``, not ``sum``. Every known queue has a series,
  at 0 when it is empty (a series that vanished would leave an autoscaler's last value
  standing);
- this process's counters and histograms (:mod:`queuelab.runtime.metrics`): its submits and
  refusals, and what its embedded workers (``--workers``; a process pool's children
  included) started, completed, failed, retried, dead-lettered and rescued: ``sum`` them
  across replicas and worker processes (workers run elsewhere serve theirs on
  ``--metrics-port``)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from queuelab.models import JobStatus
from queuelab.queue import Queue
from queuelab.runtime.exposition import JobMetricsCollector


class QueueCollector(Collector):
    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        q = self.queue
        stats = q.stats()
        runnable = q.runnable_backlog()
        queues = sorted({*stats.by_queue, *runnable, *(task.queue for task in q.tasks), "default"})
        by_status = GaugeMetricFamily("queuelab_jobs", "Jobs by status and queue", labels=["queue", "status"])
        for name in queues:
            for status in JobStatus:
                by_status.add_metric([name, status.value], stats.by_queue.get(name, {}).get(status.value, 0))
        yield by_status
        backlog = GaugeMetricFamily(
            "queuelab_runnable_backlog",
            "PENDING jobs a free worker could start now (due, queue not paused, user under quota)",
            labels=["queue"],
        )
        # Every queue the store or this process's tasks know, at 0 when nothing waits (and
        # "default" on an empty store): a series that vanished at 0 would leave an HPA's
        # last value standing, and it would never scale down.
        for name in queues:
            backlog.add_metric([name], runnable.get(name, 0))
        yield backlog
        oldest = stats.oldest_pending_age_seconds
        yield GaugeMetricFamily(
            "queuelab_oldest_pending_age_seconds", "Age of the oldest runnable job", value=oldest or 0.0
        )
        yield GaugeMetricFamily(
            "queuelab_completed_per_second",
            "Jobs completed per second over the last minute",
            value=stats.completed_per_second,
        )
        outcomes = GaugeMetricFamily(
            "queuelab_attempts_last_minute", "Attempts that ended in the last minute", labels=["outcome"]
        )
        for outcome, n in stats.outcomes_last_minute.items():
            outcomes.add_metric([outcome], n)
        yield outcomes
        yield GaugeMetricFamily("queuelab_live_workers", "Worker processes heartbeating", value=len(stats.live_workers))
        yield GaugeMetricFamily(
            "queuelab_waiting_callers",
            "Requests (long polls) and calls of this process waiting for a job to finish",
            value=q.waiting_callers(),
        )


def metrics_response(queue: Queue) -> Response:
    registry = CollectorRegistry()
    registry.register(QueueCollector(queue))
    metrics = queue.enable_metrics()
    registry.register(JobMetricsCollector(metrics, lambda: [(task.queue, task.name) for task in queue.tasks]))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
