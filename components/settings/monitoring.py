"""The monitoring section: who hears about alarms, and the thresholds for MSK, Redis and the EKS cluster."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from contracts.config import Section, Where, field


@dataclass(frozen=True)
class AlarmSubscriptionSettings(Section):
    """Who hears about alarms: an SNS subscription on the alarm topic."""

    protocol: Literal["email", "https", "sqs", "lambda"] = field(doc="SNS protocol")
    endpoint: str = field(doc="address: mailbox, HTTPS URL, or queue/function ARN")

    def check(self, where: Where) -> None:
        ok = {
            "email": re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.endpoint) is not None,
            "https": self.endpoint.startswith("https://"),
            "sqs": self.endpoint.startswith("arn:") and ":sqs:" in self.endpoint,
            "lambda": self.endpoint.startswith("arn:") and ":lambda:" in self.endpoint,
        }[self.protocol]
        if not ok:
            raise where.child("endpoint").error(f"not a valid {self.protocol} endpoint", self.endpoint)


@dataclass(frozen=True)
class MonitoringSettings(Section):
    """The alarm topic, its subscribers, and the thresholds for MSK, Redis and EKS alarms."""

    subscriptions: tuple[AlarmSubscriptionSettings, ...] = field(())
    kafka_disk_used_percent: float = field(80.0, min=1, max=100)
    redis_cpu_percent: float = field(75.0, min=1, max=100, doc="EngineCPUUtilization on the busiest node")
    redis_memory_percent: float = field(80.0, min=1, max=100, doc="DatabaseMemoryUsagePercentage")
    redis_evictions: int = field(0, min=0, doc="evictions per 5 minutes tolerated before alarming")
    redis_replication_lag_seconds: float = field(5.0, min=0.1, max=3600)
    # EKS: capacity, nodes, the model servers on the cluster, and what the accelerators are doing.
    pending_pod_minutes: int = field(15, min=1, max=1440, doc="an accelerator pod Pending this long pages")
    node_not_ready_minutes: int = field(5, min=1, max=1440, doc="a node not Ready this long pages")
    serving_latency_p99_ms: float = field(500.0, min=1, max=600000, doc="p99 of model requests on EKS")
    serving_error_percent: float = field(1.0, min=0.01, max=100, doc="5xx share of model requests on EKS")
    accelerator_idle_percent: float = field(5.0, min=0, max=50, doc="utilization below this is idle")
    accelerator_idle_hours: int = field(3, min=1, max=24, doc="idle this long on a paid pool pages")
    accelerator_saturated_percent: float = field(95.0, min=50, max=100, doc="utilization above this is saturated")
    accelerator_saturated_minutes: int = field(30, min=5, max=1440, doc="saturated this long pages")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        # dev: nobody waits on a pending pod at night, but an idle accelerator there is pure waste.
        "dev": {"pending_pod_minutes": 60, "serving_latency_p99_ms": 2000.0, "serving_error_percent": 5.0,
                "accelerator_idle_hours": 1},
        "staging": {"pending_pod_minutes": 30, "serving_latency_p99_ms": 1000.0, "serving_error_percent": 2.0},
        "prod": {"pending_pod_minutes": 10, "serving_latency_p99_ms": 250.0, "serving_error_percent": 0.5,
                 "accelerator_saturated_minutes": 15},
    }

    def check(self, where: Where) -> None:
        if where.environment == "prod" and not self.subscriptions:
            raise where.child("subscriptions").error("prod alarms must reach someone; add at least one", [])
        if self.accelerator_idle_percent >= self.accelerator_saturated_percent:
            raise where.child("acceleratorIdlePercent").error(
                f"must be below acceleratorSaturatedPercent ({self.accelerator_saturated_percent:g})",
                self.accelerator_idle_percent)
