"""Typed stack settings: the only place that reads Pulumi config.

A stack file holds plain config under the `aiinfra:` namespace; `load_settings()` turns it into one frozen
`PlatformSettings` before any resource is declared, so a typo or a bad value stops the run with one line that
names the stack file, the key, the value and what is allowed, instead of a half-declared stack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from components.compute_settings import (
    ClusterSettings,
    KubernetesSettings,
    NodePoolSettings,
    WorkloadSettings,
    check_compute,
)
from components.config_schema import (
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
        check_compute(self.node_pools, self.workloads, self.network.az_count, where)

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
