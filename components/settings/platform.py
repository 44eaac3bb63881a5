"""The whole stack's settings and the loader: the only place that reads Pulumi config.

A stack file holds plain config under the `aiinfra:` namespace; `load_settings()` turns it into one frozen
`PlatformSettings` (one section per concern, each parsed and checked by `contracts.config`) before any resource
is declared, so a typo or a bad value stops the run with one line that names the stack file, the key, the value
and what is allowed, instead of a half-declared stack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from components.settings.cluster import ClusterSettings
from components.settings.common import ENVIRONMENTS, TAG_KEY, TAG_KEY_RULE, TAG_RULE, TAG_VALUE, Environment
from components.settings.encryption import EncryptionSettings
from components.settings.endpoints import EndpointSettings
from components.settings.feature_store import FeatureStoreSettings
from components.settings.features import FeaturesSettings
from components.settings.kubernetes import KubernetesSettings
from components.settings.monitoring import MonitoringSettings
from components.settings.network import NetworkSettings
from components.settings.node_pools import NodePoolSettings
from components.settings.storage import StorageSettings
from components.settings.streaming import StreamingSettings, replication_defaults
from components.settings.telemetry import TelemetrySettings
from components.settings.workloads import WorkloadSettings, check_compute
from contracts import features as feature_facts
from contracts.config import Section, SettingsError, Where, camel, field, parse, unknown_key_hint

NAMESPACE = "aiinfra"


# The stack file being read, when the caller knows it better than `stacks/Pulumi.<stack>.yaml` (the offline
# engine given an ad-hoc file); named in every error message.
STACK_SOURCE: ContextVar[str | None] = ContextVar("aiinfra_stack_source", default=None)


@dataclass(frozen=True)
class StackIdentity:
    """The stack a component belongs to: its names, its region and its environment (not config sections)."""

    project: str
    stack: str
    region: str
    environment: str

    def name(self, role: str) -> str:
        """`<project>-<stack>-<role>`: the one naming rule for every resource."""
        return f"{self.project}-{self.stack}-{role}"


@dataclass(frozen=True)
class PlatformSettings(Section):
    """Everything one stack declares, validated; each component receives only its slice."""

    environment: Environment = field(doc="dev, staging or prod")
    owner: str = field(doc="team that owns the stack, tagged on every resource", pattern=TAG_VALUE, rule=TAG_RULE)
    cost_center: str = field(doc="cost center tagged on every resource", pattern=TAG_VALUE, rule=TAG_RULE)
    extra_tags: Mapping[str, str] = field({}, doc="more tags for every resource",
                                          keys={"pattern": TAG_KEY, "rule": TAG_KEY_RULE},
                                          values={"pattern": TAG_VALUE, "rule": TAG_RULE})
    network: NetworkSettings = field(NetworkSettings())
    encryption: EncryptionSettings = field(EncryptionSettings())
    storage: StorageSettings = field(StorageSettings())
    cluster: ClusterSettings = field(ClusterSettings())
    node_pools: tuple[NodePoolSettings, ...] = field((), doc="EKS managed node groups by accelerator profile")
    kubernetes: KubernetesSettings = field(KubernetesSettings())
    workloads: WorkloadSettings = field(WorkloadSettings())
    streaming: StreamingSettings = field(StreamingSettings())
    feature_store: FeatureStoreSettings = field(FeatureStoreSettings())
    features: FeaturesSettings = field(FeaturesSettings())
    endpoints: tuple[EndpointSettings, ...] = field(())
    monitoring: MonitoringSettings = field(MonitoringSettings())
    telemetry: TelemetrySettings = field(TelemetrySettings())
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
        self._check_feature_topics(where)
        seen: set[str] = set()
        for i, endpoint in enumerate(self.endpoints):
            if endpoint.name in seen:
                raise where.child("endpoints").child(i).child("name").error(
                    "another endpoint has this name; endpoint names must be unique", endpoint.name)
            seen.add(endpoint.name)

    def _check_feature_topics(self, where: Where) -> None:
        """The feature pipeline's topics must be granted by the MSK client policies and fit the brokers."""
        missing = [t for s in feature_facts.STREAMS for t in s.topics if t not in self.streaming.topics]
        if missing:
            raise where.child("streaming").child("topics").error(
                f"lacks {', '.join(missing)}, which the feature pipeline reads and writes; add them",
                list(self.streaming.topics))
        brokers = self.streaming.broker_count(self.network.az_count)
        min_insync = replication_defaults(brokers)[1]
        replication = self.features.replication
        if replication is not None and not min_insync <= replication <= brokers:
            raise where.child("features").child("replication").error(
                f"must be between min.insync.replicas ({min_insync}) and the broker count ({brokers}): fewer "
                "replicas refuse every acks=all write, more cannot be placed", replication)

    @property
    def identity(self) -> StackIdentity:
        """What every component knows about the stack it belongs to (names, region, environment)."""
        return StackIdentity(project=self.project, stack=self.stack, region=self.region,
                             environment=self.environment)

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


__all__ = ["NAMESPACE", "STACK_SOURCE", "PlatformSettings", "StackIdentity", "load_settings", "parse_settings"]
