"""Admission: would the API server accept the pods the stack declares, in the namespaces it declares?

A Deployment or Job is created whatever its pod template says; its pods are refused later, one by one, by the
namespace's admission plugins, and the workload silently never runs. These rules replay what those plugins do
with the objects in the stack:
- LimitRanger fills in a container's missing requests and limits from the namespace's LimitRange defaults;
  the pod is refused when a request then exceeds its limit, or a value leaves the range's min/max.
- ResourceQuota refuses a pod that would take the namespace past its `hard` totals (counted here at the
  declared parallelism, the autoscaler's maximum plus the rollout's surge), or that sets no limit for a
  resource whose limit the quota counts.
- Pod Security admission refuses pods below the namespace's `enforce` level (`restricted` checked here).
Namespaces without a LimitRange, quota or label (e.g. kube-system, where the Helm charts' pods run) admit
anything and are not checked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .capacity import scaler_maximum
from .core import Resource, RuleSet, Stack, Violation, as_list, items
from .hardening import containers, pod_spec
from .types import K8S_WORKLOADS

rules = RuleSet("admission")

LIMIT_RANGE = "kubernetes:core/v1:LimitRange"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
NAMESPACE = "kubernetes:core/v1:Namespace"
_QUANTITY = re.compile(r"^([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity ("250m", "24Gi", 6) as a number; None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        return None
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def show(resource: str, value: float) -> str:
    """A number back in the unit people write for `resource`."""
    if resource.endswith("memory") and value >= 2**30 and value % 2**30 == 0:
        return f"{int(value // 2**30)}Gi"
    if resource.endswith("memory") and value >= 2**20 and value % 2**20 == 0:
        return f"{int(value // 2**20)}Mi"
    if resource.endswith("cpu") and value != int(value):
        return f"{int(round(value * 1000))}m"
    return str(int(value)) if value == int(value) else f"{value:g}"


def _namespace(resource: Resource) -> str:
    return str((resource.props.get("metadata") or {}).get("namespace") or "default")


def _name(resource: Resource) -> str:
    return str((resource.props.get("metadata") or {}).get("name") or resource.name)


@dataclass(frozen=True)
class Workload:
    """One pod template and how many pods of it may exist at once."""

    resource: Resource
    namespace: str
    pods: int
    spec: Mapping[str, Any]

    @property
    def title(self) -> str:
        kind = self.resource.type.rsplit(":", 1)[-1]
        return f"{kind} {self.namespace}/{_name(self.resource)}"


def _count(stack: Stack, resource: Resource) -> int:
    """Pods at once: a Job's parallelism; a Deployment's replicas or its autoscaler's maximum, plus the surge."""
    spec = resource.props.get("spec") or {}
    if resource.type.endswith(":Job"):
        return int(quantity(spec.get("parallelism")) or 1)
    if resource.type.endswith(":Pod"):
        return 1
    replicas = int(quantity(spec.get("replicas")) or 1)
    scaled = scaler_maximum(stack, resource)  # its HPA's or KEDA ScaledObject's maximum
    if scaled is not None:
        replicas = max(replicas, scaled[0])
    surge = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        return replicas + math.ceil(replicas * float(surge[:-1]) / 100)
    return replicas + int(quantity(surge) or 0)


def workloads(stack: Stack) -> list[Workload]:
    return [Workload(r, _namespace(r), _count(stack, r), pod_spec(r)) for r in stack.of_type(*K8S_WORKLOADS)]


def _limit_ranges(stack: Stack) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
    """Namespace -> (LimitRange name, its Container item) pairs."""
    found: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for lr in stack.of_type(LIMIT_RANGE):
        for item in items((lr.props.get("spec") or {}).get("limits")):
            if item.get("type", "Container") == "Container":
                found.setdefault(_namespace(lr), []).append((_name(lr), item))
    return found


def effective(container: Mapping[str, Any], ranges: list[tuple[str, Mapping[str, Any]]]) -> \
        tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """(requests, limits, where each defaulted value came from) after LimitRanger and API defaulting."""
    resources = container.get("resources") or {}
    requests = {k: quantity(v) for k, v in (resources.get("requests") or {}).items()}
    limits = {k: quantity(v) for k, v in (resources.get("limits") or {}).items()}
    origin: dict[str, str] = {}
    for name, item in ranges:
        for key, value in (item.get("default") or {}).items():
            if key not in limits:
                limits[key], origin[f"limit:{key}"] = quantity(value), name
        for key, value in (item.get("defaultRequest") or {}).items():
            if key not in requests and key not in (resources.get("limits") or {}):
                requests[key], origin[f"request:{key}"] = quantity(value), name
    for key, value in limits.items():
        requests.setdefault(key, value)  # a limit without a request requests the limit
    return ({k: v for k, v in requests.items() if v is not None}, {k: v for k, v in limits.items() if v is not None},
            origin)


def pod_totals(spec: Mapping[str, Any], ranges: list[tuple[str, Mapping[str, Any]]]) -> dict[str, float]:
    """What one pod counts against a quota: `requests.X` / `limits.X` (init containers run one at a time, so a
    pod takes the larger of the biggest init container and the sum of its containers)."""
    def totals(group: list[Mapping[str, Any]]) -> list[dict[str, float]]:
        out = []
        for c in group:
            requests, limits, _ = effective(c, ranges)
            out.append({**{f"requests.{k}": v for k, v in requests.items()},
                        **{f"limits.{k}": v for k, v in limits.items()}})
        return out

    main = totals(items(spec.get("containers")))
    summed: dict[str, float] = {}
    for entry in main:
        for key, value in entry.items():
            summed[key] = summed.get(key, 0.0) + value
    for entry in totals(items(spec.get("initContainers"))):
        for key, value in entry.items():
            summed[key] = max(summed.get(key, 0.0), value)
    return summed


@rules.stack(
    "pods-fit-namespace-limits", severity="critical",
    description="Every declared pod is admitted by its namespace: after the LimitRange defaults no request exceeds "
                "its limit or leaves the range's min/max, and all pods at their declared parallelism / maximum "
                "replicas (plus rollout surge) fit the ResourceQuota.",
    remediation="Set each container's requests and limits (limits equal to requests for CPU and memory), or "
                "raise the namespace's LimitRange defaults and ResourceQuota (kubernetes.trainingQuota / "
                "servingQuota) to cover the workloads.")
def fit(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    ranges = _limit_ranges(stack)
    quotas = {(_namespace(q), _name(q)): q for q in stack.of_type(RESOURCE_QUOTA)}
    used: dict[tuple[str, str], dict[str, float]] = {}
    for workload in workloads(stack):
        namespace_ranges = ranges.get(workload.namespace, [])
        for container in containers(workload.spec):
            yield from _container_fit(workload, container, namespace_ranges)
        totals = pod_totals(workload.spec, namespace_ranges)
        for (namespace, quota_name), quota in quotas.items():
            if namespace != workload.namespace:
                continue
            hard = (quota.props.get("spec") or {}).get("hard") or {}
            for key in hard:
                if key.startswith("limits.") and key not in totals and quantity(hard[key]):
                    yield Violation(f"{workload.title}: sets no {key[len('limits.'):]} limit and namespace "
                                    f"{namespace} has no default for it, but ResourceQuota {quota_name} counts "
                                    f"{key}: every pod is refused", workload.resource.urn)
            sums = used.setdefault((namespace, quota_name), {})
            for key, value in totals.items():
                sums[key] = sums.get(key, 0.0) + value * workload.pods
            sums["pods"] = sums.get("pods", 0.0) + workload.pods
    for (namespace, quota_name), sums in used.items():
        quota = quotas[(namespace, quota_name)]
        hard = (quota.props.get("spec") or {}).get("hard") or {}
        for key, value in sorted(sums.items()):
            cap = quantity(hard.get(key)) if key in hard else None
            if cap is not None and value > cap + 1e-9:
                yield Violation(f"namespace {namespace}: its workloads need {key} {show(key, value)} at their "
                                f"declared parallelism and replicas, above ResourceQuota {quota_name} "
                                f"({show(key, cap)}): the last pods are refused", quota.urn)


def _container_fit(workload: Workload, container: Mapping[str, Any],
                   ranges: list[tuple[str, Mapping[str, Any]]]) -> Iterator[Violation]:
    requests, limits, origin = effective(container, ranges)
    who = f"{workload.title} container {container.get('name', '?')}"
    for key, limit in sorted(limits.items()):
        request = requests.get(key)
        if request is not None and request > limit:
            source = (f"the default limit of LimitRange {origin[f'limit:{key}']}" if f"limit:{key}" in origin
                      else "its limit")
            yield Violation(f"{who}: {key} request {show(key, request)} exceeds {source} ({show(key, limit)}) in "
                            f"namespace {workload.namespace}: the pod is refused", workload.resource.urn)
    for name, item in ranges:
        for key, cap in (item.get("max") or {}).items():
            value = limits.get(key)
            if value is not None and quantity(cap) is not None and value > quantity(cap):
                yield Violation(f"{who}: {key} limit {show(key, value)} exceeds LimitRange {name} max "
                                f"({show(key, quantity(cap))}) in namespace {workload.namespace}", workload.resource.urn)
        for key, floor in (item.get("min") or {}).items():
            value = requests.get(key)
            if value is not None and quantity(floor) is not None and value < quantity(floor):
                yield Violation(f"{who}: {key} request {show(key, value)} is below LimitRange {name} min "
                                f"({show(key, quantity(floor))}) in namespace {workload.namespace}",
                                workload.resource.urn)


# --- Pod Security admission, `restricted` --------------------------------------------------------------------

_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret", "name"}


def restricted_problems(spec: Mapping[str, Any]) -> Iterator[str]:
    """Why a pod spec fails the `restricted` Pod Security standard (the checks of Kubernetes' pod-security
    admission for that level), as short phrases."""
    pod_context = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag) is True:
            yield f"uses {flag}"
    for volume in items(spec.get("volumes")):
        kinds = set(volume) - _RESTRICTED_VOLUMES
        if kinds:
            yield f"volume {volume.get('name', '?')} is {', '.join(sorted(kinds))}"
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    for container in containers(spec):
        name = container.get("name", "?")
        context = container.get("securityContext") or {}
        if context.get("privileged") is True:
            yield f"container {name} is privileged"
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"container {name} does not set allowPrivilegeEscalation: false"
        capabilities = context.get("capabilities") or {}
        if "ALL" not in as_list(capabilities.get("drop")):
            yield f"container {name} does not drop ALL capabilities"
        added = set(as_list(capabilities.get("add"))) - {"NET_BIND_SERVICE"}
        if added:
            yield f"container {name} adds capabilities {', '.join(sorted(added))}"
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            yield f"container {name} does not set runAsNonRoot: true"
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            yield f"container {name} runs as user 0"
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield f"container {name} has no RuntimeDefault seccomp profile"
        for port in items(container.get("ports")):
            if port.get("hostPort"):
                yield f"container {name} uses hostPort {port['hostPort']}"


def enforced_levels(stack: Stack) -> dict[str, str]:
    """Namespace name -> its `pod-security.kubernetes.io/enforce` level."""
    levels = {}
    for ns in stack.of_type(NAMESPACE):
        metadata = ns.props.get("metadata") or {}
        level = (metadata.get("labels") or {}).get("pod-security.kubernetes.io/enforce")
        if level:
            levels[str(metadata.get("name") or ns.name)] = str(level)
    return levels


@rules.stack(
    "pods-meet-pod-security", severity="critical",
    description="Every declared pod meets the Pod Security level its namespace enforces (restricted: non-root, "
                "no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, no host namespaces, "
                "ports or host paths); otherwise Pod Security admission refuses it.",
    remediation="Give the pod securityContext {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}} and each "
                "container {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}.")
def pod_security(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    levels = enforced_levels(stack)
    for workload in workloads(stack):
        if levels.get(workload.namespace) != "restricted":
            continue
        problems = list(restricted_problems(workload.spec))
        if problems:
            yield Violation(f"{workload.title}: refused by Pod Security 'restricted' in namespace "
                            f"{workload.namespace}: {'; '.join(problems)}", workload.resource.urn)


__all__ = ["enforced_levels", "pod_totals", "quantity", "restricted_problems", "rules", "workloads"]
