"""Traces (the otel extra): an HTTP submit through the API, its job run by a worker; the
SDK's in-memory exporter then holds one trace: the request's server span (FastAPI's own),
the submit's span under it, and each run's span under the submit, continued from the
context stored with the job. On each database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

pytest.importorskip("opentelemetry.sdk", reason="the otel extra (opentelemetry-sdk) is not installed")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from queuelab import FakeClock, Queue, RetryPolicy, Submission
from queuelab.api import create_app
from queuelab.runtime.worker import Worker
from queuelab.testing import internals

SOON = RetryPolicy(base_seconds=1.0, factor=1.0, jitter=0.0)


@contextmanager
def configured() -> Iterator[InMemorySpanExporter]:
    """A global SDK tracer provider exporting to memory, meanwhile. OpenTelemetry sets its
    global provider once per process; its own test utilities reset these two globals
    between tests, as here."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER = None
        trace._TRACER_PROVIDER_SET_ONCE = Once()


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    with configured() as exporter:
        yield exporter


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The span's parents, nearest first, as far as the exported spans go."""
    by_id = {s.context.span_id: s for s in spans}
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def test_one_trace_shows_the_request_the_job_and_its_runs(
    queue: Queue, clock: FakeClock, exported: InMemorySpanExporter
) -> None:
    seen: list[int] = []

    @queue.task(name="note", retry=SOON)
    def note(n: int) -> int:
        seen.append(n)
        if len(seen) == 1:
            raise ValueError("not yet")  # the first run fails: a second run, in the same trace
        return n

    with TestClient(create_app(queue)) as client:
        answer = client.post("/api/submit/", json={"task": "note", "payload": {"n": 7}, "user_id": "alice"})
    assert answer.status_code == 201
    worker = Worker(internals(queue), concurrency=1, prefetch=0)
    for _ in range(3):
        worker.step(now=0.0)
        clock.advance(1.5)
    worker.flush()
    assert queue.get(answer.json()["job_id"]).result == 7

    spans = list(exported.get_finished_spans())
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    (submit,) = [s for s in spans if s.name == "submit note"]
    runs = [s for s in spans if s.name == "run note"]
    assert len(runs) == 2
    assert submit.kind is SpanKind.PRODUCER
    assert server in ancestors(submit, spans)  # (FastAPI's operation spans may sit between)
    for run in runs:
        assert run.kind is SpanKind.CONSUMER
        assert run.context.trace_id == server.context.trace_id
        assert ancestors(run, spans)[0] is submit  # the run continues the submit's context
        assert run.attributes is not None
        assert run.attributes["messaging.message.id"] == answer.json()["job_id"]
    first, second = sorted(runs, key=lambda s: s.start_time or 0)
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes is not None
    assert first.attributes["queuelab.outcome"] == "retry_scheduled"
    assert second.attributes is not None
    assert (second.attributes["queuelab.attempt"], second.attributes["queuelab.outcome"]) == (2, "completed")


def test_a_job_submitted_without_tracing_runs_in_a_trace_of_its_own(queue: Queue) -> None:
    queue.task(name="note")(lambda: None)
    job = queue.submit("note")  # no provider configured: no span, no context stored
    with configured() as exported:
        worker = Worker(internals(queue), concurrency=1)
        worker.step(now=0.0)
        worker.flush()
    (run,) = exported.get_finished_spans()
    assert (run.name, run.parent) == ("run note", None)
    assert queue.get(job.id).status.value == "COMPLETED"


@pytest.mark.parametrize("jobs", [3, 250])  # one INSERT_BATCH (PostgreSQL) or executemany; a COPY past 200 rows
def test_every_job_of_a_batch_continues_its_submits_trace(
    queue: Queue, exported: InMemorySpanExporter, jobs: int
) -> None:
    queue.task(name="note")(lambda: None)
    first, *_ = queue.submit_many([Submission(task="note") for _ in range(jobs)])
    queue.submit("note", after=[first])  # a submit with dependencies: another path to the table
    worker = Worker(internals(queue), concurrency=1, prefetch=jobs + 1)
    while worker.step(now=0.0):
        pass
    worker.flush()
    spans = list(exported.get_finished_spans())
    batch, linked = sorted((s for s in spans if s.name == "submit note"), key=lambda s: s.start_time or 0)
    runs = [s for s in spans if s.name == "run note"]
    assert len(runs) == jobs + 1
    parents = sorted(run.parent.span_id for run in runs if run.parent is not None)
    assert parents == sorted([batch.context.span_id] * jobs + [linked.context.span_id])
