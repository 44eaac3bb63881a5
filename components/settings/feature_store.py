"""The online feature store section: engine, size, replicas, snapshots and secret recovery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from components.settings.common import LOG_RETENTION_DAYS
from contracts.config import Section, Where, field

# ElastiCache engine versions this platform supports, and the parameter-group family each belongs to.
CACHE_ENGINE_FAMILIES: Mapping[str, Mapping[str, str]] = {
    "redis": {"6.2": "redis6.x", "7.0": "redis7", "7.1": "redis7"},
    "valkey": {"7.2": "valkey7", "8.0": "valkey8", "8.1": "valkey8"},
}


@dataclass(frozen=True)
class FeatureStoreSettings(Section):
    """The online feature store: an ElastiCache replication group (Redis OSS or Valkey) in the private subnets."""

    engine: Literal["redis", "valkey"] = field("valkey")
    engine_version: str = field("7.2", doc="engine version, e.g. 7.1 (redis) or 7.2 (valkey)")
    node_type: str = field("cache.r7g.large", doc="ElastiCache node type (cache.*)")
    replicas: int = field(2, min=0, max=5, doc="read replicas beside the primary, spread over the AZs")
    maxmemory_policy: Literal["volatile-lru", "allkeys-lru", "volatile-ttl", "noeviction"] = field(
        "volatile-lru", doc="what Redis evicts when full; volatile-* keeps features stored without a TTL")
    snapshot_retention_days: int = field(7, min=0, max=35)
    slow_log_retention_days: int = field(90, choices=LOG_RETENTION_DAYS)
    secret_recovery_days: int = field(30, min=7, max=30, doc="how long a deleted auth-token secret is recoverable")
    apply_immediately: bool = field(False, doc="apply changes now instead of in the maintenance window")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"node_type": "cache.t4g.small", "replicas": 0, "snapshot_retention_days": 0,
                "slow_log_retention_days": 30, "secret_recovery_days": 7, "apply_immediately": True},
        "staging": {"node_type": "cache.t4g.medium", "replicas": 1, "snapshot_retention_days": 1,
                    "slow_log_retention_days": 30},
    }

    def check(self, where: Where) -> None:
        versions = CACHE_ENGINE_FAMILIES[self.engine]
        if self.engine_version not in versions:
            raise where.child("engineVersion").error(
                f"not a supported {self.engine} version; allowed: {', '.join(versions)}", self.engine_version)
        if not self.node_type.startswith("cache."):
            raise where.child("nodeType").error("not an ElastiCache node type; allowed: cache.*", self.node_type)
        if where.environment in ("staging", "prod") and self.replicas < 1:
            raise where.child("replicas").error(
                f"{where.environment} needs Multi-AZ with automatic failover, which needs a replica; "
                "allowed: 1..5", self.replicas)
        if where.environment == "prod" and self.snapshot_retention_days < 1:
            raise where.child("snapshotRetentionDays").error("prod keeps daily snapshots; allowed: 1..35",
                                                             self.snapshot_retention_days)

    @property
    def family(self) -> str:
        """The parameter-group family of the engine version."""
        return CACHE_ENGINE_FAMILIES[self.engine][self.engine_version]
