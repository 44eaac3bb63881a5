"""The instance catalog: which families belong to which accelerator profile, and what their hardware offers.

Settings validate pools against it, node pools derive AMI types, taints and labels from it, pod specs size
their device requests from it, and the policy pack classifies node groups and endpoints by it. One table, so a
family the settings accept is a family the policies know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Profile = Literal["cpu", "nvidia-gpu", "trainium", "inferentia"]

# Extended resources the device plugins advertise.
NVIDIA_GPU = "nvidia.com/gpu"
NEURON_DEVICE = "aws.amazon.com/neuron"
NEURON_CORE = "aws.amazon.com/neuroncore"
EFA = "vpc.amazonaws.com/efa"

# Labels every node of a pool carries; set by the node group, selected by pods and device plugins.
ACCELERATOR_LABEL = "accelerator"
POOL_LABEL = "aiinfra.io/node-pool"
EFA_LABEL = "vpc.amazonaws.com/efa.present"
# The job a pool does for the workloads placed on it: the pool a workload section names (`workloads.serving.pool`
# and so on) carries that role. Policies key on it (prod serving pools stay on-demand), never on pool names.
ROLE_LABEL = "aiinfra.io/pool-role"
SERVING_ROLE = "serving"
POOL_ROLES: tuple[str, ...] = ("system", "training", "compilation", SERVING_ROLE)


@dataclass(frozen=True)
class ProfileSpec:
    """What a profile decides for its pools: AMI type, the taint key and device resources of its nodes."""

    name: str
    ami_type: str               # EKS node-group amiType (AL2023, x86_64)
    ssm_variant: str            # EKS-optimized AMI SSM parameter path segment: standard, nvidia or neuron
    karpenter_alias: str        # EC2NodeClass amiSelectorTerms alias family
    families: tuple[str, ...]   # instance families of this profile
    taint_key: str | None       # NoSchedule taint (value "true") on accelerated pools
    accelerator: str | None     # value of the `accelerator` label and the workload device kind
    resources: tuple[str, ...]  # extended resources its device plugin advertises

    @property
    def is_accelerated(self) -> bool:
        return self.taint_key is not None


# General-purpose x86_64 families a `cpu` pool may use (the AL2023 x86_64 AMI).
CPU_FAMILIES: tuple[str, ...] = ("t3", "t3a", "m5", "m5a", "m6i", "m6a", "m7i", "m7a", "c5", "c6i", "c6a", "c7i",
                                 "c7a", "r5", "r6i", "r6a", "r7i")

PROFILES: Mapping[str, ProfileSpec] = {
    "cpu": ProfileSpec("cpu", "AL2023_x86_64_STANDARD", "standard", "al2023", CPU_FAMILIES, None, None, ()),
    "nvidia-gpu": ProfileSpec(
        "nvidia-gpu", "AL2023_x86_64_NVIDIA", "nvidia", "al2023",
        ("g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e", "p5en"), NVIDIA_GPU, "nvidia", (NVIDIA_GPU,)),
    # One Neuron taint for trainium and inferentia alike: a second `neuroncore` taint would need a second
    # toleration that no chart or pod ships with.
    "trainium": ProfileSpec(
        "trainium", "AL2023_x86_64_NEURON", "neuron", "al2023", ("trn1", "trn1n", "trn2"), NEURON_DEVICE, "neuron",
        (NEURON_DEVICE, NEURON_CORE)),
    "inferentia": ProfileSpec(
        "inferentia", "AL2023_x86_64_NEURON", "neuron", "al2023", ("inf1", "inf2"), NEURON_DEVICE, "neuron",
        (NEURON_DEVICE, NEURON_CORE)),
}

# Families whose instance storage is local NVMe: hardware-encrypted, and SageMaker's CreateEndpointConfig
# refuses a KmsKeyId for their ML storage volume.
LOCAL_NVME_FAMILIES: frozenset[str] = frozenset({
    "c5d", "m5d", "r5d", "c6id", "m6id", "r6id", "g4dn", "g5", "g6", "g6e", "p3dn", "p4d", "p4de", "p5", "p5e",
    "trn1", "trn1n"})


@dataclass(frozen=True)
class InstanceType:
    """The facts about an accelerated instance type that pod requests, limits and EFA wiring depend on."""

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
        return family_of(self.name)


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

SAGEMAKER_PREFIX = "ml."


def family_of(instance_type: str) -> str:
    """`g5` for `g5.xlarge`, and for `ml.g5.xlarge` too (SageMaker's names carry an `ml.` prefix)."""
    name = instance_type[len(SAGEMAKER_PREFIX):] if instance_type.startswith(SAGEMAKER_PREFIX) else instance_type
    return name.split(".", 1)[0]


def profile_of_family(family: str) -> str | None:
    """The profile an instance family belongs to, or None for a family this platform does not place
    (for example g4ad, whose AMD GPUs the NVIDIA AMI cannot drive)."""
    for spec in PROFILES.values():
        if family in spec.families:
            return spec.name
    return None


def profile_of(instance_type: str) -> str | None:
    """The profile of an EC2 or SageMaker (`ml.`) instance type, or None when the catalog does not know it."""
    return profile_of_family(family_of(instance_type))


def accelerator_of(instance_type: str) -> str | None:
    """`nvidia`, `neuron`, or None for CPU types and types the catalog does not know."""
    profile = profile_of(instance_type)
    return PROFILES[profile].accelerator if profile else None


def allowed_types(profile: str) -> list[str]:
    """What a pool of `profile` may list, for error messages and the policy pack's default allow-list."""
    if profile == "cpu":
        return [f"{f}.*" for f in CPU_FAMILIES]
    return [name for name, t in INSTANCE_TYPES.items() if t.family in PROFILES[profile].families]
