"""Traces, where OpenTelemetry is installed and configured (the ``otel`` extra, and a
tracer provider set by the application, e.g. the SDK's with an exporter).

A submit is a span (``submit <task>``, kind PRODUCER) in the caller's trace (an HTTP
request's, under the API), and its context (W3C ``traceparent`` and ``tracestate``, as
JSON) is stored with the job (``trace_context``). The worker runs each attempt in a span
(``run <task>``, kind CONSUMER) whose parent is that context, so one trace shows the
request, the job it submitted and every run of it, whichever process ran it.

queuelab never imports OpenTelemetry: where nothing has imported ``opentelemetry.trace``
(an application that configures a provider must, to set it), a submit or a run pays one
dictionary look-up. Imported (FastAPI imports it) with no provider configured: no span is
made and nothing is stored, at the cost of reading which provider is set (0.2 us).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from queuelab.models import Lease
from queuelab.policy import Complete, DeadLetter, Decision, Retry

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

NAME = "queuelab"
_UNKNOWN = object()
_PROVIDER_FROM_ENVIRONMENT = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
_cached: tuple[object, Tracer] | None = None  # (provider, its tracer)


def tracer() -> Tracer | None:
    """queuelab's tracer from the configured provider; None where OpenTelemetry is not in
    use (nothing is traced then). Never imports it: an application that configured a
    provider imported ``opentelemetry.trace`` to set it."""
    global _cached
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = _provider(trace)
    if provider is None or isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    cached = _cached
    if cached is None or cached[0] is not provider:
        cached = _cached = (provider, provider.get_tracer(NAME))
    return cached[1]


def _provider(trace: ModuleType) -> TracerProvider | None:
    """The global tracer provider, None if none is set. While none is set, the public
    ``get_tracer_provider()`` reads ``os.environ`` at every call (2.4 us here, per job):
    the global it returns once one is set (``set_tracer_provider``, once per process) is
    read directly instead, falling back to the public call where that attribute is not
    there or the environment names a provider to load."""
    found = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if found is _UNKNOWN or (found is None and _PROVIDER_FROM_ENVIRONMENT):
        provider: TracerProvider = trace.get_tracer_provider()
        return provider
    return cast("TracerProvider | None", found)


@contextmanager
def submitting(tracer: Tracer, rows: Sequence[dict[str, Any]]) -> Iterator[None]:
    """A span for storing ``rows`` (new jobs), whose context each row keeps as its
    ``trace_context``."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    tasks = sorted({row["task"] for row in rows})
    attributes: dict[str, Any] = {
        "messaging.system": NAME,
        "messaging.operation.type": "send",
        "messaging.destination.name": ",".join(sorted({row["queue"] for row in rows})),
        "messaging.batch.message_count": len(rows),
        "queuelab.task": ",".join(tasks),
    }
    if len(rows) == 1:
        attributes["messaging.message.id"] = rows[0]["id"]
    name = f"submit {tasks[0] if len(tasks) == 1 else 'jobs'}"
    with tracer.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        context = json.dumps(carrier)
        for row in rows:
            row["trace_context"] = context
        yield


@contextmanager
def running(tracer: Tracer, lease: Lease) -> Iterator[Span]:
    """A span for one attempt of ``lease``'s job, continuing the trace of its submit."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(json.loads(lease.trace_context)) if lease.trace_context else None
    attributes: dict[str, Any] = {
        "messaging.system": NAME,
        "messaging.operation.type": "process",
        "messaging.destination.name": lease.queue,
        "messaging.message.id": lease.job_id,
        "queuelab.task": lease.task,
        "queuelab.user_id": lease.user_id,
        "queuelab.attempt": lease.attempt,
    }
    name = f"run {lease.task}"
    with tracer.start_as_current_span(name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes) as span:
        yield span


def decided(span: Span, decision: Decision) -> None:
    """What the attempt came to, on its span: an error status for a failure."""
    from opentelemetry.trace import StatusCode

    match decision:
        case Complete():
            span.set_attribute("queuelab.outcome", "completed")
        case Retry(run_at, error):
            span.set_attribute("queuelab.outcome", "retry_scheduled")
            span.set_attribute("queuelab.retry_at", run_at)
            span.set_status(StatusCode.ERROR, f"{error.error_type}: {error.message}")
        case DeadLetter(error, reason):
            span.set_attribute("queuelab.outcome", "dead_lettered")
            span.set_attribute("queuelab.dead_letter_reason", reason)
            span.set_status(StatusCode.ERROR, f"{error.error_type}: {error.message}")
        case _:
            span.set_attribute("queuelab.outcome", "cancelled")
