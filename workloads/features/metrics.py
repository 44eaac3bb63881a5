"""The materializer's Prometheus metrics, on a registry of its own so two in one process don't collide."""

from __future__ import annotations

import json
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class MaterializerMetrics:
    def __init__(self, view: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("features_events_total", "Events written to the online store",
                              ["view"], registry=r).labels(view)
        self.dead_letters = Counter("features_dead_letters_total", "Records sent to the dead-letter topic",
                                    ["view", "reason"], registry=r)
        self.write_seconds = Histogram("features_write_seconds", "Online-store write latency per batch",
                                       ["view"], registry=r,
                                       buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5)
                                       ).labels(view)
        self.write_retries = Counter("features_write_retries_total", "Online-store writes retried",
                                     ["view"], registry=r).labels(view)
        self.freshness = Histogram("features_freshness_seconds", "Event time to online write",
                                   ["view"], registry=r,
                                   buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300)).labels(view)
        self.lag = Gauge("features_consumer_lag", "Messages behind the partition's high watermark",
                         ["view", "topic", "partition"], registry=r)
        self.events_per_second = Gauge("features_events_per_second", "Events written per second, last 10 s",
                                       ["view"], registry=r).labels(view)
        self.paused = Gauge("features_paused", "1 while partitions are paused for a slow online store",
                            ["view"], registry=r).labels(view)
        self.committed = Counter("features_commits_total", "Offset commits after a write", ["view"],
                                 registry=r).labels(view)
        self._view = view
        self._recent: deque[tuple[float, int]] = deque()

    def wrote(self, count: int, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.events.inc(count)
        self.write_seconds.observe(seconds)
        self._recent.append((now, count))
        while self._recent and self._recent[0][0] < now - 10:
            self._recent.popleft()
        span = max(1.0, now - self._recent[0][0]) if self._recent else 1.0
        self.events_per_second.set(sum(c for _, c in self._recent) / span)

    def stats(self, payload: str) -> None:
        """librdkafka's statistics callback: per-partition consumer lag."""
        stats = json.loads(payload)
        for topic, info in stats.get("topics", {}).items():
            for partition, p in info.get("partitions", {}).items():
                if partition == "-1" or p.get("consumer_lag", -1) < 0:
                    continue
                self.lag.labels(self._view, topic, partition).set(p["consumer_lag"])

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
