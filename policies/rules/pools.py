"""One view of a node pool, whichever kind declares it: an EKS managed node group (with its launch template) or
a Karpenter NodePool (with its EC2NodeClass). The accelerator, capacity and cost rules read pools through this
view, so a guarantee written once holds for both kinds.

Karpenter reads `spec` as in its v1 API: the NodePool's `template.metadata.labels`, `template.spec.taints`,
`template.spec.requirements` (instance type or family, capacity type), `template.spec.nodeClassRef` and `limits`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.instances import (INSTANCE_TYPES, NEURON_CORE, NEURON_DEVICE, NVIDIA_GPU, POOL_LABEL, PROFILES,
                                 InstanceType, family_of, profile_of_family)

from .core import Resource, Stack, as_list, items, number
from .types import EKS_NODE_GROUP, KARPENTER_NODE_CLASS, KARPENTER_NODE_POOL, LAUNCH_TEMPLATE

NODE_GROUP_KIND, NODE_POOL_KIND = "node group", "NodePool"
INSTANCE_TYPE_KEY = "node.kubernetes.io/instance-type"
INSTANCE_FAMILY_KEY = "karpenter.k8s.aws/instance-family"
INSTANCE_SIZE_KEY = "karpenter.k8s.aws/instance-size"
CAPACITY_TYPE_KEY = "karpenter.sh/capacity-type"
# What each capacity type is called on a managed group and in Karpenter.
ON_DEMAND, SPOT, RESERVED = "on-demand", "spot", "reserved"
ACCELERATOR_RESOURCES = (NVIDIA_GPU, NEURON_DEVICE, NEURON_CORE)
_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def name_of(resource: Resource) -> str:
    """A Kubernetes object's `namespace/name` (or `name`), else the Pulumi name."""
    metadata = resource.props.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        return resource.name
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        name = resource.name
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name


def kind_of(resource: Resource) -> str:
    return resource.type.rsplit(":", 1)[-1]


_QUANTITY = re.compile(r"^([0-9.]+)(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_UNITS = {None: 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2.0**10, "Mi": 2.0**20,
          "Gi": 2.0**30, "Ti": 2.0**40}


def quantity(value: Any) -> float | None:
    """A Kubernetes resource quantity ("96", "500m", "1000Gi") as a plain number (bytes for memory)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _QUANTITY.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        return float(match.group(1)) * _UNITS[match.group(2)]
    except ValueError:
        return None


def per_node(instance: InstanceType, resource: str) -> float:
    """What one node of `instance` offers of a resource a limit or a pod names (memory in bytes)."""
    return float({"cpu": instance.vcpus, "memory": instance.memory_gib * 2.0**30, NVIDIA_GPU: instance.gpus,
                  NEURON_DEVICE: instance.neuron_devices, NEURON_CORE: instance.neuron_cores}.get(resource, 0))


@dataclass(frozen=True)
class Pool:
    """A node pool as the rules need it, from either kind."""

    resource: Resource
    kind: str                          # NODE_GROUP_KIND or NODE_POOL_KIND
    instance_types: tuple[str, ...]    # what it may launch (for a family-only NodePool: the catalog's types)
    families_only: tuple[str, ...]     # families a NodePool restricts to without naming types
    unrestricted: bool                 # a NodePool that restricts no instance type or family
    labels: Mapping[str, str]
    taints: tuple[tuple[str, str], ...]  # (key, effect in Kubernetes spelling)
    capacity_types: frozenset[str]
    min_nodes: float | None = None      # managed groups
    max_nodes: float | None = None      # managed groups
    limits: Mapping[str, float] = field(default_factory=dict)  # NodePool spec.limits
    node_class: Resource | None = None  # launch template or EC2NodeClass
    node_class_name: str = ""           # what a NodePool's nodeClassRef names

    @property
    def label(self) -> str | None:
        value = self.labels.get(POOL_LABEL)
        return str(value) if value else None

    @property
    def title(self) -> str:
        """How messages name it: `node group node-pools-serve`, `NodePool serve`."""
        return f"{self.kind} {name_of(self.resource) if self.kind == NODE_POOL_KIND else self.resource.name}"

    @property
    def families(self) -> tuple[str, ...]:
        return self.families_only or tuple(dict.fromkeys(family_of(t) for t in self.instance_types))

    def nodes_at_limit(self, instance: InstanceType) -> float | None:
        """How many nodes of `instance` the pool can reach: maxSize, or the tightest NodePool limit; None when
        nothing bounds it (a NodePool without limits on anything this type has)."""
        if self.kind == NODE_GROUP_KIND:
            return self.max_nodes
        bounds = [math.floor(limit / per_node(instance, key) + 1e-9) for key, limit in self.limits.items()
                  if per_node(instance, key) > 0]
        return float(min(bounds)) if bounds else None


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


def _node_group(stack: Stack, group: Resource) -> Pool:
    scaling = group.props.get("scalingConfig") or {}
    capacity = SPOT if group.props.get("capacityType") == "SPOT" else ON_DEMAND
    labels = group.props.get("labels")
    return Pool(group, NODE_GROUP_KIND, tuple(node_group_instance_types(stack, group)), (), False,
                {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
                tuple((str(t.get("key")), _EFFECTS.get(str(t.get("effect")), str(t.get("effect"))))
                      for t in items(group.props.get("taints"))),
                frozenset({capacity}), number(scaling.get("minSize")), number(scaling.get("maxSize")),
                node_class=launch_template_of(stack, group))


def _requirement(requirements: list[Mapping[str, Any]], key: str) -> list[str] | None:
    """The values an `In` requirement on `key` allows; None when nothing restricts the key that way."""
    for requirement in requirements:
        if requirement.get("key") == key and requirement.get("operator") == "In":
            return [str(v) for v in as_list(requirement.get("values"))]
    return None


def node_class_name(node_pool: Resource) -> str:
    ref = ((node_pool.props.get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeClassRef") or {}
    return str(ref.get("name") or "") if isinstance(ref, Mapping) else ""


def node_pool_view(node_pool: Resource, classes: Mapping[str, Resource] | None = None) -> Pool:
    """A NodePool as a pool; its EC2NodeClass from `classes` (by metadata.name) when given."""
    spec = node_pool.props.get("spec") or {}
    template = spec.get("template") or {}
    node_spec = template.get("spec") or {}
    requirements = items(node_spec.get("requirements"))
    types = _requirement(requirements, INSTANCE_TYPE_KEY)
    families: list[str] = []
    if types is None:
        families = _requirement(requirements, INSTANCE_FAMILY_KEY) or []
        sizes = _requirement(requirements, INSTANCE_SIZE_KEY)
        if families and sizes:
            types = [f"{f}.{s}" for f in families for s in sizes]
            families = []
        elif families:
            types = [name for name, t in INSTANCE_TYPES.items() if t.family in families]
    capacity = _requirement(requirements, CAPACITY_TYPE_KEY)
    labels = (template.get("metadata") or {}).get("labels")
    limits = {str(k): q for k, v in (spec.get("limits") or {}).items() if (q := quantity(v)) is not None}
    ref = node_class_name(node_pool)
    return Pool(node_pool, NODE_POOL_KIND, tuple(types or ()), tuple(families), types is None and not families,
                {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
                tuple((str(t.get("key")), str(t.get("effect"))) for t in items(node_spec.get("taints"))),
                # Karpenter launches on-demand only when no capacity-type requirement says otherwise.
                frozenset(capacity if capacity is not None else [ON_DEMAND]),
                limits=limits, node_class=(classes or {}).get(ref), node_class_name=ref)


def pools(stack: Stack) -> Iterator[Pool]:
    """Every managed node group and Karpenter NodePool of the stack."""
    for group in stack.of_type(EKS_NODE_GROUP):
        yield _node_group(stack, group)
    classes = {str((c.props.get("metadata") or {}).get("name") or ""): c for c in stack.of_type(KARPENTER_NODE_CLASS)}
    for node_pool in stack.of_type(KARPENTER_NODE_POOL):
        yield node_pool_view(node_pool, classes)


def hardware(pool: Pool) -> str | None:
    """The pool's profile kind by the catalog: `nvidia`, `neuron`, `cpu`, or None when one of its families is
    not in the catalog or nothing restricts its types (a rule then says so instead of guessing)."""
    if pool.unrestricted:
        return None
    kinds = []
    for family in pool.families:
        profile = profile_of_family(family)
        if profile is None:
            return None
        kinds.append(PROFILES[profile].accelerator)
    return next((k for k in kinds if k), "cpu")
