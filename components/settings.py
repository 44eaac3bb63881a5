"""Typed stack settings: the only place that reads Pulumi config.

A stack file holds plain config under the `aiinfra:` namespace; `load_settings()` turns it into one frozen
`PlatformSettings` before any resource is declared, so a typo or a bad value stops the run with one line that
names the stack file, the key, the value and what is allowed, instead of a half-declared stack.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from contracts.instances import LOCAL_NVME_FAMILIES

from components.compute_settings import (
    ClusterSettings,
    KubernetesSettings,
    NodePoolSettings,
    WorkloadSettings,
    check_compute,
)
from contracts.config import (
    Section,
    SettingsError,
    Where,
    camel,
    field,
    first_overlap,
    parse,
    parse_cidr,
    unknown_key_hint,
)

NAMESPACE = "aiinfra"
ENVIRONMENTS = ("dev", "staging", "prod")
Environment = Literal["dev", "staging", "prod"]

# The stack file being read, when the caller knows it better than `stacks/Pulumi.<stack>.yaml` (the offline
# engine given an ad-hoc file); named in every error message.
STACK_SOURCE: ContextVar[str | None] = ContextVar("aiinfra_stack_source", default=None)

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)

# What a private EKS cluster, its nodes and private SageMaker endpoints reach without a NAT hop.
DEFAULT_INTERFACE_ENDPOINTS = (
    "sts", "ecr.api", "ecr.dkr", "logs", "monitoring", "kms", "ec2", "elasticloadbalancing", "autoscaling",
    "ssm", "ssmmessages", "ec2messages", "secretsmanager", "sagemaker.api", "sagemaker.runtime", "eks",
    "eks-auth",
)


@dataclass(frozen=True)
class NetworkSettings(Section):
    """The VPC: address space, AZ spread, NAT layout, flow-log retention and private endpoints."""

    cidr: str = field("10.0.0.0/16", doc="VPC IPv4 CIDR block")
    az_count: int = field(3, min=2, max=6, doc="availability zones to spread subnets over")
    nat_gateways: Literal["single", "per-az"] = field("per-az")
    private_subnet_cidrs: tuple[str, ...] = field((), doc="explicit private subnet CIDRs, one per AZ")
    public_subnet_cidrs: tuple[str, ...] = field((), doc="explicit public subnet CIDRs, one per AZ")
    flow_log_retention_days: int = field(365, choices=LOG_RETENTION_DAYS)
    interface_endpoints: tuple[str, ...] = field(DEFAULT_INTERFACE_ENDPOINTS)

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"az_count": 2, "nat_gateways": "single", "flow_log_retention_days": 30},
        "staging": {"nat_gateways": "single", "flow_log_retention_days": 90},
    }

    def check(self, where: Where) -> None:
        vpc = parse_cidr(self.cidr, where.child("cidr"))
        if not 16 <= vpc.prefixlen <= 24:
            raise where.child("cidr").error("VPC prefix must be between /16 and /24", self.cidr)
        if where.environment in ("staging", "prod") and self.az_count < 3:
            raise where.child("azCount").error(
                f"{where.environment} must be multi-AZ across at least 3 availability zones; allowed: 3..6",
                self.az_count)
        if where.environment == "prod" and self.nat_gateways != "per-az":
            raise where.child("natGateways").error(
                "prod needs one NAT gateway per AZ so an AZ outage cannot cut egress; allowed: per-az",
                self.nat_gateways)
        named = []
        for key, cidrs in (("privateSubnetCidrs", self.private_subnet_cidrs),
                           ("publicSubnetCidrs", self.public_subnet_cidrs)):
            if cidrs and len(cidrs) != self.az_count:
                raise where.child(key).error(f"needs exactly one CIDR per AZ ({self.az_count})", list(cidrs))
            for i, text in enumerate(cidrs):
                net = parse_cidr(text, where.child(key).child(i))
                if not net.subnet_of(vpc):
                    raise where.child(key).child(i).error(f"not inside the VPC CIDR {self.cidr}", text)
                named.append((f"{key}[{i}]", net))
        clash = first_overlap(named)
        if clash:
            raise where.child(clash[1].split("[")[0]).error(f"{clash[1]} overlaps {clash[0]}")
        unknown = [e for e in self.interface_endpoints if not e.replace(".", "").replace("-", "").isalnum()]
        if unknown:
            raise where.child("interfaceEndpoints").error("not an AWS service name", unknown[0])

    @property
    def subnet_layout(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(private, public) CIDRs per AZ: explicit ones, or carved from the VPC block.

        Private subnets get the larger blocks: EKS gives every pod a VPC address.
        """
        if self.private_subnet_cidrs and self.public_subnet_cidrs:
            return self.private_subnet_cidrs, self.public_subnet_cidrs
        vpc = parse_cidr(self.cidr, Where("", "network.cidr"))
        halves = list(vpc.subnets(prefixlen_diff=1))
        private = [str(s) for s in halves[0].subnets(prefixlen_diff=3)][: self.az_count]
        public = [str(s) for s in halves[1].subnets(prefixlen_diff=4)][: self.az_count]
        return (self.private_subnet_cidrs or tuple(private), self.public_subnet_cidrs or tuple(public))


@dataclass(frozen=True)
class EncryptionSettings(Section):
    """Customer-managed KMS keys: how long a scheduled deletion can still be cancelled."""

    deletion_window_days: int = field(30, min=7, max=30)

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {"dev": {"deletion_window_days": 7}}

    def check(self, where: Where) -> None:
        if where.environment == "prod" and self.deletion_window_days < 30:
            raise where.child("deletionWindowDays").error(
                "prod keeps the full 30-day window to recover a key deleted by mistake; allowed: 30",
                self.deletion_window_days)


@dataclass(frozen=True)
class StorageSettings(Section):
    """Buckets and image repositories: lifecycle, retention and whether a stack may delete non-empty ones."""

    force_destroy: bool = field(False, doc="allow deleting non-empty buckets and repositories")
    noncurrent_version_days: int = field(90, min=1, max=3650)
    infrequent_access_after_days: int = field(30, min=30, max=3650)
    log_expiration_days: int = field(365, min=1, max=3650)
    image_retention_count: int = field(100, min=1, max=10000, doc="tagged images kept per repository")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"force_destroy": True, "noncurrent_version_days": 7, "log_expiration_days": 30,
                "image_retention_count": 20},
        "staging": {"noncurrent_version_days": 30, "log_expiration_days": 90},
    }

    def check(self, where: Where) -> None:
        if where.environment == "prod" and self.force_destroy:
            raise where.child("forceDestroy").error("prod protects its data from deletion; allowed: false", True)
        if self.log_expiration_days <= self.infrequent_access_after_days and self.log_expiration_days > 30:
            raise where.child("logExpirationDays").error(
                f"must exceed infrequentAccessAfterDays ({self.infrequent_access_after_days})",
                self.log_expiration_days)


# --- data and serving services (streaming, feature store, inference, monitoring) -----------------------------

KAFKA_VERSION = re.compile(r"\d+\.\d+\.(\d+|x)(\.tiered)?")
KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
ENDPOINT_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
# ElastiCache engine versions this platform supports, and the parameter-group family each belongs to.
CACHE_ENGINE_FAMILIES: Mapping[str, Mapping[str, str]] = {
    "redis": {"6.2": "redis6.x", "7.0": "redis7", "7.1": "redis7"},
    "valkey": {"7.2": "valkey7", "8.0": "valkey8", "8.1": "valkey8"},
}
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
    topics: tuple[str, ...] = field(("features", "inference-requests", "inference-results"), min=1,
                                    doc="topics producers and consumers are granted")
    default_partitions: int = field(6, min=1, max=1000)
    retention_hours: int = field(168, min=1, max=8760, doc="log.retention.hours")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"broker_instance_type": "kafka.t3.small", "volume_size_gb": 20, "max_volume_size_gb": 100,
                "enhanced_monitoring": "PER_BROKER", "log_retention_days": 30, "default_partitions": 3,
                "retention_hours": 24},
        "staging": {"volume_size_gb": 50, "max_volume_size_gb": 250, "log_retention_days": 30},
    }

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
    model_archive: str = field("model.tar.gz", doc="archive under the model prefix")
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


@dataclass(frozen=True)
class PlatformSettings(Section):
    """Everything one stack declares, validated; each component receives only its slice."""

    environment: Environment = field(doc="dev, staging or prod")
    owner: str = field(doc="team that owns the stack, tagged on every resource")
    cost_center: str = field(doc="cost center tagged on every resource")
    extra_tags: Mapping[str, str] = field({})
    network: NetworkSettings = field(NetworkSettings())
    encryption: EncryptionSettings = field(EncryptionSettings())
    storage: StorageSettings = field(StorageSettings())
    cluster: ClusterSettings = field(ClusterSettings())
    node_pools: tuple[NodePoolSettings, ...] = field((), doc="EKS managed node groups by accelerator profile")
    kubernetes: KubernetesSettings = field(KubernetesSettings())
    workloads: WorkloadSettings = field(WorkloadSettings())
    streaming: StreamingSettings = field(StreamingSettings())
    feature_store: FeatureStoreSettings = field(FeatureStoreSettings())
    endpoints: tuple[EndpointSettings, ...] = field(())
    monitoring: MonitoringSettings = field(MonitoringSettings())
    # Not read from the `aiinfra:` namespace: filled from the stack's identity and `aws:region`.
    project: str = field("aiinfra")
    stack: str = field("dev")
    region: str = field("us-east-1")
    source: str = field("")

    IDENTITY: ClassVar[tuple[str, ...]] = ("project", "stack", "region", "source")

    def check(self, where: Where) -> None:
        for key in ("owner", "cost_center"):
            if not getattr(self, key).strip():
                raise where.child(camel(key)).error("must not be empty", getattr(self, key))
        reserved = {"environment", "owner", "cost-center", "managed-by"} & set(self.extra_tags)
        if reserved:
            raise where.child("extraTags").error(
                f"'{sorted(reserved)[0]}' is set from settings and cannot be overridden")
        check_compute(self.node_pools, self.workloads, self.kubernetes, self.network.az_count, where)
        seen: set[str] = set()
        for i, endpoint in enumerate(self.endpoints):
            if endpoint.name in seen:
                raise where.child("endpoints").child(i).child("name").error(
                    "another endpoint has this name; endpoint names must be unique", endpoint.name)
            seen.add(endpoint.name)

    def name(self, role: str) -> str:
        """`<project>-<stack>-<role>`: the one naming rule for every resource."""
        return f"{self.project}-{self.stack}-{role}"

    @property
    def tags(self) -> dict[str, str]:
        """The tags every taggable resource carries; applied once, as the AWS provider's default tags."""
        return {
            **self.extra_tags,
            "environment": self.environment,
            "owner": self.owner,
            "cost-center": self.cost_center,
            "managed-by": "pulumi",
            "project": self.project,
        }

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


def parse_settings(config: Mapping[str, Any], *, project: str, stack: str, source: str) -> PlatformSettings:
    """Validate a stack's flat Pulumi config (`ns:key` -> value) into `PlatformSettings`."""
    root = Where(source, f"{NAMESPACE}:")
    raw = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(f"{NAMESPACE}:")}
    known = [camel(f.name) for f in dataclasses.fields(PlatformSettings) if f.name not in PlatformSettings.IDENTITY]
    for key in raw:
        if key not in known:
            raise SettingsError(f"{source}: {NAMESPACE}:{key}: {unknown_key_hint(key, known)}")
    environment = raw.get("environment")
    if environment is None:
        raise SettingsError(f"{source}: {NAMESPACE}:environment: is required; allowed: {', '.join(ENVIRONMENTS)}")
    if environment not in ENVIRONMENTS:
        raise SettingsError(
            f"{source}: {NAMESPACE}:environment = {environment!r}: unknown environment; "
            f"allowed: {', '.join(ENVIRONMENTS)}")
    region = config.get("aws:region")
    if not isinstance(region, str) or not region:
        raise SettingsError(f"{source}: aws:region: is required (the AWS region this stack deploys to)")
    identity = {"project": project, "stack": stack, "region": region, "source": source}
    return parse(PlatformSettings, {**raw, **identity}, dataclasses.replace(root, environment=environment))


def load_settings() -> PlatformSettings:
    """Read this stack's config from the Pulumi runtime (the CLI or the offline engine) and validate it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    stack = pulumi.get_stack()
    return parse_settings(config, project=pulumi.get_project(), stack=stack, source=STACK_SOURCE.get() or f"stacks/Pulumi.{stack}.yaml")
