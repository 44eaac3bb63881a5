"""The MSK section: Kafka version, brokers, storage and its autoscaling, topics."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from components.settings.common import LOG_RETENTION_DAYS
from contracts import features as facts
from contracts.config import Section, Where, field

KAFKA_VERSION = re.compile(r"\d+\.\d+\.(\d+|x)(\.tiered)?")
KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def replication_defaults(brokers: int) -> tuple[int, int]:
    """(default replication factor, min.insync.replicas): with 3+ brokers a write survives one broker loss."""
    return (3, 2) if brokers >= 3 else (brokers, 1)


@dataclass(frozen=True)
class StreamingSettings(Section):
    """The MSK cluster: Kafka version, broker size and count per AZ, storage and its autoscaling, topics."""

    kafka_version: str = field("3.6.0", doc="MSK Kafka version, e.g. 3.6.0 or 3.7.x")
    broker_instance_type: str = field("kafka.m7g.large", doc="MSK standard broker type (kafka.*)")
    brokers_per_az: int = field(1, min=1, max=10, doc="brokers in each AZ; the count is this times the AZ count")
    volume_size_gb: int = field(100, min=1, max=16384, doc="initial EBS volume per broker")
    max_volume_size_gb: int = field(1000, min=1, max=16384, doc="storage autoscaling ceiling per broker")
    storage_target_utilization: int = field(60, min=10, max=80, doc="disk use percent that triggers expansion")
    enhanced_monitoring: Literal["PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"] = field(
        "PER_TOPIC_PER_BROKER")
    log_retention_days: int = field(90, choices=LOG_RETENTION_DAYS, doc="broker log group retention")
    topics: tuple[str, ...] = field(("features", "inference-requests", "inference-results",
                                     *(t for s in facts.STREAMS for t in s.topics)), min=1,
                                    doc="topics producers and consumers are granted (the feature pipeline's too)")
    default_partitions: int = field(6, min=1, max=1000)
    retention_hours: int = field(168, min=1, max=8760, doc="log.retention.hours")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"broker_instance_type": "kafka.t3.small", "volume_size_gb": 20, "max_volume_size_gb": 100,
                "enhanced_monitoring": "PER_BROKER", "log_retention_days": 30, "default_partitions": 3,
                "retention_hours": 24},
        "staging": {"volume_size_gb": 50, "max_volume_size_gb": 250, "log_retention_days": 30},
    }

    def broker_count(self, az_count: int) -> int:
        """One broker group per AZ of the network."""
        return self.brokers_per_az * az_count

    def check(self, where: Where) -> None:
        if not KAFKA_VERSION.fullmatch(self.kafka_version):
            raise where.child("kafkaVersion").error("not an MSK Kafka version; allowed: e.g. 3.6.0, 3.7.x",
                                                    self.kafka_version)
        if not self.broker_instance_type.startswith("kafka."):
            raise where.child("brokerInstanceType").error(
                "needs a standard broker (EBS storage that autoscales); allowed: kafka.t3.*, kafka.m5.*, "
                "kafka.m7g.*", self.broker_instance_type)
        if self.max_volume_size_gb <= self.volume_size_gb:
            raise where.child("maxVolumeSizeGb").error(
                f"must exceed volumeSizeGb ({self.volume_size_gb}) so storage can grow", self.max_volume_size_gb)
        for i, topic in enumerate(self.topics):
            if not KAFKA_TOPIC.fullmatch(topic):
                raise where.child("topics").child(i).error(
                    "not a Kafka topic name; allowed: 1-249 of letters, digits, '.', '_', '-'", topic)
        if len(set(self.topics)) != len(self.topics):
            raise where.child("topics").error("lists a topic twice", list(self.topics))
        if where.environment == "prod" and self.broker_instance_type.startswith("kafka.t3."):
            raise where.child("brokerInstanceType").error(
                "burstable brokers run out of CPU credits under sustained load; allowed in prod: kafka.m5.*, "
                "kafka.m7g.*", self.broker_instance_type)
