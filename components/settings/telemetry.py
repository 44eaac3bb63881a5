"""The telemetry section: the pinned versions of what measures the cluster (metrics-server, the CloudWatch
Observability add-on, KEDA), how often the model servers are scraped, and how long Container Insights logs stay."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from components.settings.common import LOG_RETENTION_DAYS
from contracts.config import Section, field

VERSION = r"v?\d+\.\d+\.\d+([-.+][0-9A-Za-z.-]+)?"
VERSION_RULE = "pin an exact version (like v0.8.0-eksbuild.1 or 2.17.2)"


@dataclass(frozen=True)
class TelemetrySettings(Section):
    """What measures the cluster and its model servers, pinned; the thresholds that page live in `monitoring`."""

    # EKS add-on builds published for Kubernetes 1.33 (`aws eks describe-addon-versions --kubernetes-version 1.33`).
    metrics_server_version: str = field("v0.8.0-eksbuild.3", pattern=VERSION, rule=VERSION_RULE,
                                        doc="metrics-server EKS add-on version (resource metrics for CPU scaling)")
    cloudwatch_observability_version: str = field(
        "v4.8.0-eksbuild.1", pattern=VERSION, rule=VERSION_RULE,
        doc="amazon-cloudwatch-observability EKS add-on version (Container Insights, DCGM, neuron-monitor)")
    keda_version: str = field("2.18.3", pattern=VERSION, rule=VERSION_RULE, doc="kedacore/keda Helm chart version")
    scrape_interval_seconds: int = field(30, min=10, max=60, doc="how often the agents scrape the model servers")
    log_retention_days: int = field(365, choices=LOG_RETENTION_DAYS, doc="Container Insights log groups")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"log_retention_days": 30},
        "staging": {"log_retention_days": 90},
    }
