"""The OpenTelemetry SDK at work for rules.telemetry, which imports this module only when
traces are asked for (the SDK and its OTLP/HTTP exporter are the ``otel`` extra).

One ``TracerProvider`` in the process that runs doit, exporting in batches over
OTLP/HTTP (the exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables: endpoint,
headers, timeout, compression, certificates; the resource reads ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``). Its one span processor forwards what a forked worker ends
to the parent through the hub, as plain data (``SpanData``), where it becomes a span again
and joins the batch: a worker neither exports nor waits on a collector.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace import Span as OtelSpan

from doit_oci.registry.transport import REPOSITORY, WHAT, Watch
from doit_oci.rules.globals import PROCESS

SCOPE = "doit_oci"
Value = str | int | float | bool


@dataclass(frozen=True)
class SpanData:
    """A span a worker ended, as plain data that pickles: ids, times, attributes."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    kind: int
    attributes: tuple[tuple[str, Any], ...]
    events: tuple[tuple[str, int, tuple[tuple[str, Any], ...]], ...]
    status: int
    description: str | None
    start: int
    end: int

    @classmethod
    def of(cls, span: ReadableSpan) -> SpanData:
        context, parent = span.get_span_context(), span.parent
        assert context is not None
        return cls(
            span.name,
            context.trace_id,
            context.span_id,
            parent.span_id if parent is not None else None,
            span.kind.value,
            tuple(dict(span.attributes or {}).items()),
            tuple(
                (e.name, e.timestamp, tuple(dict(e.attributes or {}).items())) for e in span.events
            ),
            span.status.status_code.value,
            span.status.description,
            span.start_time or 0,
            span.end_time or 0,
        )

    def span(self, resource: Resource) -> ReadableSpan:
        def ids(span_id: int) -> SpanContext:
            return SpanContext(self.trace_id, span_id, False, trace.TraceFlags(1))

        return ReadableSpan(
            self.name,
            context=ids(self.span_id),
            parent=ids(self.parent_id) if self.parent_id is not None else None,
            resource=resource,
            attributes=dict(self.attributes),
            events=[Event(name, dict(attrs), stamp) for name, stamp, attrs in self.events],
            kind=SpanKind(self.kind),
            status=Status(StatusCode(self.status), self.description),
            start_time=self.start,
            end_time=self.end,
        )


class _Forwarder(SpanProcessor):
    """The batch in the parent; from a worker, the hub (or, with none, the batch there and
    a flush, as the worker may end before a batch would go)."""

    def __init__(self, batch: BatchSpanProcessor) -> None:
        self.batch = batch
        self.pid = os.getpid()

    def on_end(self, span: ReadableSpan) -> None:
        if os.getpid() == self.pid:
            self.batch.on_end(span)
            return
        hub = PROCESS.hub
        if hub is None or not hub.send(SpanData.of(span)):
            self.batch.on_end(span)
            self.batch.force_flush()

    def shutdown(self) -> None:
        self.batch.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.batch.force_flush(timeout_millis)


class _Exporter(SpanExporter):
    """The OTLP/HTTP exporter, remembering why an export failed (its logs are muted)."""

    def __init__(self, inner: OTLPSpanExporter, problems: _Problems) -> None:
        self.inner, self.problems = inner, problems

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS and not self.problems.last:
            self.problems.last = "the collector did not take them"
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]


class _Problems(logging.Handler):
    """The SDK's own complaints, kept (the last one) instead of printed as tracebacks."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage().splitlines()[0][:200]


class _RequestSpan:
    """A registry request's span (a ``Watch`` for RetryTransport)."""

    def __init__(self, tracer: trace.Tracer, request: httpx.Request) -> None:
        what = request.extensions.get(WHAT)
        operation = what.partition(": ")[2] if isinstance(what, str) else ""
        attributes: dict[str, Value] = {
            "http.request.method": request.method,
            "server.address": request.url.host,
            "doit_oci.request": what if isinstance(what, str) else request.method,
        }
        if request.url.port is not None:
            attributes["server.port"] = request.url.port
        repository = request.extensions.get(REPOSITORY)
        if isinstance(repository, str) and repository:
            attributes["doit_oci.repository"] = repository
        name = f"{request.method} {operation or request.url.host}"
        self.span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def retrying(self, reason: str) -> None:
        self.span.add_event("retry", {"reason": reason})

    def ended(self, status: int, tries: int, error: str = "") -> None:
        if status:
            self.span.set_attribute("http.response.status_code", status)
        self.span.set_attribute("doit_oci.retries", max(0, tries - 1))
        if error or status >= 500:
            self.span.set_status(Status(StatusCode.ERROR, error or f"HTTP {status}"))
        self.span.end()


class _Handle:
    def __init__(self, span: OtelSpan) -> None:
        self.span = span

    def set(self, key: str, value: Value) -> None:
        self.span.set_attribute(key, value)

    def fail(self, message: str) -> None:
        self.span.set_status(Status(StatusCode.ERROR, message))


class Tracing:
    """The run's tracer, its span, and where they go."""

    def __init__(
        self,
        endpoint: str,
        provider: TracerProvider,
        batch: BatchSpanProcessor,
        problems: _Problems,
    ) -> None:
        self.endpoint = endpoint
        self.provider = provider
        self.batch = batch
        self.problems = problems
        self.tracer = provider.get_tracer(SCOPE)
        self.root: OtelSpan = NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
        self.pid = os.getpid()

    @classmethod
    def begin(
        cls, endpoint: str, started_ns: int, plan_seconds: float, tasks: Sequence[str]
    ) -> Tracing:
        problems = _Problems()
        sdk_logger = logging.getLogger("opentelemetry")
        sdk_logger.propagate = False
        sdk_logger.addHandler(problems)
        provider = TracerProvider(resource=Resource.create({"service.name": "doit-oci"}))
        batch = BatchSpanProcessor(_Exporter(OTLPSpanExporter(), problems))
        provider.add_span_processor(_Forwarder(batch))
        tracing = cls(endpoint, provider, batch, problems)
        started = started_ns or time.time_ns()
        attributes: dict[str, Value | list[str]] = {"process.pid": os.getpid()}
        if tasks:
            attributes["doit_oci.tasks"] = list(tasks)
        tracing.root = tracing.tracer.start_span(
            "doit-oci run", attributes=attributes, start_time=started
        )
        plan = tracing.tracer.start_span("plan", context=tracing.below_root(), start_time=started)
        plan.end(end_time=started + int(plan_seconds * 1e9))
        return tracing

    def below_root(self) -> otel_context.Context:
        return trace.set_span_in_context(NonRecordingSpan(self.root.get_span_context()))

    @contextlib.contextmanager
    def task(self, name: str, attributes: Mapping[str, Value]) -> Iterator[_Handle]:
        made = self.tracer.start_span(
            name,
            context=self.below_root(),
            attributes={**attributes, "process.pid": os.getpid()},
        )
        token = otel_context.attach(trace.set_span_in_context(made))
        try:
            yield _Handle(made)
        finally:
            otel_context.detach(token)
            made.end()

    @contextlib.contextmanager
    def child(self, name: str, attributes: Mapping[str, Value]) -> Iterator[_Handle]:
        with self.tracer.start_as_current_span(name, attributes=attributes) as made:
            yield _Handle(made)

    def watch(self, request: httpx.Request) -> Watch:
        return _RequestSpan(self.tracer, request)

    def traceparent(self) -> str:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            context = self.root.get_span_context()
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"

    def received(self, message: Any) -> None:
        if isinstance(message, SpanData):
            self.batch.on_end(message.span(self.provider.resource))

    def end(self, ok: bool) -> str:
        """End the run's span, send every span left; what went wrong sending, or ""."""
        if os.getpid() != self.pid:
            return ""
        if not ok:
            self.root.set_status(Status(StatusCode.ERROR, "a task failed"))
        self.root.end()
        self.provider.shutdown()
        return self.problems.last
