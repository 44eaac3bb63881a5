"""What the model server exposes and what the platform's telemetry reads from it, spelled once for both sides.

The server (`workloads.serving`) exports Prometheus series on its metrics path and writes one JSON access-log
line per request; the telemetry component scrapes those series, turns the access log into latency and error
metrics, and the serving autoscaler scales on the queue depth. A rename on either side fails
`tests/workloads/test_serving_telemetry.py`, which reads both from a real server.
"""

from __future__ import annotations

METRICS_PATH = "/metrics"
# Inputs waiting for the model (the accelerator): 0 while it keeps up, growing once every worker is busy.
QUEUE_DEPTH = "serving_queue_depth"
READY = "serving_ready"
MODEL_WORKERS = "serving_model_workers"
# Gauges only: the scrape takes their value as is (counters and histograms need per-target state).
SCRAPED_GAUGES = (QUEUE_DEPTH, READY, MODEL_WORKERS)

# The access log: one JSON object per answered request.
ACCESS_EVENT_KEY = "event"
ACCESS_EVENT = "request"
ACCESS_PATH_KEY = "path"
ACCESS_STATUS_KEY = "status"
ACCESS_DURATION_MS_KEY = "duration_ms"
# Requests to the model (not probes or scrapes) all start with this path.
MODEL_ROUTE_PREFIX = "/v2/models/"

__all__ = ["ACCESS_DURATION_MS_KEY", "ACCESS_EVENT", "ACCESS_EVENT_KEY", "ACCESS_PATH_KEY", "ACCESS_STATUS_KEY",
           "METRICS_PATH", "MODEL_ROUTE_PREFIX", "MODEL_WORKERS", "QUEUE_DEPTH", "READY", "SCRAPED_GAUGES"]
