"""Accelerator pools: tainted, on the matching EKS-optimized AMI, EFA pools packed in one AZ, no spot for prod
serving, and only instance types on the configured allow-list."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fnmatch import fnmatch
from typing import Any

from contracts.instances import (NEURON_CORE, NEURON_DEVICE, NVIDIA_GPU, PROFILES, ROLE_LABEL, SAGEMAKER_PREFIX,
                                 SERVING_ROLE, allowed_types, family_of, profile_of, profile_of_family)

from .core import Resource, RuleSet, Stack, Violation, as_list, items
from .pools import (INSTANCE_FAMILY_KEY, INSTANCE_TYPE_KEY, NODE_POOL_KIND, SPOT, Pool, hardware, launch_template_of,
                    name_of, node_pool_view, pools)
from .types import (EKS_NODE_GROUP, KARPENTER_NODE_POOL, LAUNCH_TEMPLATE, PLACEMENT_GROUP, SAGEMAKER_ENDPOINT_CONFIG,
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


def _accelerated_pools(stack: Stack) -> Iterator[tuple[Pool, str]]:
    """Each pool (managed group or NodePool) with its hardware by the catalog: nvidia, neuron, cpu, or unknown
    when any of its types is not in the catalog or nothing restricts them (a rule then says so)."""
    for pool in pools(stack):
        yield pool, hardware(pool) or UNKNOWN


def _unknown(pool: Pool) -> str:
    if pool.unrestricted:
        return f"{pool.title} restricts no instance type ({INSTANCE_TYPE_KEY} or {INSTANCE_FAMILY_KEY}), so its hardware is unknown"
    unknown = next(f for f in pool.families if profile_of_family(f) is None)
    named = next((t for t in pool.instance_types if family_of(t) == unknown), unknown)
    return f"{pool.title}: {not_in_catalog(named)}"


@rules.stack(
    "accelerator-pools-tainted", severity="high",
    description="GPU and Neuron pools (managed node groups and Karpenter NodePools) carry a NoSchedule taint for "
                "their device resource, so only pods that ask for the accelerator land there.",
    remediation="Add taints=[{key: 'nvidia.com/gpu' | 'aws.amazon.com/neuron', value: 'true', "
                "effect: 'NO_SCHEDULE'}] to the node group, or the same taint (effect NoSchedule) to the NodePool's "
                "spec.template.spec.taints.")
def tainted(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for pool, kind in _accelerated_pools(stack):
        if kind not in TAINT_KEYS:
            continue  # cpu, or unknown hardware: accelerator-pools-matching-ami reports the latter
        if not any(key in TAINT_KEYS[kind] and effect in ("NoSchedule", "NoExecute") for key, effect in pool.taints):
            yield Violation(f"{', '.join(pool.instance_types or pool.families)} {pool.title} has no NoSchedule "
                            f"taint {' or '.join(TAINT_KEYS[kind])}", pool.resource.urn)


@rules.stack(
    "accelerator-pools-matching-ami", severity="high",
    description="Pools use the EKS-optimized AMI matching their hardware: node groups the NVIDIA AMI type for GPU "
                "pools, NEURON for Trainium/Inferentia and no accelerated AMI on CPU pools; NodePools an "
                "EC2NodeClass that selects the profile's AMI alias (al2023@..., whose NVIDIA or Neuron variant "
                "Karpenter picks for the instance type).",
    remediation="Set amiType to AL2023_x86_64_NVIDIA (GPU) or AL2023_x86_64_NEURON (Neuron) with the SSM "
                "release_version; CPU pools use AL2023_x86_64_STANDARD. A NodePool's EC2NodeClass sets "
                "amiSelectorTerms=[{alias: 'al2023@<release>'}].")
def matching_ami(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for pool, kind in _accelerated_pools(stack):
        if kind == UNKNOWN:
            yield Violation(_unknown(pool), pool.resource.urn)
        elif pool.kind == NODE_POOL_KIND:
            yield from _node_class_ami(pool)
        elif kind == "cpu":
            ami = pool.resource.props.get("amiType")
            if ami in ACCELERATED_AMI_TYPES:
                yield Violation(f"CPU node group {pool.resource.name} uses the accelerated AMI type {ami}",
                                pool.resource.urn)
        elif (ami := pool.resource.props.get("amiType")) not in AMI_TYPES[kind]:
            yield Violation(f"{', '.join(pool.instance_types)} node group {pool.resource.name} uses AMI type "
                            f"{ami or 'unset'}; allowed: {', '.join(AMI_TYPES[kind])}", pool.resource.urn)


def _node_class_ami(pool: Pool) -> Iterator[Violation]:
    if pool.node_class is None:
        yield Violation(f"{pool.title} names EC2NodeClass {pool.node_class_name or '(none)'}, which the stack does "
                        f"not declare (spec.template.spec.nodeClassRef)", pool.resource.urn)
        return
    aliases = {str(PROFILES[p].karpenter_alias) for f in pool.families if (p := profile_of_family(f))}
    terms = items((pool.node_class.props.get("spec") or {}).get("amiSelectorTerms"))
    chosen = [str(t.get("alias", "")) for t in terms]
    if not terms or not all(a.partition("@")[0] in aliases for a in chosen):
        shown = ", ".join(a or "(id/name/tags)" for a in chosen) or "none"
        yield Violation(f"{pool.title}'s EC2NodeClass {name_of(pool.node_class)} selects AMI {shown}; allowed: "
                        f"alias {' or '.join(sorted(a + '@<release>' for a in aliases))}", pool.resource.urn)


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


@rules.stack(
    "no-spot-for-prod-serving", severity="high",
    description=f"Prod serving pools (label {ROLE_LABEL}={SERVING_ROLE} on a node group or a NodePool's nodes) "
                "run on-demand: a spot reclaim must not take live traffic down.",
    remediation="Set capacityType='ON_DEMAND' for serving node groups in prod, and karpenter.sh/capacity-type In "
                "[on-demand] (or reserved) on serving NodePools; keep spot for dev, batch and training.")
def no_spot_serving(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for pool in pools(stack):
        if pool.resource.environment == "prod" and SPOT in pool.capacity_types \
                and pool.labels.get(ROLE_LABEL) == SERVING_ROLE:
            yield Violation(f"prod serving {pool.title} runs on SPOT capacity", pool.resource.urn)


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
    if resource.type == KARPENTER_NODE_POOL:
        pool = node_pool_view(resource)
        return [] if pool.families_only else list(pool.instance_types)
    if resource.type == EKS_NODE_GROUP:
        return [str(t) for t in as_list(resource.props.get("instanceTypes"))]
    if resource.type == SAGEMAKER_ENDPOINT_CONFIG:
        return [str(v["instanceType"]) for v in items(resource.props.get("productionVariants"))
                + items(resource.props.get("shadowProductionVariants")) if v.get("instanceType")]
    value = resource.props.get("instanceType")
    return [str(value)] if value else []


@rules.resource(
    "instance-types-allowed",
    types=(EKS_NODE_GROUP, LAUNCH_TEMPLATE, KARPENTER_NODE_POOL, SAGEMAKER_ENDPOINT_CONFIG, SAGEMAKER_NOTEBOOK),
    severity="medium", config=ALLOWED_SCHEMA,
    description="Node groups, launch templates, Karpenter NodePools, endpoints and notebooks use only instance "
                "types on the allow-list of their accelerator profile (a NodePool that restricts only families "
                "needs the whole family, '<family>.*', on the list).",
    remediation="Pick an allowed type, or extend allowedInstanceTypes in the policy pack config after review; "
                "NodePools name their types with a node.kubernetes.io/instance-type In requirement.")
def instance_types_allowed(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    allowed: Mapping[str, Any] = config.get("allowedInstanceTypes") or {}
    if resource.type == KARPENTER_NODE_POOL:
        pool = node_pool_view(resource)
        if pool.unrestricted:
            yield (f"NodePool restricts no instance type ({INSTANCE_TYPE_KEY} or {INSTANCE_FAMILY_KEY} In "
                   f"requirement), so Karpenter may launch any type")
            return
        for family in pool.families_only:
            kind = profile_of_family(family)
            patterns = [str(p) for p in as_list(allowed.get(kind))] if kind else []
            if kind is None:
                yield not_in_catalog(family)
            elif f"{family}.*" not in patterns:
                yield (f"NodePool allows every {family} type ({INSTANCE_FAMILY_KEY}) but only "
                       f"{', '.join(p for p in patterns if family_of(p) == family) or 'none'} of it is allowed for "
                       f"profile {kind}; name the types ({INSTANCE_TYPE_KEY})")
    for instance_type in _instance_types(resource):
        kind = profile(instance_type)
        if kind == UNKNOWN:
            yield not_in_catalog(instance_type)
            continue
        patterns = [str(p) for p in as_list(allowed.get(kind))]
        if not any(fnmatch(instance_type, p) for p in patterns):
            yield (f"instance type {instance_type} is not allowed for profile {kind}; "
                   f"allowed: {', '.join(patterns) or 'none'}")
