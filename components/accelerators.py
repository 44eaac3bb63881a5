"""Accelerator profiles for the components: taints, labels, placement and AMI parameters, from the catalog.

Node pools (their AMI type, taint and labels), device plugins (their tolerations and node selectors) and pod
specs (their tolerations, node selectors and resource requests) all read these definitions, so the taint a
pool carries and the toleration a pod needs cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Resource names, label keys and instance facts come from the shared catalog (contracts), re-exported here.
from contracts.instances import (
    ACCELERATOR_LABEL, CPU_FAMILIES, EFA, EFA_LABEL, INSTANCE_TYPES, NEURON_CORE, NEURON_DEVICE, NVIDIA_GPU,
    POOL_LABEL, PROFILES, InstanceType, Profile, allowed_types, family_of, profile_of_family)

# The Neuron Helm chart's second scheduler, which runs the Neuron scheduler extension: EKS does not let the
# default scheduler load extenders, so Neuron pods name this scheduler to get topology-aware core placement.
NEURON_SCHEDULER = "my-scheduler"


@dataclass(frozen=True)
class Taint:
    """A node taint in both spellings: the EKS node-group API's and Kubernetes'."""

    key: str
    value: str
    effect: str = "NoSchedule"

    _EKS_EFFECT = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}

    def node_group_taint(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value, "effect": self._EKS_EFFECT[self.effect]}

    def toleration(self) -> dict[str, str]:
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


@dataclass(frozen=True)
class AcceleratorProfile:
    """What a profile decides for its pools: AMI, taint, labels, and the device resources its nodes offer."""

    name: str
    ami_type: str
    ssm_variant: str            # the EKS-optimized AMI parameter path segment: standard, nvidia or neuron
    families: tuple[str, ...]   # instance families that belong to this profile
    taint: Taint | None
    accelerator: str | None     # value of the `accelerator` label
    resources: tuple[str, ...]  # extended resources its device plugin advertises

    @property
    def is_accelerated(self) -> bool:
        return self.taint is not None


PROFILE_SPECS: Mapping[str, AcceleratorProfile] = {
    name: AcceleratorProfile(spec.name, spec.ami_type, spec.ssm_variant, spec.families,
                             Taint(spec.taint_key, "true") if spec.taint_key else None, spec.accelerator,
                             spec.resources)
    for name, spec in PROFILES.items()
}

__all__ = ["ACCELERATOR_LABEL", "CPU_FAMILIES", "EFA", "EFA_LABEL", "INSTANCE_TYPES", "NEURON_CORE", "NEURON_DEVICE",
           "NVIDIA_GPU", "POOL_LABEL", "PROFILE_SPECS", "InstanceType", "Profile", "Taint", "allowed_types",
           "ami_parameter", "family_of", "placement_for", "pool_labels", "profile_of_family"]


def ami_parameter(kubernetes_version: str, profile: str, what: Literal["release_version", "image_id"]) -> str:
    """The SSM parameter AWS publishes for the EKS-optimized AL2023 AMI of a profile."""
    variant = PROFILE_SPECS[profile].ssm_variant
    return f"/aws/service/eks/optimized-ami/{kubernetes_version}/amazon-linux-2023/x86_64/{variant}/recommended/{what}"


@dataclass(frozen=True)
class Placement:
    """Where a pod must go: the pool's labels to select and the pool's taint to tolerate."""

    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, str], ...]
    scheduler_name: str | None = None

    def pod_spec_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"node_selector": dict(self.node_selector),
                                  "tolerations": [dict(t) for t in self.tolerations]}
        if self.scheduler_name:
            fields["scheduler_name"] = self.scheduler_name
        return fields


def pool_labels(pool_name: str, profile: str, efa: bool, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels a pool's nodes carry: its own name, its accelerator kind, EFA presence, then the extras."""
    spec = PROFILE_SPECS[profile]
    labels = {**(extra or {}), POOL_LABEL: pool_name}
    if spec.accelerator:
        labels[ACCELERATOR_LABEL] = spec.accelerator
    if efa:
        labels[EFA_LABEL] = "true"
    return labels


def placement_for(pool_name: str, profile: str) -> Placement:
    """The node selector and tolerations for a pod bound to one pool: derived from the pool's own taint."""
    spec = PROFILE_SPECS[profile]
    selector = {POOL_LABEL: pool_name}
    if spec.accelerator:
        selector[ACCELERATOR_LABEL] = spec.accelerator
    tolerations = (spec.taint.toleration(),) if spec.taint else ()
    scheduler = NEURON_SCHEDULER if spec.accelerator == "neuron" else None
    return Placement(selector, tolerations, scheduler)


def reserved_label_keys() -> tuple[str, ...]:
    return (ACCELERATOR_LABEL, POOL_LABEL, EFA_LABEL)


def reserved_taint_keys() -> tuple[str, ...]:
    """Taint keys a pool may not add itself: the profile taints, and never a second Neuron taint."""
    return (NVIDIA_GPU, NEURON_DEVICE, NEURON_CORE)
