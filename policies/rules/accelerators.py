"""Accelerator pools: tainted, on the matching EKS-optimized AMI, EFA pools packed in one AZ, no spot for prod
serving, and only instance types on the configured allow-list."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from fnmatch import fnmatch
from typing import Any

from .core import Resource, RuleSet, Stack, Violation, as_list, items, strings
from .types import (EKS_NODE_GROUP, LAUNCH_TEMPLATE, PLACEMENT_GROUP, SAGEMAKER_ENDPOINT_CONFIG,
                    SAGEMAKER_NOTEBOOK)

rules = RuleSet("accelerators")

NVIDIA, NEURON = "nvidia-gpu", "neuron"
TAINT_KEYS = {NVIDIA: ("nvidia.com/gpu",), NEURON: ("aws.amazon.com/neuron", "aws.amazon.com/neuroncore")}
AMI_TYPES = {
    NVIDIA: ("AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA",
             "BOTTLEROCKET_ARM_64_NVIDIA", "AL2_x86_64_GPU"),
    NEURON: ("AL2023_x86_64_NEURON", "AL2_x86_64_GPU"),
}
ACCELERATED_AMI_TYPES = set(AMI_TYPES[NVIDIA]) | set(AMI_TYPES[NEURON])


def profile(instance_type: str) -> str:
    """The accelerator profile of an instance type: cpu, nvidia-gpu, trainium, inferentia, or sagemaker."""
    if instance_type.startswith("ml."):
        return "sagemaker"
    family = instance_type.split(".")[0]
    if family.startswith("trn"):
        return "trainium"
    if family.startswith("inf"):
        return "inferentia"
    if re.match(r"^(p\d|g\d|gr\d)", family):
        return NVIDIA
    return "cpu"


def accelerator(instance_type: str) -> str | None:
    kind = profile(instance_type)
    return NVIDIA if kind == NVIDIA else NEURON if kind in ("trainium", "inferentia") else None


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
    for group in stack.of_type(EKS_NODE_GROUP):
        types = node_group_instance_types(stack, group)
        kinds = {accelerator(t) for t in types}
        kind = next((k for k in kinds if k), None)
        yield group, kind or "cpu", types


@rules.stack(
    "accelerator-pools-tainted", severity="high",
    description="GPU and Neuron node groups carry a NoSchedule taint for their device resource, so only pods "
                "that ask for the accelerator land there.",
    remediation="Add taints=[{key: 'nvidia.com/gpu' | 'aws.amazon.com/neuron', value: 'true', "
                "effect: 'NO_SCHEDULE'}] to the node group.")
def tainted(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for group, kind, types in _accelerated_groups(stack):
        if kind == "cpu":
            continue
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
        if kind == "cpu":
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


SERVING_PATTERN = {"servingPoolPattern": {
    "type": "string", "default": "serv|infer",
    "description": "regular expression matched against a node group's name and labels to tell serving pools"}}


@rules.resource(
    "no-spot-for-prod-serving", types=(EKS_NODE_GROUP,), severity="high", config=SERVING_PATTERN,
    description="Prod serving node groups run on-demand: a spot reclaim must not take live traffic down.",
    remediation="Set capacityType='ON_DEMAND' for serving pools in prod; keep spot for dev, batch and training.")
def no_spot_serving(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.environment != "prod" or resource.props.get("capacityType") != "SPOT":
        return
    pattern = re.compile(str(config.get("servingPoolPattern") or "serv|infer"), re.IGNORECASE)
    names = [resource.name, str(resource.props.get("nodeGroupName") or "")] + strings(resource.props.get("labels"))
    names += [str(k) for k in (resource.props.get("labels") or {})]
    if any(pattern.search(n) for n in names):
        yield "prod serving node group runs on SPOT capacity"


DEFAULT_ALLOWED = {
    "cpu": ["t3.*", "m5.*", "m6i.*", "m6a.*", "m7i.*", "m7a.*", "c5.*", "c6i.*", "c7i.*", "r6i.*", "r7i.*"],
    "nvidia-gpu": ["g5.*", "g6.*", "g6e.*", "p4d.24xlarge", "p5.48xlarge"],
    "trainium": ["trn1.2xlarge", "trn1.32xlarge", "trn1n.32xlarge", "trn2.48xlarge"],
    "inferentia": ["inf2.*"],
    "sagemaker": ["ml.t2.medium", "ml.t3.*", "ml.m5.*", "ml.m6i.*", "ml.c5.*", "ml.c6i.*", "ml.g5.*", "ml.g6.*",
                  "ml.inf2.*", "ml.trn1.*", "ml.p4d.24xlarge"],
}
ALLOWED_SCHEMA = {"allowedInstanceTypes": {
    "type": "object", "default": DEFAULT_ALLOWED,
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
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
def allowed_types(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    allowed: Mapping[str, Any] = config.get("allowedInstanceTypes") or {}
    for instance_type in _instance_types(resource):
        kind = profile(instance_type)
        patterns = [str(p) for p in as_list(allowed.get(kind))]
        if not any(fnmatch(instance_type, p) for p in patterns):
            yield (f"instance type {instance_type} is not allowed for profile {kind}; "
                   f"allowed: {', '.join(patterns) or 'none'}")
