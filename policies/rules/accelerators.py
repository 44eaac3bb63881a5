"""Accelerator pools: tainted, on the matching EKS-optimized AMI, EFA pools packed in one AZ, no spot for prod
serving, and only instance types on the configured allow-list."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fnmatch import fnmatch
from typing import Any

from contracts.instances import (NEURON_CORE, NEURON_DEVICE, NVIDIA_GPU, PROFILES, ROLE_LABEL, SAGEMAKER_PREFIX,
                                 SERVING_ROLE, accelerator_of, allowed_types, profile_of)

from .core import Resource, RuleSet, Stack, Violation, as_list, items
from .types import (EKS_NODE_GROUP, LAUNCH_TEMPLATE, PLACEMENT_GROUP, SAGEMAKER_ENDPOINT_CONFIG,
                    SAGEMAKER_NOTEBOOK)

rules = RuleSet("accelerators")

# Keyed by the catalog's accelerator kind (`contracts.instances.accelerator_of`): nvidia or neuron.
NVIDIA, NEURON = "nvidia", "neuron"
TAINT_KEYS = {NVIDIA: (NVIDIA_GPU,), NEURON: (NEURON_DEVICE, NEURON_CORE)}
AMI_TYPES = {
    NVIDIA: ("AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA",
             "BOTTLEROCKET_ARM_64_NVIDIA", "AL2_x86_64_GPU"),
    NEURON: ("AL2023_x86_64_NEURON", "AL2_x86_64_GPU"),
}
ACCELERATED_AMI_TYPES = set(AMI_TYPES[NVIDIA]) | set(AMI_TYPES[NEURON])
SAGEMAKER = "sagemaker"
UNKNOWN = "unknown"


def profile(instance_type: str) -> str:
    """The allow-list an instance type is checked against: its catalog profile (cpu, nvidia-gpu, trainium,
    inferentia), `sagemaker` for SageMaker's `ml.` types, or `unknown` when the catalog does not know it."""
    if instance_type.startswith(SAGEMAKER_PREFIX):
        return SAGEMAKER
    return profile_of(instance_type) or UNKNOWN


def not_in_catalog(instance_type: str) -> str:
    return (f"instance type {instance_type} is not in the instance catalog (contracts/instances.py), so its "
            f"hardware (and the AMI, taint and allow-list it needs) is unknown")


def launch_template_of(stack: Stack, node_group: Resource) -> Resource | None:
    found = stack.referenced(node_group, [LAUNCH_TEMPLATE], "launchTemplate")
    return found[0] if found else None


def node_group_instance_types(stack: Stack, node_group: Resource) -> list[str]:
    """The node group's own instanceTypes, else its launch template's instanceType."""
    types = [str(t) for t in as_list(node_group.props.get("instanceTypes")) if t]
    if not types:
        template = launch_template_of(stack, node_group)
        if template is not None and template.props.get("instanceType"):
            types = [str(template.props["instanceType"])]
    return types


def _accelerated_groups(stack: Stack) -> Iterator[tuple[Resource, str, list[str]]]:
    """Each node group with its hardware by the catalog: nvidia, neuron, cpu, or unknown when any of its
    types is not in the catalog (a rule then says so instead of guessing)."""
    for group in stack.of_type(EKS_NODE_GROUP):
        types = node_group_instance_types(stack, group)
        if any(profile_of(t) is None for t in types):
            yield group, UNKNOWN, types
            continue
        kind = next((k for k in (accelerator_of(t) for t in types) if k), None)
        yield group, kind or "cpu", types


@rules.stack(
    "accelerator-pools-tainted", severity="high",
    description="GPU and Neuron node groups carry a NoSchedule taint for their device resource, so only pods "
                "that ask for the accelerator land there.",
    remediation="Add taints=[{key: 'nvidia.com/gpu' | 'aws.amazon.com/neuron', value: 'true', "
                "effect: 'NO_SCHEDULE'}] to the node group.")
def tainted(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for group, kind, types in _accelerated_groups(stack):
        if kind not in TAINT_KEYS:
            continue  # cpu, or unknown hardware: accelerator-pools-matching-ami reports the latter
        taints = items(group.props.get("taints"))
        if not any(t.get("key") in TAINT_KEYS[kind] and t.get("effect") in ("NO_SCHEDULE", "NO_EXECUTE")
                   for t in taints):
            yield Violation(f"{', '.join(types)} node group {group.name} has no NO_SCHEDULE taint "
                            f"{' or '.join(TAINT_KEYS[kind])}", group.urn)


@rules.stack(
    "accelerator-pools-matching-ami", severity="high",
    description="Node groups use the EKS-optimized AMI type matching their hardware: NVIDIA for GPU pools, "
                "NEURON for Trainium/Inferentia pools, and no accelerated AMI on CPU pools.",
    remediation="Set amiType to AL2023_x86_64_NVIDIA (GPU) or AL2023_x86_64_NEURON (Neuron) with the SSM "
                "release_version; CPU pools use AL2023_x86_64_STANDARD.")
def matching_ami(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for group, kind, types in _accelerated_groups(stack):
        ami = group.props.get("amiType")
        if kind == UNKNOWN:
            unknown = next(t for t in types if profile_of(t) is None)
            yield Violation(f"node group {group.name}: {not_in_catalog(unknown)}", group.urn)
        elif kind == "cpu":
            if ami in ACCELERATED_AMI_TYPES:
                yield Violation(f"CPU node group {group.name} uses the accelerated AMI type {ami}", group.urn)
        elif ami not in AMI_TYPES[kind]:
            yield Violation(f"{', '.join(types)} node group {group.name} uses AMI type {ami or 'unset'}; "
                            f"allowed: {', '.join(AMI_TYPES[kind])}", group.urn)


@rules.stack(
    "efa-pools-single-az-cluster-placement", severity="high",
    description="Node groups whose launch template attaches EFA interfaces run in one subnet (one AZ) and in a "
                "cluster placement group, so collective traffic stays on the low-latency fabric.",
    remediation="Give EFA node groups exactly one subnet and set the launch template's placement.groupName to a "
                "PlacementGroup with strategy 'cluster'.")
def efa_placement(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for group in stack.of_type(EKS_NODE_GROUP):
        template = launch_template_of(stack, group)
        if template is None:
            continue
        if not any(i.get("interfaceType") == "efa" for i in items(template.props.get("networkInterfaces"))):
            continue
        subnets = as_list(group.props.get("subnetIds"))
        if len(subnets) != 1:
            yield Violation(f"EFA node group {group.name} spans {len(subnets)} subnets; allowed: exactly 1", group.urn)
        groups = [g for g in stack.of_type(PLACEMENT_GROUP) if stack.references(template, g, "placement")]
        if not any(g.props.get("strategy") == "cluster" for g in groups):
            yield Violation(f"EFA launch template {template.name} of node group {group.name} is not in a cluster "
                            f"placement group (placement.groupName)", group.urn)


@rules.resource(
    "no-spot-for-prod-serving", types=(EKS_NODE_GROUP,), severity="high",
    description=f"Prod serving node groups (label {ROLE_LABEL}={SERVING_ROLE}) run on-demand: a spot reclaim "
                "must not take live traffic down.",
    remediation="Set capacityType='ON_DEMAND' for serving pools in prod; keep spot for dev, batch and training.")
def no_spot_serving(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.environment != "prod" or resource.props.get("capacityType") != "SPOT":
        return
    labels = resource.props.get("labels")
    if isinstance(labels, Mapping) and labels.get(ROLE_LABEL) == SERVING_ROLE:
        yield "prod serving node group runs on SPOT capacity"


# What the settings accept per profile (the catalog: every CPU family, the known accelerated types), plus the
# SageMaker types reviewed for endpoints and notebooks.
DEFAULT_ALLOWED: dict[str, list[str]] = {
    **{name: allowed_types(name) for name in PROFILES},
    SAGEMAKER: ["ml.t2.medium", "ml.t3.*", "ml.m5.*", "ml.m6i.*", "ml.c5.*", "ml.c6i.*", "ml.g5.*", "ml.g6.*",
                "ml.inf2.*", "ml.trn1.*", "ml.p4d.24xlarge"],
}
ALLOWED_SCHEMA = {"allowedInstanceTypes": {
    "type": "object", "default": DEFAULT_ALLOWED,
    "propertyNames": {"enum": [*PROFILES, SAGEMAKER]},
    "additionalProperties": {"type": "array", "items": {"type": "string", "minLength": 1}},
    "description": "per accelerator profile (cpu, nvidia-gpu, trainium, inferentia, sagemaker): allowed "
                   "instance types, shell-style patterns such as 'g5.*'"}}


def _instance_types(resource: Resource) -> list[str]:
    if resource.type == EKS_NODE_GROUP:
        return [str(t) for t in as_list(resource.props.get("instanceTypes"))]
    if resource.type == SAGEMAKER_ENDPOINT_CONFIG:
        return [str(v["instanceType"]) for v in items(resource.props.get("productionVariants"))
                + items(resource.props.get("shadowProductionVariants")) if v.get("instanceType")]
    value = resource.props.get("instanceType")
    return [str(value)] if value else []


@rules.resource(
    "instance-types-allowed", types=(EKS_NODE_GROUP, LAUNCH_TEMPLATE, SAGEMAKER_ENDPOINT_CONFIG, SAGEMAKER_NOTEBOOK),
    severity="medium", config=ALLOWED_SCHEMA,
    description="Node groups, launch templates, endpoints and notebooks use only instance types on the allow-list "
                "of their accelerator profile.",
    remediation="Pick an allowed type, or extend allowedInstanceTypes in the policy pack config after review.")
def instance_types_allowed(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    allowed: Mapping[str, Any] = config.get("allowedInstanceTypes") or {}
    for instance_type in _instance_types(resource):
        kind = profile(instance_type)
        if kind == UNKNOWN:
            yield not_in_catalog(instance_type)
            continue
        patterns = [str(p) for p in as_list(allowed.get(kind))]
        if not any(fnmatch(instance_type, p) for p in patterns):
            yield (f"instance type {instance_type} is not allowed for profile {kind}; "
                   f"allowed: {', '.join(patterns) or 'none'}")
