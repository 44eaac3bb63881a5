"""Stack settings, one section per concern; `PlatformSettings` composes them and `load_settings` reads them.

Each module declares one section (a frozen `contracts.config.Section`) with its fields, per-environment
defaults and its own checks; `contracts.config.parse` reads all of them, so every bad value fails with the
same one-line message. Components import the section they take from here, never `PlatformSettings`.
"""

from components.settings.cluster import DEFAULT_ADDON_VERSIONS, REQUIRED_ADDONS, ClusterSettings
from components.settings.common import ENVIRONMENTS, LOG_RETENTION_DAYS
from components.settings.encryption import EncryptionSettings
from components.settings.endpoints import (
    EndpointAlarmSettings,
    EndpointAutoscalingSettings,
    EndpointRolloutSettings,
    EndpointSettings,
)
from components.settings.feature_store import CACHE_ENGINE_FAMILIES, FeatureStoreSettings
from components.settings.features import FeaturesQuotaSettings, FeaturesSettings
from components.settings.kubernetes import KubernetesSettings, QuotaSettings
from components.settings.monitoring import AlarmSubscriptionSettings, MonitoringSettings
from components.settings.network import DEFAULT_INTERFACE_ENDPOINTS, NetworkSettings
from components.settings.node_pools import NodePoolSettings, TaintSettings
from components.settings.platform import (
    NAMESPACE,
    STACK_SOURCE,
    PlatformSettings,
    StackIdentity,
    load_settings,
    parse_settings,
)
from components.settings.storage import StorageSettings
from components.settings.streaming import StreamingSettings, replication_defaults
from components.settings.telemetry import TelemetrySettings
from components.settings.workloads import (
    WORKLOAD_PROFILES,
    CompilationJobSettings,
    ServingSettings,
    TrainingJobSettings,
    WorkloadSettings,
)

__all__ = [
    "CACHE_ENGINE_FAMILIES", "DEFAULT_ADDON_VERSIONS", "DEFAULT_INTERFACE_ENDPOINTS", "ENVIRONMENTS",
    "LOG_RETENTION_DAYS", "NAMESPACE", "REQUIRED_ADDONS", "STACK_SOURCE", "WORKLOAD_PROFILES",
    "AlarmSubscriptionSettings", "ClusterSettings", "CompilationJobSettings", "EncryptionSettings",
    "EndpointAlarmSettings", "EndpointAutoscalingSettings", "EndpointRolloutSettings", "EndpointSettings",
    "FeatureStoreSettings", "FeaturesQuotaSettings", "FeaturesSettings", "KubernetesSettings", "MonitoringSettings", "NetworkSettings", "NodePoolSettings",
    "PlatformSettings", "QuotaSettings", "ServingSettings", "StackIdentity", "StorageSettings",
    "StreamingSettings", "TaintSettings", "TelemetrySettings", "TrainingJobSettings", "WorkloadSettings", "load_settings",
    "parse_settings", "replication_defaults",
]
