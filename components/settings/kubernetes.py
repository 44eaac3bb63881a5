"""The in-cluster add-on section: pinned device-plugin chart versions and per-namespace quotas."""

from __future__ import annotations

import re
from dataclasses import dataclass

from contracts.config import Section, Where, camel, field

_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-.+][0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class QuotaSettings(Section):
    """A namespace's resource quota: what all its pods together may request."""

    cpu: int = field(64, min=1, max=100000)
    memory_gib: int = field(256, min=1, max=1000000)
    neuron_devices: int = field(0, min=0, max=10000)
    neuron_cores: int = field(0, min=0, max=100000)
    gpus: int = field(0, min=0, max=10000)
    efa_interfaces: int = field(0, min=0, max=10000)
    pods: int = field(100, min=1, max=100000)


@dataclass(frozen=True)
class KubernetesSettings(Section):
    """In-cluster add-ons: pinned device-plugin chart versions and per-namespace quotas."""

    nvidia_device_plugin_version: str = field("0.17.1", doc="nvidia-device-plugin Helm chart version")
    neuron_chart_version: str = field("1.1.2", doc="neuron-helm-chart version (device plugin + scheduler)")
    efa_device_plugin_version: str = field("v0.5.5", doc="aws-efa-k8s-device-plugin Helm chart version")
    training_quota: QuotaSettings = field(QuotaSettings())
    serving_quota: QuotaSettings = field(QuotaSettings())

    def check(self, where: Where) -> None:
        for key in ("nvidia_device_plugin_version", "neuron_chart_version", "efa_device_plugin_version"):
            value = getattr(self, key)
            if not _VERSION.match(value):
                raise where.child(camel(key)).error("pin an exact chart version (like 1.2.3)", value)
