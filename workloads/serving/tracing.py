"""W3C trace context for every request, and optional OpenTelemetry spans exported over OTLP.

Every request gets a trace id and a span id: the caller's, from a valid `traceparent` header, or new ones. They
go into every JSON log line of the request and back to the caller as `traceparent`, so logs from the load
balancer, this server and whatever called it join up even with no tracing backend. When an OTLP endpoint is
configured, the OpenTelemetry SDK records a server span per request (the caller's span as parent), spans for
the cache lookup and for each request's queue wait, and a span per batch with a child for the model forward;
a batch serves many requests, so it links to each of their spans instead of having one parent.
"""

from __future__ import annotations

import contextvars
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
SERVICE_NAME = "aiinfra-serving"


@dataclass(frozen=True)
class TraceIds:
    """The ids this request logs under: its trace, its own span here, and the caller's span (if any)."""

    trace_id: str
    span_id: str
    parent_id: str | None = None
    sampled: bool = True

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


trace_var: contextvars.ContextVar[TraceIds | None] = contextvars.ContextVar("trace", default=None)


def parse_traceparent(value: str | None) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) from a W3C traceparent header; None for a missing or invalid one."""
    match = _TRACEPARENT.match((value or "").strip().lower())
    if not match:
        return None
    version, trace_id, parent, flags, rest = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent == "0" * 16 or (version == "00" and rest):
        return None
    return trace_id, parent, bool(int(flags, 16) & 1)


class _Otel:
    """The OpenTelemetry parts, imported only when an endpoint is configured (or a test hands in an exporter)."""

    def __init__(self, exporter: Any) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        processor = SimpleSpanProcessor if isinstance(exporter, InMemorySpanExporter) else BatchSpanProcessor
        self.provider.add_span_processor(processor(exporter))
        self.tracer = self.provider.get_tracer("workloads.serving")


_otel: _Otel | None = None


def setup_tracing(endpoint: str | None, *, exporter: Any = None) -> bool:
    """Export spans to `endpoint` over OTLP/gRPC (or to `exporter`); without either, only ids are propagated."""
    global _otel
    if exporter is None and endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    _otel = _Otel(exporter) if exporter is not None else None
    return _otel is not None


def shutdown_tracing() -> None:
    """Flush and stop the exporter (at server shutdown)."""
    global _otel
    if _otel is not None:
        _otel.provider.shutdown()
        _otel = None


@contextmanager
def request_trace(traceparent: str | None, name: str) -> Iterator[TraceIds]:
    """The request's trace ids (the caller's trace when `traceparent` is valid), current for its duration."""
    parsed = parse_traceparent(traceparent)
    if _otel is None:
        trace_id, parent, sampled = parsed or (secrets.token_hex(16), None, True)
        ids = TraceIds(trace_id, secrets.token_hex(8), parent, sampled)
        token = trace_var.set(ids)
        try:
            yield ids
        finally:
            trace_var.reset(token)
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {TRACEPARENT: traceparent} if parsed else {}
    context = TraceContextTextMapPropagator().extract(carrier)
    with _otel.tracer.start_as_current_span(name, context=context, kind=trace.SpanKind.SERVER) as current:
        sc = current.get_span_context()
        ids = TraceIds(f"{sc.trace_id:032x}", f"{sc.span_id:016x}", parsed[1] if parsed else None,
                       bool(sc.trace_flags & 1))
        token = trace_var.set(ids)
        try:
            yield ids
        finally:
            trace_var.reset(token)


def current_span() -> Any:
    """The current OpenTelemetry span context (to link a batch to), or None when spans are off."""
    if _otel is None:
        return None
    from opentelemetry import trace

    return trace.get_current_span().get_span_context()


@contextmanager
def span(name: str, *, links: Sequence[Any] = (), **attributes: Any) -> Iterator[None]:
    """A child span of the current one (no-op when spans are off), linked to `links` span contexts."""
    if _otel is None:
        yield
        return
    from opentelemetry.trace import Link

    with _otel.tracer.start_as_current_span(name, links=[Link(c) for c in links if c is not None],
                                            attributes=attributes):
        yield


def record_span(name: str, parent: Any, start_ns: int, end_ns: int, **attributes: Any) -> None:
    """A span that already happened (a request's queue wait), under the span context `parent`."""
    if _otel is None or parent is None:
        return
    from opentelemetry import trace

    context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    _otel.tracer.start_span(name, context=context, start_time=start_ns, attributes=attributes).end(end_time=end_ns)


def now_ns() -> int:
    return time.time_ns()
