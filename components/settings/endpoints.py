"""The SageMaker endpoint sections: model, fleet, data capture, autoscaling, rollout and alarm thresholds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from components.settings.common import LOG_RETENTION_DAYS
from contracts.config import Section, Where, field
from contracts.instances import LOCAL_NVME_FAMILIES
from contracts.storage import MODEL_ARCHIVE

ENDPOINT_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")


@dataclass(frozen=True)
class EndpointAlarmSettings(Section):
    """Per-endpoint alarm thresholds; the latency and 5XX alarms also drive automatic rollback."""

    latency_p99_ms: float = field(500.0, min=1, max=600000, doc="p99 model latency SLA in milliseconds")
    error_5xx_percent: float = field(0.1, min=0.001, max=100, doc="5XX share of invocations")
    error_4xx_percent: float = field(5.0, min=0.01, max=100, doc="4XX share of invocations that counts as a spike")
    idle_minutes: int = field(15, min=5, max=1440, doc="minutes without invocations before alarming")


@dataclass(frozen=True)
class EndpointAutoscalingSettings(Section):
    """Target tracking on SageMakerVariantInvocationsPerInstance."""

    min_instances: int = field(1, min=1, max=100)
    max_instances: int = field(2, min=1, max=100)
    invocations_per_instance: int = field(1000, min=1, max=1000000, doc="target invocations per instance-minute")
    scale_in_cooldown_seconds: int = field(300, min=0, max=3600)
    scale_out_cooldown_seconds: int = field(60, min=0, max=3600)


@dataclass(frozen=True)
class EndpointRolloutSettings(Section):
    """Blue/green with canary traffic shifting: the canary's share and how long each step bakes."""

    canary_percent: int = field(10, min=1, max=50, doc="capacity percent of the new fleet that takes traffic first")
    bake_seconds: int = field(600, min=0, max=3600, doc="wait after the canary before shifting the rest")
    termination_wait_seconds: int = field(600, min=0, max=3600, doc="old fleet kept after the full shift")
    max_execution_seconds: int = field(3600, min=600, max=28800, doc="give up and roll back after this")


@dataclass(frozen=True)
class EndpointSettings(Section):
    """One SageMaker real-time endpoint: model, fleet, data capture, autoscaling, rollout and alarms."""

    name: str = field(doc="short endpoint name, e.g. text-classifier")
    model_prefix: str = field(doc="prefix of the model in the models bucket, e.g. text-classifier/v3")
    image_tag: str = field(doc="tag of the serving image in the serving ECR repository")
    model_archive: str = field(MODEL_ARCHIVE, doc="archive under the model prefix")
    instance_type: str = field("ml.inf2.xlarge", doc="SageMaker hosting instance type (ml.*)")
    instance_count: int = field(1, min=1, max=100, doc="instances the endpoint starts with")
    capture_percent: int = field(100, min=1, max=100, doc="share of requests captured to the data bucket")
    log_retention_days: int = field(90, choices=LOG_RETENTION_DAYS, doc="endpoint container log retention")
    environment: Mapping[str, str] = field({}, doc="extra container environment")
    autoscaling: EndpointAutoscalingSettings = field(EndpointAutoscalingSettings())
    rollout: EndpointRolloutSettings = field(EndpointRolloutSettings())
    alarms: EndpointAlarmSettings = field(EndpointAlarmSettings())

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"capture_percent": 20, "log_retention_days": 30}, "staging": {"log_retention_days": 30}}

    def check(self, where: Where) -> None:
        if not ENDPOINT_NAME.fullmatch(self.name):
            raise where.child("name").error(
                "allowed: 1-30 lowercase letters, digits and '-', starting with a letter", self.name)
        prefix = self.model_prefix.strip("/")
        if not prefix or prefix != self.model_prefix or ".." in prefix.split("/"):
            raise where.child("modelPrefix").error(
                "allowed: a relative key prefix without leading or trailing '/', e.g. text-classifier/v3",
                self.model_prefix)
        if not self.image_tag or self.image_tag == "latest":
            raise where.child("imageTag").error(
                "the serving repository is immutable; allowed: a release tag, not 'latest'", self.image_tag)
        if not self.instance_type.startswith("ml."):
            raise where.child("instanceType").error("not a SageMaker instance type; allowed: ml.*",
                                                    self.instance_type)
        family = self.instance_type.split(".")[1] if self.instance_type.count(".") >= 2 else ""
        if family == "inf1":
            raise where.child("instanceType").error(
                "Inf1 endpoints cannot use deployment guardrails (canary rollout, rollback); allowed: ml.inf2.*",
                self.instance_type)
        if family in LOCAL_NVME_FAMILIES:
            raise where.child("instanceType").error(
                "has local instance storage, for which SageMaker refuses a customer KMS key; allowed: families "
                "without it, e.g. ml.inf2, ml.m5, ml.c6i, ml.p3", self.instance_type)
        for key in self.environment:
            if any(word in key.upper() for word in ("TOKEN", "PASSWORD", "SECRET", "CREDENTIAL")):
                raise where.child("environment").child(key).error(
                    "container environment is readable through the SageMaker API; allowed: no secrets, keep them "
                    "in Secrets Manager")
        scaling = where.child("autoscaling")
        if self.autoscaling.max_instances < self.autoscaling.min_instances:
            raise scaling.child("maxInstances").error(
                f"must be at least minInstances ({self.autoscaling.min_instances})", self.autoscaling.max_instances)
        if not self.autoscaling.min_instances <= self.instance_count <= self.autoscaling.max_instances:
            raise where.child("instanceCount").error(
                f"must lie within autoscaling {self.autoscaling.min_instances}..{self.autoscaling.max_instances}",
                self.instance_count)
        if where.environment == "prod" and self.autoscaling.min_instances < 2:
            raise scaling.child("minInstances").error(
                "prod endpoints keep at least 2 instances so one can fail or be replaced; allowed: 2..100",
                self.autoscaling.min_instances)
