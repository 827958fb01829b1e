"""``GET /metrics`` read with prometheus_client's own parser after a real run on each
database: the names, types and units Prometheus expects (counters ``_total``, histograms in
seconds, gauges at 0 rather than missing), and counts equal to what happened: jobs
submitted through the API, run by a worker stepped on the test's thread, some failing and
retried, one dead-lettered, one refused by a quota, one rescued. Time is the queue's
FakeClock, so the waits and run times are exact and land in known buckets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from queuelab import FakeClock, Queue, RetryPolicy
from queuelab.api import create_app
from queuelab.runtime.maintenance import Maintenance
from queuelab.runtime.worker import Worker
from queuelab.testing import internals

SOON = RetryPolicy(base_seconds=1.0, factor=1.0, jitter=0.0)
COUNTERS = ("submitted", "refused", "started", "completed", "failed", "retried", "dead_lettered", "rescued")


@pytest.fixture
def client(queue: Queue) -> Iterator[TestClient]:
    with TestClient(create_app(queue)) as c:
        yield c


def families(client: TestClient) -> dict[str, tuple[str, list[Sample]]]:
    text = client.get("/metrics").text
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(text)}


def value(found: dict[str, tuple[str, list[Sample]]], family: str, sample: str, **labels: str) -> float:
    (match,) = [s.value for s in found[family][1] if s.name == sample and s.labels == labels]
    return match


def define_tasks(q: Queue, clock: FakeClock) -> None:
    seen: set[int] = set()

    @q.task(name="ok")
    def ok(n: int) -> int:
        clock.advance(2.0)  # runs 2 s by the queue's clock: the run histogram's le="2.5" bucket
        return n

    @q.task(name="flaky", retry=SOON)
    def flaky(n: int) -> int:
        if n not in seen:  # fails its first attempt, then completes
            seen.add(n)
            raise ValueError("not yet")
        return n

    @q.task(name="broken", max_retries=0)
    def broken() -> None:
        raise KeyError("always")


def run_all(worker: Worker, clock: FakeClock) -> None:
    for _ in range(20):
        clock.advance(0.3)  # each claim waits 0.3 s after the job was due
        worker.step(now=0.0)
    worker.flush()


def test_the_counts_names_types_and_units_of_a_real_run(client: TestClient, queue: Queue, clock: FakeClock) -> None:
    define_tasks(queue, clock)
    for task, n in [("ok", 0), ("ok", 1), ("ok", 2), ("flaky", 0), ("flaky", 1)]:
        assert client.post("/api/submit/", json={"task": task, "payload": {"n": n}, "user_id": "u"}).status_code == 201
    assert client.post("/api/submit/", json={"task": "broken", "user_id": "u"}).status_code == 201
    queue.set_limits("v", max_active=1)
    assert client.post("/api/submit/", json={"task": "ok", "payload": {"n": 9}, "user_id": "v"}).status_code == 201
    assert client.post("/api/submit/", json={"task": "ok", "payload": {"n": 9}, "user_id": "v"}).status_code == 429
    queue.set_limits("v", max_active=None)
    run_all(Worker(internals(queue), concurrency=1, prefetch=0), clock)  # one job a step: exact times

    found = families(client)
    for name in COUNTERS:
        assert found[f"queuelab_jobs_{name}"][0] == "counter"  # exposed as queuelab_jobs_<name>_total
    total = "queuelab_jobs_{}_total".format
    assert value(found, "queuelab_jobs_submitted", total("submitted"), queue="default", task="ok") == 4
    assert value(found, "queuelab_jobs_submitted", total("submitted"), queue="default", task="flaky") == 2
    assert value(found, "queuelab_jobs_refused", total("refused"), reason="max_active") == 1
    assert value(found, "queuelab_jobs_started", total("started"), queue="default", task="flaky") == 4
    assert value(found, "queuelab_jobs_completed", total("completed"), queue="default", task="ok") == 4
    assert value(found, "queuelab_jobs_completed", total("completed"), queue="default", task="flaky") == 2
    assert value(found, "queuelab_jobs_failed", total("failed"), queue="default", task="flaky") == 2
    assert value(found, "queuelab_jobs_retried", total("retried"), queue="default", task="flaky") == 2
    assert value(found, "queuelab_jobs_failed", total("failed"), queue="default", task="broken") == 1
    assert value(found, "queuelab_jobs_dead_lettered", total("dead_lettered"), queue="default", task="broken") == 1
    assert value(found, "queuelab_jobs_dead_lettered", total("dead_lettered"), queue="default", task="ok") == 0
    assert value(found, "queuelab_jobs_rescued", total("rescued")) == 0

    run = "queuelab_job_run_seconds"
    assert found[run][0] == "histogram"
    assert value(found, run, f"{run}_count", queue="default", task="ok") == 4
    assert value(found, run, f"{run}_sum", queue="default", task="ok") == pytest.approx(8.0)  # seconds, not ms
    assert value(found, run, f"{run}_bucket", queue="default", task="ok", le="1.0") == 0
    assert value(found, run, f"{run}_bucket", queue="default", task="ok", le="2.5") == 4
    wait = "queuelab_job_wait_seconds"
    assert found[wait][0] == "histogram"
    assert value(found, wait, f"{wait}_count", queue="default") == 9  # every start: 4 ok, 4 flaky, 1 broken
    assert value(found, wait, f"{wait}_bucket", queue="default", le="0.1") == 0
    assert value(found, wait, f"{wait}_bucket", queue="default", le="+Inf") == 9

    assert found["queuelab_runnable_backlog"][0] == "gauge"
    assert value(found, "queuelab_runnable_backlog", "queuelab_runnable_backlog", queue="default") == 0  # not gone
    assert value(found, "queuelab_jobs", "queuelab_jobs", queue="default", status="PENDING") == 0
    assert value(found, "queuelab_jobs", "queuelab_jobs", queue="default", status="FAILED") == 1


def test_a_rescue_is_counted_with_its_retry(client: TestClient, queue: Queue, clock: FakeClock) -> None:
    queue.task(name="careful", retry=SOON)(lambda: None)
    queue.submit("careful", lease_seconds=10.0)
    assert internals(queue).leases.claim("dead-worker", None, 1, clock.now())  # then it was SIGKILLed
    clock.advance(11.0)
    survivor = Worker(internals(queue))
    assert Maintenance(internals(queue), survivor.held, survivor.info()).rescue(clock.now()) == 1
    found = families(client)
    assert value(found, "queuelab_jobs_rescued", "queuelab_jobs_rescued_total") == 1
    assert value(found, "queuelab_jobs_retried", "queuelab_jobs_retried_total", queue="default", task="careful") == 1
    labels = {"queue": "default", "task": "careful"}
    assert value(found, "queuelab_jobs_submitted", "queuelab_jobs_submitted_total", **labels) == 1


def test_every_known_task_has_its_counters_at_0_before_its_first_job(client: TestClient, queue: Queue) -> None:
    queue.task(name="resize", queue="images")(lambda: None)
    found = families(client)
    labels = {"queue": "images", "task": "resize"}
    for name in ("submitted", "started", "completed", "failed", "retried", "dead_lettered"):
        assert value(found, f"queuelab_jobs_{name}", f"queuelab_jobs_{name}_total", **labels) == 0
    assert value(found, "queuelab_runnable_backlog", "queuelab_runnable_backlog", queue="images") == 0
