"""Capacity: every Karpenter NodePool is bounded, the workloads placed on a pool fit what it can hold at its
limit, and the pods in the workload namespaces name a declared PriorityClass (so serving preempts training and
compilation when capacity is short, instead of the scheduler's first come, first served)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.instances import INSTANCE_TYPES, POOL_LABEL, PROFILES, profile_of_family

from .core import Resource, RuleSet, Stack, Violation, as_list, items, number
from .hardening import containers, pod_spec
from .pools import (ACCELERATOR_RESOURCES, NODE_GROUP_KIND, Pool, kind_of, name_of, node_pool_view, per_node, pools,
                    quantity)
from .types import (K8S_DEPLOYMENT, K8S_HPA, K8S_JOB, K8S_PRIORITY_CLASS, K8S_WORKLOADS, KARPENTER_NODE_POOL,
                    KEDA_SCALED_OBJECT)

rules = RuleSet("capacity")

# KEDA's default when a ScaledObject sets no maxReplicaCount.
KEDA_DEFAULT_MAX = 100


@rules.resource(
    "karpenter-nodepool-limits", types=(KARPENTER_NODE_POOL,), severity="high",
    description="Every Karpenter NodePool has spec.limits on cpu and, for an accelerated pool, on its device "
                "resource (nvidia.com/gpu or aws.amazon.com/neuron), so a burst of pending pods cannot buy an "
                "unbounded fleet.",
    remediation="Set spec.limits={cpu: <vCPUs>, 'aws.amazon.com/neuron' | 'nvidia.com/gpu': <devices>} from the "
                "pool's settings.")
def nodepool_limits(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    pool = node_pool_view(resource)
    needed = ["cpu"]
    for family in pool.families:
        profile = profile_of_family(family)
        taint = PROFILES[profile].taint_key if profile else None
        if taint and taint not in needed:
            needed.append(taint)
    missing = [key for key in needed if key not in pool.limits]
    if missing:
        yield f"NodePool {name_of(resource)} sets no spec.limits on {', '.join(missing)}"


# --- what a workload asks for ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Demand:
    """The most pods a workload may run at once, what each asks for, and where that maximum comes from."""

    workload: Resource
    pods: int
    source: str
    per_pod: Mapping[str, float]   # accelerator resource -> count per pod
    pool: str | None               # the nodeSelector's pool label

    @property
    def title(self) -> str:
        return f"{kind_of(self.workload)} {name_of(self.workload)}"


def pod_accelerators(spec: Mapping[str, Any]) -> dict[str, float]:
    """Accelerators one pod holds: the app containers together, or the largest init container if that is more
    (init containers run one at a time, before the app containers)."""
    def asked(container: Mapping[str, Any], resource: str) -> float:
        resources = container.get("resources") or {}
        values = [quantity((resources.get(part) or {}).get(resource)) for part in ("limits", "requests")]
        return max((v for v in values if v is not None), default=0.0)

    apps = items(spec.get("containers"))
    inits = items(spec.get("initContainers"))
    total = {r: max(sum(asked(c, r) for c in apps), max((asked(c, r) for c in inits), default=0.0))
             for r in ACCELERATOR_RESOURCES}
    return {r: v for r, v in total.items() if v > 0}


def scaler_maximum(stack: Stack, workload: Resource) -> tuple[int, str] | None:
    """The highest maxReplicas of an HPA or maxReplicaCount of a KEDA ScaledObject targeting the Deployment,
    and where it comes from."""
    metadata = workload.props.get("metadata") or {}
    name, namespace = metadata.get("name"), metadata.get("namespace") or "default"
    found: list[tuple[int, str]] = []
    for scaler in stack.of_type(*K8S_HPA, KEDA_SCALED_OBJECT):
        spec = scaler.props.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        if (target.get("kind") or "Deployment") != "Deployment" or target.get("name") != name \
                or ((scaler.props.get("metadata") or {}).get("namespace") or "default") != namespace:
            continue
        if scaler.type == KEDA_SCALED_OBJECT:
            count = number(spec.get("maxReplicaCount"))
            found.append((int(count) if count is not None else KEDA_DEFAULT_MAX,
                          f"ScaledObject {name_of(scaler)} maxReplicaCount"
                          + ("" if count is not None else f" (unset: KEDA's default {KEDA_DEFAULT_MAX})")))
        elif (count := number(spec.get("maxReplicas"))) is not None:
            found.append((int(count), f"HorizontalPodAutoscaler {name_of(scaler)} maxReplicas"))
    return max(found) if found else None


def demands(stack: Stack) -> Iterator[Demand]:
    """Each Deployment and Job whose pods ask for accelerators, at its maximum."""
    for workload in stack.of_type(K8S_DEPLOYMENT, K8S_JOB):
        spec = pod_spec(workload)
        per_pod = pod_accelerators(spec)
        if not per_pod:
            continue
        selector = spec.get("nodeSelector") or {}
        pool = str(selector[POOL_LABEL]) if isinstance(selector, Mapping) and selector.get(POOL_LABEL) else None
        own = workload.props.get("spec") or {}
        if workload.type == K8S_JOB:
            count = number(own.get("parallelism"), 1)
            pods, source = int(count if count is not None else 1), "parallelism"
        else:
            scaled = scaler_maximum(stack, workload)
            replicas = number(own.get("replicas"), 1)
            pods, source = scaled or (int(replicas if replicas is not None else 1), "spec.replicas")
        yield Demand(workload, pods, source, per_pod, pool)


# --- what a pool can hold ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hold:
    """What a pool holds of one workload at its limit, on its tightest instance type."""

    pods: int
    instance_type: str
    nodes: float
    per_node: int
    why: str          # a reason it cannot be sized, else ""


def _basis(pool: Pool) -> str:
    if pool.kind == NODE_GROUP_KIND:
        return f"maxSize {_n(pool.max_nodes or 0)}"
    return "limits " + ", ".join(f"{k}={_n(v) if k != 'memory' else _n(v / 2**30) + 'Gi'}"
                                 for k, v in sorted(pool.limits.items()))


def _n(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def holds(pool: Pool, demand: Demand) -> Hold | None:
    """Pods of `demand` the pool holds at its limit: the fewest over the instance types it may launch (a managed
    group's ASG may launch any of them; Karpenter any that fits the pod). None when nothing bounds the pool or
    nothing restricts its types (karpenter-nodepool-limits and instance-types-allowed report those)."""
    held: list[Hold] = []
    for name in pool.instance_types:
        instance = INSTANCE_TYPES.get(name)
        if instance is None:
            return Hold(0, name, 0, 0, f"instance type {name} is not in the instance catalog, so its devices are unknown")
        fit = min(math.floor(per_node(instance, r) / need + 1e-9) for r, need in demand.per_pod.items())
        if fit == 0:
            if pool.kind == NODE_GROUP_KIND:
                offered = ", ".join(f"{_n(per_node(instance, r))} {r}" for r in demand.per_pod)
                return Hold(0, name, 0, 0, f"a pod needs {_per_pod(demand)} but {name} offers {offered} per node")
            continue  # Karpenter launches only types the pending pod fits on
        nodes = pool.nodes_at_limit(instance)
        if nodes is None:
            return None
        held.append(Hold(int(nodes) * fit, name, nodes, fit, ""))
    if not pool.instance_types:
        return None
    if not held:
        return Hold(0, pool.instance_types[0], 0, 0,
                    f"a pod needs {_per_pod(demand)}, more than any of {', '.join(pool.instance_types)} offers")
    return min(held, key=lambda h: h.pods)


def _per_pod(demand: Demand) -> str:
    return " + ".join(f"{_n(v)} {r}" for r, v in demand.per_pod.items())


@rules.stack(
    "workloads-fit-their-pool", severity="high",
    description="A Deployment's maximum replicas (its HorizontalPodAutoscaler's maxReplicas, its KEDA "
                "ScaledObject's maxReplicaCount, else spec.replicas) and a Job's parallelism, times the "
                f"accelerators each pod asks for, fit what the node pool its pods select ({POOL_LABEL}) can hold "
                "at its limit: a managed group at maxSize, a Karpenter NodePool at spec.limits, on the tightest "
                "instance type the pool may launch; workloads sharing a pool fit together.",
    remediation="Raise the pool's maxSize or NodePool limits, choose instance types with more devices, or lower "
                "the autoscaler's maximum (or the Job's parallelism).")
def workloads_fit(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    by_label: dict[str, list[Pool]] = defaultdict(list)
    for pool in pools(stack):
        if pool.label:
            by_label[pool.label].append(pool)
    sharing: dict[str, list[Demand]] = defaultdict(list)
    for demand in demands(stack):
        urn = demand.workload.urn
        if demand.pool is None:
            yield Violation(f"{demand.title} asks for {_per_pod(demand)} per pod but selects no node pool "
                            f"(nodeSelector {POOL_LABEL})", urn)
            continue
        found = by_label.get(demand.pool)
        if not found:
            yield Violation(f"{demand.title} selects node pool {demand.pool} ({POOL_LABEL}), which no node group or "
                            f"NodePool of the stack carries", urn)
            continue
        pool = found[0]
        hold = holds(pool, demand)
        if hold is None:
            continue  # an unbounded NodePool: karpenter-nodepool-limits reports it
        if hold.why:
            yield Violation(f"{demand.title} cannot run on node pool {demand.pool} ({pool.title}): {hold.why}", urn)
        elif demand.pods > hold.pods:
            yield Violation(
                f"{demand.title}: up to {demand.pods} pods ({demand.source}) x {_per_pod(demand)}, but "
                f"node pool {demand.pool} ({pool.title}) holds {hold.pods} such pods at its limit ({_basis(pool)}: "
                f"{_n(hold.nodes)} x {hold.instance_type} x {hold.per_node} pod(s) per node)", urn)
        else:
            sharing[demand.pool].append(demand)
    yield from _shared(by_label, sharing)


def _shared(by_label: Mapping[str, list[Pool]], sharing: Mapping[str, list[Demand]]) -> Iterator[Violation]:
    """Workloads that each fit alone must fit together, resource by resource, on the tightest type."""
    for label, group in sharing.items():
        if len(group) < 2:
            continue
        pool = by_label[label][0]
        for resource in ACCELERATOR_RESOURCES:
            asking = [d for d in group if resource in d.per_pod]
            if len(asking) < 2:
                continue
            need = sum(d.pods * d.per_pod[resource] for d in asking)
            capacities = []
            for name in pool.instance_types:
                instance = INSTANCE_TYPES[name]
                nodes = pool.nodes_at_limit(instance)
                if nodes is not None and per_node(instance, resource) > 0:
                    capacities.append((nodes * per_node(instance, resource), name))
            if not capacities:
                continue
            capacity, name = min(capacities)
            if need > capacity:
                parts = ", ".join(f"{d.title} {d.pods} x {_n(d.per_pod[resource])}" for d in asking)
                yield Violation(f"node pool {label} ({pool.title}) holds {_n(capacity)} {resource} at its limit "
                                f"({_basis(pool)} on {name}), but the workloads it serves need {_n(need)} together "
                                f"({parts})", pool.resource.urn)


# --- priorities ----------------------------------------------------------------------------------------------

@rules.stack(
    "workload-pods-priority-class", severity="medium", enforcement="advisory",
    config={"namespaces": {"type": "array", "default": ["training", "serving"], "uniqueItems": True,
                           "items": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
                           "description": "workload namespaces whose pods must name a declared PriorityClass"}},
    description="Every pod template in the workload namespaces names a priorityClassName that a PriorityClass in "
                "the stack declares, so the scheduler preempts by the platform's priorities when capacity is "
                "short (serving over training over compilation).",
    remediation="Declare kubernetes.scheduling.v1.PriorityClass objects (serving highest, training preemptible, "
                "compilation lowest) and set spec.template.spec.priorityClassName on every workload.")
def priority_class(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    namespaces = {str(n) for n in as_list(config.get("namespaces"))}
    declared = {str((p.props.get("metadata") or {}).get("name") or "") for p in stack.of_type(K8S_PRIORITY_CLASS)}
    declared.discard("")
    for workload in stack.of_type(*K8S_WORKLOADS):
        if str((workload.props.get("metadata") or {}).get("namespace") or "default") not in namespaces:
            continue
        spec = pod_spec(workload)
        if not containers(spec):
            continue
        name = spec.get("priorityClassName")
        title = f"{kind_of(workload)} {name_of(workload)}"
        if not name:
            yield Violation(f"{title} names no priorityClassName", workload.urn)
        elif name not in declared:
            yield Violation(f"{title} names priorityClassName {name!r}, which no PriorityClass in the stack declares "
                            f"(declared: {', '.join(sorted(declared)) or 'none'})", workload.urn)
