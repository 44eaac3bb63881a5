"""The monitoring section: who hears about alarms, and the thresholds for MSK and Redis."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

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
    """The alarm topic, its subscribers, and the thresholds for MSK and Redis alarms."""

    subscriptions: tuple[AlarmSubscriptionSettings, ...] = field(())
    kafka_disk_used_percent: float = field(80.0, min=1, max=100)
    redis_cpu_percent: float = field(75.0, min=1, max=100, doc="EngineCPUUtilization on the busiest node")
    redis_memory_percent: float = field(80.0, min=1, max=100, doc="DatabaseMemoryUsagePercentage")
    redis_evictions: int = field(0, min=0, doc="evictions per 5 minutes tolerated before alarming")
    redis_replication_lag_seconds: float = field(5.0, min=0.1, max=3600)

    def check(self, where: Where) -> None:
        if where.environment == "prod" and not self.subscriptions:
            raise where.child("subscriptions").error("prod alarms must reach someone; add at least one", [])
