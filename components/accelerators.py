"""Accelerator profiles and the instance catalog: the one place taints, labels and device resources come from.

Node pools (their AMI type, taint and labels), device plugins (their tolerations and node selectors) and pod
specs (their tolerations, node selectors and resource requests) all read these definitions, so the taint a
pool carries and the toleration a pod needs cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Profile = Literal["cpu", "nvidia-gpu", "trainium", "inferentia"]
PROFILES: tuple[str, ...] = ("cpu", "nvidia-gpu", "trainium", "inferentia")

# Resource names the device plugins advertise.
NVIDIA_GPU = "nvidia.com/gpu"
NEURON_DEVICE = "aws.amazon.com/neuron"
NEURON_CORE = "aws.amazon.com/neuroncore"
EFA = "vpc.amazonaws.com/efa"

# Labels every node of a pool carries; set by the node group, selected by pods and device plugins.
ACCELERATOR_LABEL = "accelerator"
POOL_LABEL = "aiinfra.io/node-pool"
EFA_LABEL = "vpc.amazonaws.com/efa.present"

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


_NVIDIA_TAINT = Taint(NVIDIA_GPU, "true")
# One Neuron taint for trainium and inferentia pools alike: `aws.amazon.com/neuron`. A second
# `aws.amazon.com/neuroncore` taint would need a second toleration that no chart or pod ships with.
_NEURON_TAINT = Taint(NEURON_DEVICE, "true")

PROFILE_SPECS: Mapping[str, AcceleratorProfile] = {
    "cpu": AcceleratorProfile("cpu", "AL2023_x86_64_STANDARD", "standard", (), None, None, ()),
    "nvidia-gpu": AcceleratorProfile(
        "nvidia-gpu", "AL2023_x86_64_NVIDIA", "nvidia",
        ("g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e", "p5en"), _NVIDIA_TAINT, "nvidia", (NVIDIA_GPU,)),
    "trainium": AcceleratorProfile(
        "trainium", "AL2023_x86_64_NEURON", "neuron", ("trn1", "trn1n", "trn2"), _NEURON_TAINT, "neuron",
        (NEURON_DEVICE, NEURON_CORE)),
    "inferentia": AcceleratorProfile(
        "inferentia", "AL2023_x86_64_NEURON", "neuron", ("inf1", "inf2"), _NEURON_TAINT, "neuron",
        (NEURON_DEVICE, NEURON_CORE)),
}


@dataclass(frozen=True)
class InstanceType:
    """The facts about an accelerated instance type that pod requests and EFA wiring depend on."""

    name: str
    vcpus: int
    memory_gib: int
    gpus: int = 0
    neuron_devices: int = 0
    neuron_cores: int = 0
    network_cards: int = 1
    efa: bool = False

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


def _types(*entries: InstanceType) -> Mapping[str, InstanceType]:
    return {t.name: t for t in entries}


# Accelerated types this platform knows (counts from the EC2 instance-type documentation). EFA is wired for
# the training types that need it for collective traffic: trn1.32xlarge, trn1n.32xlarge, p4d and p5.
INSTANCE_TYPES: Mapping[str, InstanceType] = _types(
    InstanceType("g4dn.xlarge", 4, 16, gpus=1),
    InstanceType("g4dn.2xlarge", 8, 32, gpus=1),
    InstanceType("g4dn.12xlarge", 48, 192, gpus=4),
    InstanceType("g5.xlarge", 4, 16, gpus=1),
    InstanceType("g5.2xlarge", 8, 32, gpus=1),
    InstanceType("g5.4xlarge", 16, 64, gpus=1),
    InstanceType("g5.12xlarge", 48, 192, gpus=4),
    InstanceType("g5.48xlarge", 192, 768, gpus=8),
    InstanceType("g6.xlarge", 4, 16, gpus=1),
    InstanceType("g6.2xlarge", 8, 32, gpus=1),
    InstanceType("g6.12xlarge", 48, 192, gpus=4),
    InstanceType("g6e.xlarge", 4, 32, gpus=1),
    InstanceType("g6e.2xlarge", 8, 64, gpus=1),
    InstanceType("g6e.12xlarge", 48, 384, gpus=4),
    InstanceType("p4d.24xlarge", 96, 1152, gpus=8, network_cards=4, efa=True),
    InstanceType("p5.48xlarge", 192, 2048, gpus=8, network_cards=32, efa=True),
    InstanceType("trn1.2xlarge", 8, 32, neuron_devices=1, neuron_cores=2),
    InstanceType("trn1.32xlarge", 128, 512, neuron_devices=16, neuron_cores=32, network_cards=8, efa=True),
    InstanceType("trn1n.32xlarge", 128, 512, neuron_devices=16, neuron_cores=32, network_cards=16, efa=True),
    InstanceType("inf2.xlarge", 4, 16, neuron_devices=1, neuron_cores=2),
    InstanceType("inf2.8xlarge", 32, 128, neuron_devices=1, neuron_cores=2),
    InstanceType("inf2.24xlarge", 96, 384, neuron_devices=6, neuron_cores=12),
    InstanceType("inf2.48xlarge", 192, 768, neuron_devices=12, neuron_cores=24),
)

# General-purpose families a `cpu` pool may use (x86_64, to match the AL2023 x86_64 AMI).
CPU_FAMILIES = ("t3", "t3a", "m5", "m5a", "m6i", "m6a", "m7i", "m7a", "c5", "c6i", "c6a", "c7i", "c7a", "r5", "r6i",
                "r6a", "r7i")


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def profile_of_family(family: str) -> str | None:
    """The profile an instance family belongs to, or None for a family this platform does not place."""
    for spec in PROFILE_SPECS.values():
        if family in spec.families:
            return spec.name
    return "cpu" if family in CPU_FAMILIES else None


def allowed_types(profile: str) -> list[str]:
    """What a pool of `profile` may list, for error messages."""
    if profile == "cpu":
        return [f"{f}.*" for f in CPU_FAMILIES]
    return [name for name, t in INSTANCE_TYPES.items() if t.family in PROFILE_SPECS[profile].families]


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
