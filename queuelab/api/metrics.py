"""``GET /metrics``: Prometheus text, read from the store at scrape time (so every API
process reports the same numbers, whoever did the work)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from queuelab.queue import Queue


class QueueCollector(Collector):
    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        q = self.queue
        stats = q.stats()
        by_status = GaugeMetricFamily("queuelab_jobs", "Jobs by status and queue", labels=["queue", "status"])
        for name, counts in sorted(stats.by_queue.items()):
            for status, n in counts.items():
                by_status.add_metric([name, status], n)
        yield by_status
        backlog = GaugeMetricFamily(
            "queuelab_runnable_backlog",
            "PENDING jobs a free worker could start now (due, queue not paused, user under quota)",
            labels=["queue"],
        )
        # Every queue the store knows, at 0 when nothing waits (and "default" on an empty
        # store): a series that vanished at 0 would leave an HPA's last value standing, and
        # it would never scale down.
        runnable = q.runnable_backlog()
        for name in sorted({*stats.by_queue, *runnable, "default"}):
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
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
