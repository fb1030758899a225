"""Traces of a run, for an OpenTelemetry collector: on only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, as
Istio's builder does. Then one trace per run: a span for the run, one for making the
tasks, one per task that ran (name, image, platform, step, bytes, cached), and below
each task a span per registry request (token fetches included: method, host, repository,
status, retries; never a header, a query or a body) and one for make.

The SDK (the ``otel`` extra) is imported by rules.otel only when the variable is set, so
a run without it imports no OpenTelemetry module; with the variable set but the SDK
missing, or another protocol than http/protobuf asked for, one warning says why and no
span is made. Every function here is a no-op while traces are off.

Spans of doit's worker processes join the run's trace: a worker is forked with the run's
span context (``PROCESS.telemetry``) and makes its task spans below it; the spans it ends
travel to the parent through the run's hub (rules.hub) and are exported from there, so a
worker never waits on a collector.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from doit_oci.rules.globals import PROCESS
from doit_oci.rules.progress import warn

if TYPE_CHECKING:
    from doit_oci.registry.transport import Watcher

ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
EXTRA = "pip install 'doit-oci[otel]'"


class Span(Protocol):
    def set(self, key: str, value: str | int | float | bool) -> None: ...

    def fail(self, message: str) -> None: ...


class _NoSpan:
    def set(self, key: str, value: str | int | float | bool) -> None:
        pass

    def fail(self, message: str) -> None:
        pass


def endpoint(environ: Mapping[str, str]) -> str:
    for name in ENDPOINTS:
        if environ.get(name):
            return environ[name]
    return ""


def why_not(environ: Mapping[str, str]) -> str | None:
    """None when traces are to be sent; else "" (not asked for, or switched off) or the
    reason they cannot be, for the one warning."""
    if not endpoint(environ):
        return ""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ""
    exporters = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip() or "otlp"
    if exporters == "none":
        return ""
    if exporters != "otlp":
        return f"OTEL_TRACES_EXPORTER={exporters}: doit-oci sends traces with otlp only"
    for name in PROTOCOLS:
        protocol = environ.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            return f"{name}={protocol}: doit-oci sends traces over http/protobuf only"
        if protocol:
            break
    return None


def start(
    environ: Mapping[str, str], started_ns: int, plan_seconds: float, tasks: Sequence[str]
) -> None:
    """In the process that runs doit, before its workers are forked: when traces are
    asked for, the run's span (from ``started_ns``, when making the tasks began) and the
    span of making them; else, when they cannot be sent, one warning saying why."""
    if PROCESS.telemetry is not None:
        return
    reason = why_not(environ)
    if reason is not None:
        if reason:
            warn(f"no traces: {reason}")
        return
    try:
        from doit_oci.rules import otel
    except ImportError:
        given = next(name for name in ENDPOINTS if environ.get(name))
        warn(f"no traces: {given} is set, but the OpenTelemetry SDK is not installed: {EXTRA}")
        return
    PROCESS.telemetry = otel.Tracing.begin(endpoint(environ), started_ns, plan_seconds, tasks)


def finish(ok: bool) -> None:
    """End the run's span and send what is left (in the process that started it); a
    collector that did not take them gets one warning."""
    tracing = PROCESS.telemetry
    if tracing is None:
        return
    problem = tracing.end(ok)
    PROCESS.telemetry = None
    if problem:
        warn(f"traces not sent to {tracing.endpoint}: {problem}")


@contextlib.contextmanager
def task_span(name: str, attributes: Mapping[str, str | int | bool]) -> Iterator[Span]:
    """The span of one task, below the run's, current while the task works."""
    tracing = PROCESS.telemetry
    if tracing is None:
        yield _NoSpan()
        return
    with tracing.task(name, attributes) as span:
        yield span


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, str | int | bool]) -> Iterator[Span]:
    """A span below the current one (make's, within its task's)."""
    tracing = PROCESS.telemetry
    if tracing is None:
        yield _NoSpan()
        return
    with tracing.child(name, attributes) as made:
        yield made


def request_watch() -> Watcher | None:
    """What RetryTransport tells of each registry request, as spans; None when off."""
    tracing = PROCESS.telemetry
    return None if tracing is None else tracing.watch


def traceparent() -> str:
    """The W3C traceparent of the current span (for make's environment), or ""."""
    tracing = PROCESS.telemetry
    return "" if tracing is None else tracing.traceparent()


def received(message: Any) -> None:
    """A span a worker ended, received by the hub of the parent: exported from here."""
    tracing = PROCESS.telemetry
    if tracing is not None:
        tracing.received(message)
