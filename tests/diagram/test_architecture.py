"""`aiinfra graph`: the prod architecture rendered by the real Graphviz `dot` and read back from the SVG.

Graphviz writes clusters, nodes and edges as sibling `<g>` elements (class `cluster`, `node`, `edge`, each with a
`<title>`); nesting is geometry, so "inside the private subnets" means the node's outline lies inside the
cluster's. Nodes are found through the model the picture was drawn from (the `id` of each `<g>`), and the
workloads and buckets through the stack outputs, never through the diagram's own names.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

import pytest

from aiinfra.cli import main
from aiinfra.diagram import build_architecture, draw
from aiinfra.diagram import flows, model
from aiinfra.diagram.dot import to_dot
from aiinfra.diagram.mermaid import to_mermaid
from aiinfra.diagram.model import Architecture
from aiinfra.graph import ResourceGraph, ResourceRecord
from contracts import outputs as out
from contracts.instances import POOL_LABEL
from contracts.ports import KAFKA_IAM, REDIS
from contracts.storage import COMPILED, TRAINED

SVG = "{http://www.w3.org/2000/svg}"
Box = tuple[float, float, float, float]


@pytest.fixture(scope="module")
def prod(stack_graph: Any) -> ResourceGraph:
    return stack_graph("prod")


@pytest.fixture(scope="module")
def arch(prod: ResourceGraph) -> Architecture:
    return build_architecture(prod)


@pytest.fixture(scope="module")
def svg(prod: ResourceGraph) -> ET.Element:
    return ET.fromstring(draw(prod, "architecture", "svg"))


def _points(element: ET.Element) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for shape in element.iter():
        tag = shape.tag.removeprefix(SVG)
        if tag == "ellipse":
            cx, cy, rx, ry = (float(shape.get(k, 0)) for k in ("cx", "cy", "rx", "ry"))
            points += [(cx - rx, cy - ry), (cx + rx, cy + ry)]
        elif tag in ("polygon", "path"):
            numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", shape.get("points") or shape.get("d") or "")]
            points += list(zip(numbers[::2], numbers[1::2]))
    return points


def _box(element: ET.Element) -> Box:
    points = _points(element)
    assert points, f"{element.get('id')} has no outline"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _inside(inner: Box, outer: Box) -> bool:
    return (outer[0] - 0.5 <= inner[0] and outer[1] - 0.5 <= inner[1]
            and inner[2] <= outer[2] + 0.5 and inner[3] <= outer[3] + 0.5)


def _elements(svg: ET.Element, kind: str) -> dict[str, ET.Element]:
    return {g.get("id", ""): g for g in svg.iter(f"{SVG}g") if g.get("class") == kind}


def _edges(svg: ET.Element) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for g in _elements(svg, "edge").values():
        source, _, target = (g.findtext(f"{SVG}title") or "").partition("->")
        found.setdefault((source, target), []).extend(t.text or "" for t in g.iter(f"{SVG}text"))
    return found


def _node_of(arch: Architecture, record: ResourceRecord) -> str:
    return next(n for n, node in arch.nodes.items() if record.urn in node.urns)


def _workload(arch: Architecture, graph: ResourceGraph, role: str) -> str:
    """The node of the pods running as the service account a stack output names (`training/trainer`)."""
    namespace, account = str(graph.stack_outputs[out.service_account(role)]).split("/")
    for node_id, node in arch.nodes.items():
        if node.role == model.WORKLOAD:
            record = graph.by_urn[node.urns[0]]
            if (record.props["metadata"].get("namespace"), model.pod_spec(record).get("serviceAccountName")) \
                    == (namespace, account):
                return node_id
    raise AssertionError(f"no workload runs as {namespace}/{account}")


def _bucket(arch: Architecture, graph: ResourceGraph, role: str) -> str:
    name = graph.stack_outputs[out.bucket_name(role)]
    return _node_of(arch, next(r for r in graph.of_type("aws:s3/bucket:Bucket") if r.props.get("bucket") == name))


def test_pools_kafka_and_redis_sit_in_the_private_subnets_of_the_vpc(arch: Architecture, prod: ResourceGraph,
                                                                     svg: ET.Element) -> None:
    clusters, nodes = _elements(svg, "cluster"), _elements(svg, "node")
    vpc = next(g for g in arch.root.groups if g.kind == "vpc")
    private = next(g for g in vpc.groups if g.kind == "tier" and g.label.startswith("private subnets"))
    assert clusters[f"cluster_{private.id}"].findtext(f"{SVG}title") == f"cluster_{private.id}"
    assert _inside(_box(clusters[f"cluster_{private.id}"]), _box(clusters[f"cluster_{vpc.id}"]))
    wanted = prod.of_type("aws:eks/nodeGroup:NodeGroup", "aws:msk/cluster:Cluster",
                          "aws:elasticache/replicationGroup:ReplicationGroup")
    assert len(wanted) >= 6
    for record in wanted:
        node_id = _node_of(arch, record)
        assert _inside(_box(nodes[node_id]), _box(clusters[f"cluster_{private.id}"])), record.name
    public = next(g for g in vpc.groups if g.kind == "tier" and g.label.startswith("public subnets"))
    for record in prod.of_type("aws:ec2/natGateway:NatGateway"):
        assert _inside(_box(nodes[_node_of(arch, record)]), _box(clusters[f"cluster_{public.id}"]))
        assert not _inside(_box(nodes[_node_of(arch, record)]), _box(clusters[f"cluster_{private.id}"]))


def test_training_compilation_serving_data_path_is_drawn_with_its_s3_prefixes(
        arch: Architecture, prod: ResourceGraph, svg: ET.Element) -> None:
    edges = _edges(svg)
    models = _bucket(arch, prod, "models")
    training, compilation, serving = (_workload(arch, prod, r) for r in ("training", "compilation", "serving"))
    assert TRAINED in edges[(training, models)]
    assert TRAINED in edges[(models, compilation)]
    assert COMPILED in edges[(compilation, models)]
    assert COMPILED in edges[(models, serving)]
    assert TRAINED not in edges.get((models, serving), [])


def test_no_edge_points_at_a_kms_key_and_keys_are_a_legend(arch: Architecture, prod: ResourceGraph,
                                                           svg: ET.Element) -> None:
    keys = prod.of_type("aws:kms/key:Key")
    key_urns = {k.urn for k in keys}
    assert not any(key_urns & set(node.urns) for node in arch.nodes.values())
    drawn = set(_elements(svg, "node"))
    assert all(target in drawn for _, target in _edges(svg))
    legend = " ".join(t.text or "" for t in _elements(svg, "node")["legend"].iter(f"{SVG}text"))
    assert len(arch.legend) == len(keys) and all(f"KMS {badge}" in legend for badge, _ in arch.legend)
    redis = _node_of(arch, prod.of_type("aws:elasticache/replicationGroup:ReplicationGroup")[0])
    assert arch.nodes[redis].keys, "the feature store shows the key it is encrypted with"


def test_security_group_peerings_and_roles_fold_into_their_workloads(arch: Architecture,
                                                                     prod: ResourceGraph) -> None:
    kafka = _node_of(arch, prod.of_type("aws:msk/cluster:Cluster")[0])
    redis = _node_of(arch, prod.of_type("aws:elasticache/replicationGroup:ReplicationGroup")[0])
    peerings = {(e.tail or e.source, e.target): e.labels for e in arch.edges if e.kind == "peering"}
    workers = next(g.id for g in arch.root.walk() if g.kind == "nodes")
    assert any(str(KAFKA_IAM) in label for label in peerings[(workers, kafka)])
    assert any(str(REDIS) in label for label in peerings[(workers, redis)])
    serving = _workload(arch, prod, "serving")
    role_arn = prod.stack_outputs[out.service_account_role_arn("serving")]
    role = next(r for r in prod.of_type("aws:iam/role:Role") if r.props.get("arn") == role_arn)
    assert role.urn in arch.nodes[serving].urns
    assert not any(n.type == "aws:iam/role:Role" and n.role != "external" for n in arch.nodes.values())
    connections = {(e.source, e.target) for e in arch.edges if e.kind == "traffic"}
    assert (serving, redis) in connections


def _added(graph: ResourceGraph, *records: ResourceRecord) -> ResourceGraph:
    return ResourceGraph(graph.project, graph.stack, list(graph.records) + list(records), dict(graph.stack_outputs),
                         dict(graph.config))


def test_a_new_component_lands_where_its_subnets_and_security_groups_put_it(prod: ResourceGraph) -> None:
    """A kind the diagram has never heard of, in one private subnet, admitting the nodes on 443: drawn in that
    subnet's AZ box with the peering, and its settings resource folded in."""
    subnet = prod.by_urn[next(r.urn for r in prod.of_type("aws:ec2/subnet:Subnet")
                              if r.id == prod.stack_outputs[out.PRIVATE_SUBNET_IDS][0])]
    component = "urn:pulumi:prod::aiinfra::aiinfra:platform:AiPlatform$aiinfra:search:Search::search"
    domain = ResourceRecord(
        urn=f"{component}$aws:opensearch/domain:Domain::search", type="aws:opensearch/domain:Domain",
        name="search", custom=True, parent=component, id="aiinfra-prod-search",
        inputs={"domainName": "aiinfra-prod-search", "vpcOptions": {"subnetIds": [subnet.id],
                                                                   "securityGroupIds": ["sg-0123456789abcdef0"]}},
        outputs={"arn": "arn:aws:es:us-east-1:123456789012:domain/aiinfra-prod-search"})
    policy = ResourceRecord(
        urn=f"{component}$aws:opensearch/domainPolicy:DomainPolicy::search",
        type="aws:opensearch/domainPolicy:DomainPolicy",
        name="search-policy", custom=True, parent=component, id="search-policy",
        property_dependencies={"domainName": (domain.urn,)}, inputs={"domainName": "aiinfra-prod-search"})
    group = ResourceRecord(
        urn=f"{component}$aws:ec2/securityGroup:SecurityGroup::search", type="aws:ec2/securityGroup:SecurityGroup",
        name="search", custom=True, parent=component, id="sg-0123456789abcdef0",
        inputs={"vpcId": subnet.props["vpcId"]})
    rule = ResourceRecord(
        urn=f"{component}$aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule::search-nodes",
        type="aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", name="search-nodes", custom=True,
        parent=component, id="sgr-0123456789abcdef0",
        inputs={"securityGroupId": "sg-0123456789abcdef0", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
                "referencedSecurityGroupId": prod.stack_outputs[out.NODE_SECURITY_GROUP_ID]})
    arch = build_architecture(_added(prod, ResourceRecord(urn=component, type="aiinfra:search:Search", name="search",
                                                          custom=False, parent=prod.records[1].urn),
                                     domain, policy, group, rule))
    node_id = next(n for n, node in arch.nodes.items() if domain.urn in node.urns)
    assert policy.urn in arch.nodes[node_id].urns and arch.nodes[node_id].title == "opensearch domain"
    box = arch.group_of(node_id)
    assert box.kind == "az" and box.label == f"{subnet.props['availabilityZone']} only"
    workers = next(g.id for g in arch.root.walk() if g.kind == "nodes")
    assert any(e.kind == "peering" and e.tail == workers and e.target == node_id and "tcp 443" in e.labels[0]
               for e in arch.edges)


def test_pods_land_in_the_pool_their_node_selector_asks_for(prod: ResourceGraph) -> None:
    """A Karpenter NodePool is a pool like a managed node group: a Job selecting its label is drawn inside it,
    its EC2NodeClass folds into it, and the subnets and security groups the class selects by tag place it."""
    job = next(r for r in prod.of_type("kubernetes:batch/v1:Job"))
    subnet = next(r for r in prod.of_type("aws:ec2/subnet:Subnet")
                  if r.id == prod.stack_outputs[out.PRIVATE_SUBNET_IDS][0])
    nodes_group = next(r for r in prod.of_type("aws:ec2/securityGroup:SecurityGroup")
                       if r.id == prod.stack_outputs[out.NODE_SECURITY_GROUP_ID])
    node_class = ResourceRecord(
        urn=job.urn.replace("kubernetes:batch/v1:Job::", "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass::batch-"),
        type="kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", name="batch-class", custom=True, parent=job.parent,
        provider=job.provider, id="batch-class",
        inputs={"metadata": {"name": "batch-class"}, "spec": {
            "subnetSelectorTerms": [{"tags": {"Name": subnet.props["tags"]["Name"]}}],
            "securityGroupSelectorTerms": [{"tags": {"Name": nodes_group.props["tags"]["Name"]}},
                                           {"id": prod.by_urn[nodes_group.urn].id}]}})
    pool = ResourceRecord(
        urn=job.urn.replace("kubernetes:batch/v1:Job::", "kubernetes:karpenter.sh/v1:NodePool::batch-"),
        type="kubernetes:karpenter.sh/v1:NodePool", name="batch", custom=True, parent=job.parent,
        provider=job.provider, id="batch",
        inputs={"metadata": {"name": "batch"}, "spec": {
            "template": {"metadata": {"labels": {POOL_LABEL: "batch"}}, "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "batch-class"},
                "requirements": [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["c7i"]}]}},
            "limits": {"cpu": "64"}}})
    spec = job.inputs["spec"]
    moved = replace(job, inputs={**job.inputs, "spec": {**spec, "template": {**spec["template"], "spec": {
        **spec["template"]["spec"], "nodeSelector": {POOL_LABEL: "batch"}}}}})
    graph = _added(ResourceGraph(prod.project, prod.stack, [moved if r.urn == job.urn else r for r in prod.records],
                                 dict(prod.stack_outputs), dict(prod.config)), node_class, pool)
    arch = build_architecture(graph)
    pool_node = next(n for n, node in arch.nodes.items() if pool.urn in node.urns)
    job_node = next(n for n, node in arch.nodes.items() if job.urn in node.urns)
    assert arch.group_of(job_node) is arch.group_of(pool_node)
    assert node_class.urn in arch.nodes[pool_node].urns
    details = arch.nodes[pool_node].details
    assert arch.group_of(pool_node).kind == "pool" and "instance-family: c7i" in details
    assert f"AZ {subnet.props['availabilityZone']}" in details
    workers = next(g for g in arch.root.walk() if g.kind == "nodes")
    kafka = _node_of(arch, prod.of_type("aws:msk/cluster:Cluster")[0])
    assert any(e.kind == "peering" and e.tail == workers.id and e.target == kafka for e in arch.edges), \
        "the new pool holds the nodes' security group, so one edge still stands for all worker nodes"


def test_mermaid_carries_the_same_boxes_and_labelled_edges(arch: Architecture, prod: ResourceGraph) -> None:
    text = to_mermaid(arch)
    assert text.startswith("flowchart LR")
    assert text.count("subgraph ") == sum(line.strip() == "end" for line in text.splitlines())
    assert text.count("subgraph ") == len(list(arch.root.walk())) - 1
    models = _bucket(arch, prod, "models")
    assert f'{models} -->|"{COMPILED}"| {_workload(arch, prod, "serving")}' in text
    assert "kms" not in " ".join(line for line in text.splitlines() if "-->" in line or "-.->" in line).lower()


def test_dot_source_names_every_cluster_and_edge(arch: Architecture) -> None:
    text = to_dot(arch)
    assert text.count("subgraph cluster_") == len(list(arch.root.walk())) - 1 + 1   # + the legend
    assert all(f'id="edge{i}"' in text for i in range(len(arch.edges)))
    assert flows.PORT_NAMES[REDIS] == "REDIS"


def test_cli_draws_both_views(prod: ResourceGraph, monkeypatch: pytest.MonkeyPatch,
                              capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    import aiinfra.diagram as diagram

    monkeypatch.setattr(diagram, "synthesize_from_args", lambda args: prod)
    assert main(["graph", "--stack", "prod"]) == 0
    architecture = capsysbinary.readouterr().out.decode()
    assert architecture.startswith("flowchart LR") and "private subnets" in architecture
    assert main(["graph", "--stack", "prod", "--view", "dependencies", "--format", "dot"]) == 0
    dependencies = capsysbinary.readouterr().out.decode()
    assert dependencies.startswith("digraph aiinfra") and "Key\\nkeys-data" in dependencies
    assert "private subnets" not in dependencies


def test_cli_writes_png_to_a_file(prod: ResourceGraph, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import aiinfra.diagram as diagram

    monkeypatch.setattr(diagram, "synthesize_from_args", lambda args: prod)
    target = tmp_path / "prod.png"
    assert main(["graph", "--stack", "prod", "--format", "png", "--output", str(target)]) == 0
    assert target.read_bytes().startswith(b"\x89PNG\r\n")


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_without_dot_the_error_is_one_line_naming_it(fmt: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["graph", "--stack", "prod", "--format", fmt, "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Graphviz `dot`" in err and "apt-get install graphviz" in err


def test_a_stack_export_without_dependencies_gives_the_same_placement_and_flows(arch: Architecture,
                                                                                prod: ResourceGraph) -> None:
    """`pulumi stack export` documents may lack propertyDependencies: placement and flows come from values."""
    from aiinfra.export import export_document
    from aiinfra.state import graph_from_export

    document = export_document(prod)
    for entry in document["deployment"]["resources"]:
        entry.pop("propertyDependencies", None)
    reread = build_architecture(graph_from_export(document))

    def summary(a: Architecture) -> tuple[set[tuple[str, str]], set[tuple[str, str, str, str]]]:
        placed = {(a.nodes[n].name, a.group_of(n).kind) for n in a.nodes}
        drawn = {(a.nodes[e.source].name, a.nodes[e.target].name, e.kind, ",".join(e.labels)) for e in a.edges}
        return placed, drawn

    assert summary(reread) == summary(arch)


def test_dev_routes_both_private_zones_through_its_one_nat_gateway(stack_graph: Any) -> None:
    dev = stack_graph("dev")
    arch = build_architecture(dev)
    nats = dev.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 1
    nat = _node_of(arch, nats[0])
    routes = [e for e in arch.edges if e.kind == "route" and e.target == nat]
    zones = sorted(str(s.props["availabilityZone"]) for s in dev.of_type("aws:ec2/subnet:Subnet")
                   if s.id in dev.stack_outputs[out.PRIVATE_SUBNET_IDS])
    assert len(routes) == 1 and arch.group(routes[0].tail).kind == "tier"
    assert routes[0].labels == [f"0.0.0.0/0 from {zone}" for zone in zones]


def test_kafka_grants_draw_topics_between_the_brokers_and_the_workload(prod: ResourceGraph) -> None:
    """Attach the stack's consumer and producer policies to a workload's role: the edges name the topics and
    point from the brokers to the reader and from the writer to the brokers."""
    role_arn = prod.stack_outputs[out.service_account_role_arn("compilation")]
    role = next(r for r in prod.of_type("aws:iam/role:Role") if r.props.get("arn") == role_arn)
    attachments = [ResourceRecord(
        urn=role.urn.replace("aws:iam/role:Role::", "aws:iam/rolePolicyAttachment:RolePolicyAttachment::kafka-")
        + f"-{name}", type="aws:iam/rolePolicyAttachment:RolePolicyAttachment", name=f"kafka-{name}", custom=True,
        parent=role.parent, id=f"kafka-{name}",
        inputs={"role": role.props["name"], "policyArn": prod.stack_outputs[output]})
        for name, output in (("consumer", out.KAFKA_CONSUMER_POLICY_ARN), ("producer", out.KAFKA_PRODUCER_POLICY_ARN))]
    arch = build_architecture(_added(prod, *attachments))
    kafka = _node_of(arch, prod.of_type("aws:msk/cluster:Cluster")[0])
    compilation = _workload(arch, prod, "compilation")
    data = {(e.source, e.target): e.labels for e in arch.edges if e.kind == "data"}
    topics = sorted(str(t).rsplit("/", 1)[-1] for t in _topic_arns(prod, out.KAFKA_CONSUMER_POLICY_ARN))
    assert topics and data[(kafka, compilation)] == [f"topic {t}" for t in topics]
    assert data[(compilation, kafka)] == [f"topic {t}" for t in topics]


def _topic_arns(graph: ResourceGraph, output: str) -> list[str]:
    """The topic ARNs a stack policy grants (read from the policy, so the test does not restate them)."""
    policy_arn = graph.stack_outputs[output]
    policy = next(r for r in graph.of_type("aws:iam/policy:Policy") if r.props.get("arn") == policy_arn)
    return [arn for s in json.loads(policy.props["policy"])["Statement"] for arn in
            (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]) if ":topic/" in arn]
