"""Traces: a caller's W3C traceparent reaches the JSON logs and the answer; with OpenTelemetry on, a request
has a server span under the caller's, with cache and queue-wait children, and its batch links to it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from serving_helpers import ThreadServer, post_json

from workloads.serving import tracing
from workloads.serving.config import ServerConfig
from workloads.serving.logs import JsonFormatter
from workloads.serving.model import load_predictor

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEADER = {"traceparent": f"00-{TRACE}-{PARENT}-01"}


@pytest.fixture(scope="module")
def encoder(tiny_bert_encoder_dir: Path):
    return load_predictor(tiny_bert_encoder_dir)


def _config(model_dir: Path, **overrides: object) -> ServerConfig:
    base = dict(model_dir=model_dir, model_name="m", cache_size=100, log_level="WARNING")
    return ServerConfig(**{**base, **overrides})  # type: ignore[arg-type]


class _Lines(logging.Handler):
    """Formats records as the server's JSON lines at emit time (while the request's context is current)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.mark.parametrize("value, valid", [
    (f"00-{TRACE}-{PARENT}-01", True), (f"00-{TRACE}-{PARENT}-00", True), ("00-" + "0" * 32 + f"-{PARENT}-01", False),
    (f"ff-{TRACE}-{PARENT}-01", False), (f"00-{TRACE[:-1]}-{PARENT}-01", False), ("garbage", False), (None, False),
])
def test_traceparent_parsing(value: str | None, valid: bool) -> None:
    assert (tracing.parse_traceparent(value) is not None) == valid


def test_traceparent_reaches_the_logs_and_the_answer(tiny_bert_encoder_dir: Path, encoder) -> None:
    handler = _Lines()
    access = logging.getLogger("workloads.serving.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        with ThreadServer(_config(tiny_bert_encoder_dir), encoder) as srv:
            status, headers, _ = post_json(srv.port, "/invocations", {"inputs": ["good film"]}, HEADER)
            _, fresh, _ = post_json(srv.port, "/invocations", {"inputs": ["good film"]})
    finally:
        access.removeHandler(handler)
    assert status == 200
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01") and span_id != PARENT
    line = next(r for r in handler.lines if r.get("trace_id") == TRACE)
    assert line["parent_span_id"] == PARENT and line["span_id"] == span_id and line["event"] == "request"
    assert fresh["traceparent"].split("-")[1] != TRACE, "no header: a new trace"


def test_spans_for_request_cache_queue_wait_batch_and_model(tiny_bert_encoder_dir: Path, encoder) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.setup_tracing(None, exporter=exporter)
    try:
        with ThreadServer(_config(tiny_bert_encoder_dir), encoder) as srv:
            status, headers, _ = post_json(srv.port, "/invocations", {"inputs": ["nice place"]}, HEADER)
    finally:
        tracing.shutdown_tracing()
    assert status == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    server = spans["POST /invocations"]
    assert f"{server.context.trace_id:032x}" == TRACE and f"{server.parent.span_id:016x}" == PARENT
    assert headers["traceparent"] == f"00-{TRACE}-{server.context.span_id:016x}-01"
    for child in ("cache", "queue_wait"):
        assert spans[child].parent.span_id == server.context.span_id, child
    batch = spans["batch"]
    assert [link.context.span_id for link in batch.links] == [server.context.span_id]
    assert spans["model"].parent.span_id == batch.context.span_id
    assert batch.attributes["inputs"] == 1
