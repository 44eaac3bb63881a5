"""The feature pipeline section: where the materializer runs, how big, its namespace's quota, topic replication,
schema compatibility and the consumer-lag alarm."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from components.settings.kubernetes import QuotaSettings
from contracts import features as facts
from contracts.config import Section, Where, field

# The topic Job's container: `create-topics` is one admin request per topic.
TOPIC_JOB_CPU_MILLICORES = 250
TOPIC_JOB_MEMORY_MIB = 256


@dataclass(frozen=True)
class FeaturesQuotaSettings(QuotaSettings):
    """The features namespace's quota: room for the materializers, the topic Job and a few event producers."""

    cpu: int = field(8, min=1, max=100000)
    memory_gib: int = field(16, min=1, max=1000000)
    pods: int = field(20, min=1, max=100000)


@dataclass(frozen=True)
class FeaturesSettings(Section):
    """The feature pipeline: where it runs, how big, how the topics are replicated, when lag alarms."""

    namespace: str = field("features", doc="Kubernetes namespace of the materializer and producers")
    replicas: int = field(2, min=1, max=24, doc="materializer pods per view (capped at the view's partitions)")
    cpu_millicores: int = field(500, min=100, max=16000, doc="materializer CPU request and limit")
    memory_mib: int = field(512, min=256, max=16384, doc="materializer memory request and limit")
    quota: FeaturesQuotaSettings = field(FeaturesQuotaSettings())
    replication: int | None = field(None, min=1, max=3,
                                    doc="topic replication factor; unset: the brokers' default.replication.factor")
    batch: int = field(2000, min=1, max=50000, doc="records per materializer batch")
    schema_compatibility: str = field("BACKWARD", choices=("BACKWARD", "BACKWARD_ALL", "FULL", "FULL_ALL"),
                                      doc="Glue compatibility mode for schema evolution")
    grace_period_s: int = field(30, min=10, max=600, doc="SIGTERM to SIGKILL: time to commit and leave the group")
    max_lag_records: int = field(10000, min=1, doc="alarm when a partition of a view's topic is this far behind")
    lag_minutes: int = field(5, min=1, max=60, doc="... for this many consecutive minutes")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {"dev": {"replicas": 1}}

    def check(self, where: Where) -> None:
        if not self.namespace.replace("-", "").isalnum() or self.namespace != self.namespace.lower():
            raise where.child("namespace").error("must be a lowercase DNS label", self.namespace)
        # What the declared pods take at once (rollouts add no surge; one topic Job per view), against the quota
        # the namespace is given: a pod over quota is refused at admission and never runs.
        pods = sum(min(self.replicas, s.partitions) + 1 for s in facts.STREAMS)
        cpu = sum(min(self.replicas, s.partitions) * self.cpu_millicores + TOPIC_JOB_CPU_MILLICORES
                  for s in facts.STREAMS) / 1000
        memory = sum(min(self.replicas, s.partitions) * self.memory_mib + TOPIC_JOB_MEMORY_MIB
                     for s in facts.STREAMS) / 1024
        for key, need, cap in (("cpu", cpu, self.quota.cpu), ("memoryGib", memory, self.quota.memory_gib),
                               ("pods", pods, self.quota.pods)):
            if need > cap:
                raise where.child("quota").child(key).error(
                    f"the materializers and topic Jobs need {math.ceil(need)} at {self.replicas} replicas; "
                    "raise the quota or lower replicas", cap)
