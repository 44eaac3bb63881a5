"""Node and pod hardening: IMDSv2 with hop limit 1, no SSH into nodes, no privileged or host-namespace pods,
and every image pinned to a tag or digest."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .core import Resource, RuleSet, as_list, block, items, number
from .types import EKS_NODE_GROUP, INSTANCE, K8S_POD, K8S_WORKLOADS, KARPENTER_NODE_CLASS, LAUNCH_TEMPLATE

rules = RuleSet("hardening")


@rules.resource(
    "imdsv2-hop-limit-1", types=(LAUNCH_TEMPLATE, INSTANCE, KARPENTER_NODE_CLASS), severity="high",
    description="Instances (launch templates, instances, Karpenter EC2NodeClasses) require IMDSv2 tokens with a "
                "hop limit of 1, so pods cannot borrow the node's role; an EC2NodeClass states it explicitly "
                "rather than relying on the controller's default.",
    remediation="Set metadataOptions={httpEndpoint: 'enabled', httpTokens: 'required', httpPutResponseHopLimit: 1} "
                "(an EC2NodeClass: spec.metadataOptions); pods get AWS access through IRSA / Pod Identity.")
def imdsv2(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    props = (resource.props.get("spec") or {}) if resource.type == KARPENTER_NODE_CLASS else resource.props
    options = block(props.get("metadataOptions"))
    if options.get("httpEndpoint") == "disabled":
        return
    if options.get("httpTokens") != "required":
        yield f"IMDSv1 is allowed (metadataOptions.httpTokens = {options.get('httpTokens')!r}; allowed: 'required')"
    hops = number(options.get("httpPutResponseHopLimit"))
    if hops != 1:
        shown = "unset" if hops is None else int(hops)
        yield f"metadata hop limit is {shown}; containers can reach the node's credentials (allowed: 1)"


@rules.resource(
    "nodes-no-ssh", types=(EKS_NODE_GROUP, LAUNCH_TEMPLATE), severity="high",
    description="Node groups allow no SSH: no remoteAccess block and no key pair on their launch templates.",
    remediation="Remove remoteAccess / keyName; reach nodes with SSM Session Manager.")
def no_ssh(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.type == EKS_NODE_GROUP and resource.props.get("remoteAccess"):
        yield "node group allows SSH (remoteAccess)"
    if resource.type == LAUNCH_TEMPLATE and resource.props.get("keyName"):
        yield f"launch template installs SSH key pair {resource.props['keyName']!r} (keyName)"


def pod_spec(resource: Resource) -> Mapping[str, Any]:
    """The pod template of any workload kind: Pod, Deployment-like, Job or CronJob."""
    spec = resource.props.get("spec") or {}
    if resource.type == K8S_POD:
        return spec
    if resource.type.endswith(":CronJob"):
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return items(spec.get("initContainers")) + items(spec.get("containers")) + items(spec.get("ephemeralContainers"))


def _namespace(resource: Resource) -> str:
    return str((resource.props.get("metadata") or {}).get("namespace") or "default")


EXEMPT_NAMESPACES = {"exemptNamespaces": {
    "type": "array", "default": [], "uniqueItems": True,
    "items": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
    "description": "namespaces whose pods may run privileged (e.g. a vetted device plugin's namespace)"}}


@rules.resource(
    "pods-not-privileged", types=K8S_WORKLOADS, severity="critical", config=EXEMPT_NAMESPACES,
    description="No container runs privileged or adds ALL / SYS_ADMIN capabilities.",
    remediation="Drop securityContext.privileged and the added capabilities; device plugins expose accelerators "
                "without privilege.")
def not_privileged(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if _namespace(resource) in set(config.get("exemptNamespaces") or []):
        return
    for container in containers(pod_spec(resource)):
        context = container.get("securityContext") or {}
        name = container.get("name", "?")
        if context.get("privileged") is True:
            yield f"container {name} runs privileged"
        added = set(as_list((context.get("capabilities") or {}).get("add")))
        if added & {"ALL", "SYS_ADMIN", "CAP_SYS_ADMIN"}:
            yield f"container {name} adds capabilities {', '.join(sorted(added & {'ALL', 'SYS_ADMIN', 'CAP_SYS_ADMIN'}))}"


@rules.resource(
    "pods-no-host-namespaces", types=K8S_WORKLOADS, severity="high", config=EXEMPT_NAMESPACES,
    description="Pods do not share the node's network, PID or IPC namespace.",
    remediation="Remove hostNetwork / hostPID / hostIPC; expose ports through a Service.")
def no_host_namespaces(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if _namespace(resource) in set(config.get("exemptNamespaces") or []):
        return
    spec = pod_spec(resource)
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag) is True:
            yield f"pod uses the node's namespace ({flag})"


def image_pinned(image: str) -> bool:
    """`repo@sha256:...` or `repo:tag` with a tag other than `latest`."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


@rules.resource(
    "images-pinned", types=K8S_WORKLOADS, severity="medium",
    description="Every container image names a tag other than 'latest', or a digest.",
    remediation="Reference images as <repository>:<immutable tag> or <repository>@sha256:<digest>.")
def pinned(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    for container in containers(pod_spec(resource)):
        image = str(container.get("image") or "")
        if not image_pinned(image):
            yield f"container {container.get('name', '?')} uses unpinned image {image!r}"
