"""Prometheus metrics, on a registry per server so tests (and several servers in one process) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Every series the server exports; names start with `serving_`."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_latency = Histogram(
            "serving_request_latency_seconds", "Time from request received to response ready, by route and status",
            ["route", "status"], registry=r, buckets=_LATENCY_BUCKETS)
        self.batch_size = Histogram(
            "serving_batch_size", "Inputs per forward pass", registry=r, buckets=_BATCH_BUCKETS)
        self.queue_wait = Histogram(
            "serving_queue_wait_seconds", "Time an input waited in the queue before its batch started",
            registry=r, buckets=_WAIT_BUCKETS)
        self.inference_seconds = Histogram(
            "serving_inference_seconds", "Tokenize plus forward time per batch", registry=r,
            buckets=_LATENCY_BUCKETS)
        self.queue_depth = Gauge("serving_queue_depth", "Inputs waiting for the model", registry=r)
        self.cache_hits = Counter("serving_cache_hits_total", "Result cache hits by tier", ["tier"], registry=r)
        self.cache_misses = Counter("serving_cache_misses_total", "Inputs found in no cache tier", registry=r)
        self.cache_backend_errors = Counter(
            "serving_cache_backend_errors_total", "Failed calls to a shared cache (served without it)",
            ["backend"], registry=r)
        self.cache_backend_up = Gauge(
            "serving_cache_backend_up", "1 while the shared cache answers, 0 while it is skipped",
            ["backend"], registry=r)
        self.breaker_state = Gauge(
            "serving_circuit_breaker_state", "1 for the state each dependency's circuit breaker is in",
            ["dependency", "state"], registry=r)
        self.workers = Gauge("serving_model_workers", "Model workers, each running its own batches", registry=r)
        self.errors = Counter("serving_errors_total", "Error answers by kind", ["kind"], registry=r)
        self.ready = Gauge("serving_ready", "1 when the model is loaded and warmed up", registry=r)
        self.info = Gauge("serving_model_info", "The model being served and where it runs",
                          ["model", "identity", "task", "platform", "device"], registry=r)
        self.model_name = model_name

    def render(self) -> bytes:
        """The text exposition format for `/metrics`."""
        return generate_latest(self.registry)
