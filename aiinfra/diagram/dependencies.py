"""`aiinfra graph --view dependencies`: which resource takes which one's output, grouped by component.

Components become groups, their main resources nodes (many-of-a-kind resources such as interface endpoints or
alarms collapse into one counted node), and edges are the data paths the program itself declares: a resource
that takes another's output (property dependencies, or values naming it in a stack export) points at it. Nothing
is drawn per stack by hand, so the picture changes when the program does.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from aiinfra.diagram.records import strings
from aiinfra.graph import ResourceGraph, ResourceRecord

# Resources worth a node of their own.
MAIN = {
    "aws:ec2/vpc:Vpc", "aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup", "aws:msk/cluster:Cluster",
    "aws:elasticache/replicationGroup:ReplicationGroup", "aws:sagemaker/endpoint:Endpoint",
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration", "aws:sagemaker/model:Model",
    "aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2", "aws:ecr/repository:Repository", "aws:kms/key:Key",
    "aws:sns/topic:Topic", "aws:secretsmanager/secret:Secret", "aws:ec2/instance:Instance",
    "aws:sagemaker/notebookInstance:NotebookInstance",
    "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod",
}
# Many-of-a-kind resources: one node per component, labelled with the count.
COLLAPSED = {
    "aws:ec2/natGateway:NatGateway": "NAT gateways", "aws:ec2/vpcEndpoint:VpcEndpoint": "VPC endpoints",
    "aws:ec2/subnet:Subnet": "subnets", "aws:cloudwatch/metricAlarm:MetricAlarm": "CloudWatch alarms",
    "aws:appautoscaling/policy:Policy": "scaling policies",
}
# Plumbing every resource in the VPC touches: drawn, but not an edge target (it would connect everything).
NOT_A_DATA_PATH = {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway",
                   "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:ec2/securityGroup:SecurityGroup"}
# Values other resources use to reach a resource (besides its URN): what stack exports carry instead of deps.
ADDRESS_KEYS = ("arn", "bucket", "name", "primaryEndpointAddress", "readerEndpointAddress",
                "bootstrapBrokersSaslIam", "bootstrapBrokersTls", "endpoint", "repositoryUrl", "replicationGroupId",
                "clusterName")


@dataclass
class Node:
    id: str
    label: str
    component: str
    urns: list[str] = field(default_factory=list)
    kind: str = ""


@dataclass
class Diagram:
    components: dict[str, list[Node]]
    edges: list[tuple[str, str]]



def _component(graph: ResourceGraph, record: ResourceRecord) -> str:
    component = graph.component_of(record)
    return component.type.split(":")[1] if component else "stack"


def _short_type(type_token: str) -> str:
    return type_token.rsplit(":", 1)[-1]


def build(graph: ResourceGraph) -> Diagram:
    """Nodes grouped by component and the edges between them, derived from references in the graph."""
    node_of: dict[str, Node] = {}
    components: dict[str, list[Node]] = defaultdict(list)
    collapsed: dict[tuple[str, str], Node] = {}
    for record in graph:
        if not record.custom or record.is_provider:
            continue
        component = _component(graph, record)
        if record.type in MAIN:
            node = Node(f"n{len(node_of)}", f"{_short_type(record.type)}<br/>{record.name}", component,
                        [record.urn], record.type)
            components[component].append(node)
        elif record.type in COLLAPSED:
            key = (component, record.type)
            if key not in collapsed:
                collapsed[key] = Node(f"n{len(node_of)}", "", component, [], record.type)
                components[component].append(collapsed[key])
            node = collapsed[key]
            node.urns.append(record.urn)
        else:
            continue
        node_of[record.urn] = node
    for (component, type_token), node in collapsed.items():
        node.label = f"{len(node.urns)} x {COLLAPSED[type_token]}"
    return Diagram(dict(components), _edges(graph, node_of))


def _edges(graph: ResourceGraph, node_of: dict[str, Node]) -> list[tuple[str, str]]:
    index = graph.by_urn
    targets = {urn: node for urn, node in node_of.items() if node.kind not in NOT_A_DATA_PATH}
    addresses = _addresses(graph, targets)
    edges: set[tuple[str, str]] = set()
    for urn, source in node_of.items():
        if source.kind in NOT_A_DATA_PATH:
            continue
        record = index[urn]
        for target_urn in _reached(graph, record):
            target = targets.get(target_urn)
            if target is not None and target is not source:
                edges.add((source.id, target.id))
        if record.property_dependencies:
            continue
        # A stack export without dependencies: a value that names another resource is the reference.
        for value in strings(record.inputs):
            for address, target in addresses:
                if target is not source and _names(value, address):
                    edges.add((source.id, target.id))
    return sorted(edges, key=lambda e: (int(e[0][1:]), int(e[1][1:])))


def _reached(graph: ResourceGraph, record: ResourceRecord) -> set[str]:
    """URNs a resource takes outputs from: directly, or through one helper it owns (a role, a policy, a secret
    version) that is not itself drawn - so an endpoint whose role reads the models bucket points at the bucket."""
    index = graph.by_urn
    direct = {u for urns in record.property_dependencies.values() for u in urns}
    reached = set(direct)
    for urn in direct:
        helper = index.get(urn)
        if helper is not None and helper.type not in MAIN and helper.type not in NOT_A_DATA_PATH \
                and helper.type not in COLLAPSED:
            reached |= {u for urns in helper.property_dependencies.values() for u in urns}
    return reached


def _addresses(graph: ResourceGraph, targets: dict[str, Node]) -> list[tuple[str, Node]]:
    """Distinctive values (ARNs, endpoint addresses, bucket names) that name a drawn resource."""
    index = graph.by_urn
    found = []
    for urn, node in targets.items():
        props = index[urn].props
        for key in ADDRESS_KEYS:
            value = props.get(key)
            for part in (value.split(",") if isinstance(value, str) else []):
                if len(part) >= 16:
                    found.append((part.split(":9")[0] if key.startswith("bootstrap") else part, node))
    return found


def _names(value: str, address: str) -> bool:
    """The value is the address, an ARN/URI under it, or a host:port list that includes it."""
    return (value == address or value.startswith((address + "/", address + ":", "s3://" + address))
            or any(part.split(":")[0] == address for part in value.split(",")))


def _mermaid_text(text: str) -> str:
    return re.sub(r'["\[\]{}()<>|]', " ", text).strip() if "<br/>" not in text else \
        "<br/>".join(re.sub(r'["\[\]{}()<>|]', " ", part).strip() for part in text.split("<br/>"))


def to_mermaid(diagram: Diagram) -> str:
    lines = ["flowchart LR"]
    for index, (component, nodes) in enumerate(sorted(diagram.components.items())):
        lines.append(f'  subgraph c{index}["{_mermaid_text(component)}"]')
        for node in nodes:
            lines.append(f'    {node.id}["{_mermaid_text(node.label)}"]')
        lines.append("  end")
    for source, target in diagram.edges:
        lines.append(f"  {source} --> {target}")
    return "\n".join(lines)


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("<br/>", "\\n")


def to_dot(diagram: Diagram) -> str:
    lines = ["digraph aiinfra {", "  rankdir=LR;", '  node [shape=box, style="rounded"];']
    for index, (component, nodes) in enumerate(sorted(diagram.components.items())):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f'    label="{_dot_text(component)}";')
        for node in nodes:
            lines.append(f'    {node.id} [label="{_dot_text(node.label)}"];')
        lines.append("  }")
    for source, target in diagram.edges:
        lines.append(f"  {source} -> {target};")
    lines.append("}")
    return "\n".join(lines)
