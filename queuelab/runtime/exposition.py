"""A process's :class:`~queuelab.runtime.metrics.JobMetrics` as Prometheus metrics, and a
worker's own ``/metrics`` server (``--metrics-port``). Needs prometheus_client (the api
extra): import this module only after :func:`require_prometheus`.

Names follow Prometheus's conventions: counters end in ``_total``, durations are
histograms in seconds (``_seconds``), every counter has a series at 0 for each task this
process knows, in the task's queue, before its first job (a series that first appears at
1 hides that first increase from ``rate()``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from queuelab.runtime.metrics import COUNTERS, HISTOGRAMS, JobMetrics, Snapshot

PREFIX = "queuelab"
Known = Callable[[], Iterable[tuple[str, str]]]  # (queue, task) pairs to show at 0


def counter_name(name: str) -> str:
    return f"{PREFIX}_jobs_{name}"  # prometheus_client adds _total


def histogram_name(name: str) -> str:
    return f"{PREFIX}_job_{name}_seconds"


class JobMetricsCollector(Collector):
    def __init__(self, metrics: JobMetrics, known: Known = lambda: ()) -> None:
        self.metrics = metrics
        self.known = known

    def collect(self) -> Iterator[Metric]:
        snapshot = self.metrics.snapshot()
        known = sorted(set(self.known()))
        for name, (text, labels) in COUNTERS.items():
            family = CounterMetricFamily(counter_name(name), text, labels=list(labels))
            values = {key[1]: value for key, value in snapshot.counters.items() if key[0] == name}
            if labels == ("queue", "task"):
                values = {**dict.fromkeys(known, 0.0), **values}
            elif not labels:
                values.setdefault((), 0.0)
            for label_values, value in sorted(values.items()):
                family.add_metric(list(label_values), value)
            yield family
        yield from _histograms(snapshot)


def _histograms(snapshot: Snapshot) -> Iterator[Metric]:
    for name, (text, labels, bounds) in HISTOGRAMS.items():
        family = HistogramMetricFamily(histogram_name(name), text, labels=list(labels))
        for (metric, label_values), hist in sorted(snapshot.histograms.items(), key=lambda item: item[0]):
            if metric != name:
                continue
            cumulative, buckets = 0, []
            for bound, count in zip([*map(_le, bounds), "+Inf"], hist.counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            family.add_metric(list(label_values), buckets, hist.sum)
        yield family


def _le(bound: float) -> str:
    return repr(float(bound))


def registry_for(metrics: JobMetrics, known: Known = lambda: ()) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(JobMetricsCollector(metrics, known))
    return registry


class MetricsServer:
    """``GET /metrics`` of one process's counts on ``port`` (0: a free one), in a thread of
    its own, until :meth:`stop`."""

    def __init__(self, metrics: JobMetrics, port: int, known: Known = lambda: (), host: str = "0.0.0.0") -> None:
        self._server, self._thread = start_http_server(port, host, registry=registry_for(metrics, known))

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
