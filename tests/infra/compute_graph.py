"""Lookups the compute tests share: node groups by pool, their launch templates, pod specs, IAM documents."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from aiinfra.graph import ResourceGraph, ResourceRecord

CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SUBNET = "aws:ec2/subnet:Subnet"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ROLE = "aws:iam/role:Role"
RELEASE = "kubernetes:helm.sh/v3:Release"
JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
POOL_LABEL = "aiinfra.io/node-pool"
ACCELERATOR_RESOURCES = ("nvidia.com/gpu", "aws.amazon.com/neuron", "aws.amazon.com/neuroncore")
ROOT = Path(__file__).resolve().parents[2]


def stack_document(stack: str) -> dict[str, Any]:
    """A shipped stack file, parsed."""
    return yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())


def stack_pools(stack: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in stack_document(stack)["config"]["aiinfra:nodePools"]}


def one(graph: ResourceGraph, type_token: str, name: str | None = None) -> ResourceRecord:
    found = [r for r in graph.of_type(type_token) if name is None or r.name == name]
    assert len(found) == 1, f"expected one {type_token} {name or ''}, found {len(found)}"
    return found[0]


def node_groups(graph: ResourceGraph) -> dict[str, ResourceRecord]:
    """Node groups keyed by the pool name they label their nodes with."""
    return {r.inputs["labels"][POOL_LABEL]: r for r in graph.of_type(NODE_GROUP)}


def launch_template(graph: ResourceGraph, node_group: ResourceRecord) -> ResourceRecord:
    """The launch template a node group names (matched by id, as AWS would)."""
    wanted = node_group.inputs["launchTemplate"]["id"]
    found = [r for r in graph.of_type(LAUNCH_TEMPLATE) if r.id == wanted]
    assert len(found) == 1, f"node group {node_group.name} names launch template {wanted}: found {len(found)}"
    return found[0]


def template_security_groups(template: ResourceRecord) -> list[set[str]]:
    """The security-group sets a template's instances get: one set, or one per network interface."""
    interfaces = template.inputs.get("networkInterfaces")
    if interfaces:
        return [set(i["securityGroups"]) for i in interfaces]
    return [set(template.inputs["vpcSecurityGroupIds"])]


def subnet_zones(graph: ResourceGraph) -> dict[str, str]:
    return {r.id: r.inputs["availabilityZone"] for r in graph.of_type(SUBNET)}


def pod_specs(graph: ResourceGraph) -> Iterator[tuple[ResourceRecord, Mapping[str, Any]]]:
    """Every pod template the program declares on the cluster (Jobs and Deployments)."""
    for record in graph.of_type(JOB, DEPLOYMENT):
        yield record, record.inputs["spec"]["template"]["spec"]


def accelerator_requests(pod: Mapping[str, Any]) -> dict[str, str]:
    """Accelerator resources any container (init containers included) asks for."""
    asked: dict[str, str] = {}
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        limits = (container.get("resources") or {}).get("limits") or {}
        asked.update({k: v for k, v in limits.items() if k in ACCELERATOR_RESOURCES})
    return asked


def taints_k8s(node_group: ResourceRecord) -> list[dict[str, str]]:
    """A node group's taints as Kubernetes spells them (NO_SCHEDULE -> NoSchedule)."""
    effects = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
    return [{"key": t["key"], "value": t.get("value", ""), "effect": effects[t["effect"]]}
            for t in node_group.inputs.get("taints") or []]


def tolerates(tolerations: list[Mapping[str, Any]], taint: Mapping[str, str]) -> bool:
    """Kubernetes' matching rule for one taint against a list of tolerations."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator", "Equal") == "Exists" and t.get("key") in (None, taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint["value"]:
            return True
    return False


def policy(document: Any) -> dict[str, Any]:
    return json.loads(document) if isinstance(document, str) else document


def role_by_arn(graph: ResourceGraph, arn: str) -> ResourceRecord:
    found = [r for r in graph.of_type(ROLE) if r.outputs.get("arn") == arn]
    assert len(found) == 1, f"no role with ARN {arn}"
    return found[0]


def statements_of(graph: ResourceGraph, role: ResourceRecord) -> list[dict[str, Any]]:
    """Every statement granted to a role: inline policies and attached customer-managed policies."""
    statements = []
    for r in graph.of_type("aws:iam/rolePolicy:RolePolicy"):
        if r.inputs["role"] in (role.id, role.outputs.get("name")):
            statements += policy(r.inputs["policy"])["Statement"]
    managed = {p.outputs["arn"]: p for p in graph.of_type("aws:iam/policy:Policy")}
    for a in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        if a.inputs["role"] == role.outputs.get("name") and a.inputs["policyArn"] in managed:
            statements += policy(managed[a.inputs["policyArn"]].inputs["policy"])["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
